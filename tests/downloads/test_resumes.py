"""DownloadSource(resumes=...): which unfinished downloads a system takes over at start.

Processes sharing one database whose sources of one name serve different
places (the command line with ``--db``: a directory each) took over every
unfinished download a stopped process had left, and ran it in their own
place. A source's ``resumes`` now declines the others': declined, a
download stays as it was, for a system whose source takes it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import DownloadSource
from tests.downloads.helpers import RUNNING, SUCCEEDED, WAIT, Gate
from tests.downloads.test_keeper import Recorder

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem
    from regisseur.messages import DownloadRecord

pytestmark = pytest.mark.timeout(60)


def _place(name: str) -> Callable[[DownloadRecord], bool]:
    return lambda record: record.extra.get("place") == name


def _left_running(
    system_factory: Callable[..., ActorSystem], database: str, place: str
) -> tuple[str, str]:
    """Two downloads submitted for ``place`` and for 'b', the first running,
    then the system stopped: both unfinished, their process gone."""
    gate = Gate()
    first = system_factory(download_sources=[DownloadSource("s", gate)], database_url=database)
    running = first.downloads.submit("s", "t1", "one", extra={"place": place})
    Recorder(first).wait_state(running, RUNNING)
    queued = first.downloads.submit("s", "t2", "two", extra={"place": "b"})
    first.downloads.status(queued)  # stored
    first.stop()
    assert gate.saw_cancel == ["one"]
    return running, queued


def _next_start(
    system_factory: Callable[..., ActorSystem],
    database: str,
    resumes: Callable[[DownloadRecord], bool] | None,
) -> tuple[ActorSystem, Gate]:
    """A system started on ``database`` whose source 's' (``resumes``) lets
    every download through at once."""
    gate = Gate()
    gate.open()
    system = system_factory(
        download_sources=[DownloadSource("s", gate, resumes=resumes)], database_url=database
    )
    return system, gate


def test_a_source_takes_over_only_the_downloads_it_resumes(
    system_factory: Callable[..., ActorSystem], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    running, queued = _left_running(system_factory, database, "a")

    in_b, gate_b = _next_start(system_factory, database, _place("b"))
    assert in_b.downloads.wait(queued, WAIT).state is SUCCEEDED
    in_b.settle(WAIT)
    assert gate_b.started == ["two"], "the download left for 'a' was not run in 'b'"
    left = in_b.downloads.status(running)
    assert left is not None and left.state is RUNNING, "declined: left as it was"
    in_b.stop()

    in_a, gate_a = _next_start(system_factory, database, _place("a"))
    assert in_a.downloads.wait(running, WAIT).state is SUCCEEDED
    assert gate_a.started == ["one"]


def test_without_resumes_every_unfinished_download_is_taken_over(
    system_factory: Callable[..., ActorSystem], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    running, queued = _left_running(system_factory, database, "a")
    second, gate = _next_start(system_factory, database, None)
    for download_id in (running, queued):
        assert second.downloads.wait(download_id, WAIT).state is SUCCEEDED
    assert sorted(gate.started) == ["one", "two"]


def test_a_resumes_that_raises_declines_and_is_logged(
    system_factory: Callable[..., ActorSystem], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    running, queued = _left_running(system_factory, database, "a")

    def broken(record: Any) -> bool:
        raise KeyError("place")

    with caplog.at_level(logging.ERROR, logger="regisseur.actors.downloads.keeper"):
        second = system_factory(
            download_sources=[DownloadSource("s", Gate(), resumes=broken)],
            database_url=database,
        )
        second.settle(WAIT)
    for download_id in (running, queued):
        record = second.downloads.status(download_id)
        assert record is not None and not record.terminal
    failures = [r for r in caplog.records if "download_resumes_failed" in r.getMessage()]
    assert len(failures) == 2 and "KeyError" in failures[0].getMessage()


def test_resumes_must_be_callable() -> None:
    with pytest.raises(TypeError, match="DownloadSource 's': resumes must be callable"):
        DownloadSource("s", Gate(), resumes="a")  # type: ignore[arg-type]
