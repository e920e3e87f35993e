"""Fencing in the state-keeper: a stale run's writes are ignored; one owner per download.

A download's run carries its claim (``ctx.claim``); messages about the run
with any other claim are stale. Two systems in this process on one SQLite
file stand for two processes: each holds its own owner lock (a ``flock``,
which separate open files contend for even within one process).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text

from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads import _protocol as p
from regisseur.messages.downloads import (
    ClaimDownload,
    CompleteDownload,
    FailDownload,
    QueueDownload,
    ReportProgress,
)
from regisseur.supervision.testing import FaultInjector
from tests.downloads.helpers import CANCELLED, RUNNING, SUCCEEDED, WAIT

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from regisseur.actors import ActorSystem
    from regisseur.supervision.testing import ManualClock


class Runs:
    """An impl that records each run's claim and holds it until released (bounded)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.claims: list[tuple[str, int]] = []  # (download id, claim) in start order
        self.owner_answers: list[bool] = []
        self.released = False

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        with self._cond:
            self.claims.append((download_id, ctx.claim))
            self._cond.notify_all()
            deadline = time.monotonic() + WAIT
            while not self.released:
                if ctx.cancelled or time.monotonic() > deadline:
                    return None
                self._cond.wait(0.01)  # also polls ctx.cancelled
        self.owner_answers.append(ctx.still_owner())
        return f"/files/{name}"

    def wait_started(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.claims) >= count, WAIT), "no start"

    def release(self) -> None:
        with self._cond:
            self.released = True
            self._cond.notify_all()


def stale_rejections(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if getattr(r, "event", None) == "download_stale_claim_rejected"
    ]


@pytest.mark.timeout(30)
def test_stale_progress_success_and_failure_are_ignored_and_logged_once(
    system_factory: Callable[..., ActorSystem], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="regisseur")
    runs = Runs()
    system = system_factory(download_sources=[DownloadSource("s", runs, concurrency=1)])
    download = system.downloads.submit("s", "t", "a.bin")
    runs.wait_started(1)
    claim = runs.claims[0][1]
    stale = claim + 5  # any claim but the current one
    for message in (
        ReportProgress(download, 999, 1000, 1.0, None, stale),
        ReportProgress(download, 999, 1000, 1.0, None, stale),
        CompleteDownload(download, "/stale/a.bin", 1000, 1000, stale),
        FailDownload(download, "stale failure", stale),
        p.Released(download, "nobody", stale),
    ):
        system.tell(p.KEEPER, message)
    record = system.downloads.status(download)  # an ask: handled after the tells
    assert record is not None
    assert (record.state, record.transferred, record.file_path) == (RUNNING, 0, None)
    rejected = stale_rejections(caplog)
    assert len(rejected) == 1, rejected  # once per stale run
    assert (rejected[0]["claim"], rejected[0]["current"]) == (stale, claim)

    runs.release()
    final = system.downloads.wait(download, WAIT)
    assert (final.state, final.file_path) == (SUCCEEDED, "/files/a.bin")
    assert runs.owner_answers == [True]


@pytest.mark.timeout(30)
def test_runs_started_at_once_each_have_their_own_claim(
    system_factory: Callable[..., ActorSystem],
) -> None:
    """Three workers take three downloads at once: each run owns its own download."""
    runs = Runs()
    system = system_factory(download_sources=[DownloadSource("s", runs, concurrency=3)])
    downloads = [system.downloads.submit("s", "t", f"{i}.bin") for i in range(3)]
    runs.wait_started(3)
    for download in downloads:
        record = system.downloads.status(download)
        assert record is not None and record.state is RUNNING
    first, claim = runs.claims[0]
    # A second start of a running download changes nothing: its run stays the owner.
    system.tell(p.KEEPER, ClaimDownload(first, "nobody", claim + 5))
    record = system.downloads.status(first)
    assert record is not None and record.state is RUNNING
    runs.release()
    for download in downloads:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    assert runs.owner_answers == [True, True, True]


@pytest.mark.timeout(30)
def test_a_cancelled_run_is_no_longer_the_owner(
    system_factory: Callable[..., ActorSystem],
) -> None:
    seen: list[bool] = []
    entered = threading.Event()
    cancelled = threading.Event()

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        entered.set()
        cancelled.wait(WAIT)
        seen.append(ctx.still_owner())  # what an impl asks right before publishing
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    download = system.downloads.submit("s", "t", "a.bin")
    assert entered.wait(WAIT)
    assert system.downloads.cancel(download)
    cancelled.set()
    deadline = time.monotonic() + WAIT
    while not seen:
        assert time.monotonic() < deadline, "the impl never asked"
        threading.Event().wait(0.01)
    assert seen == [False]
    record = system.downloads.status(download)
    assert record is not None and record.state is CANCELLED


@pytest.mark.timeout(30)
@pytest.mark.parametrize("busy_with", [QueueDownload, ClaimDownload])
def test_the_ownership_check_does_not_wait_for_a_busy_keeper(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, busy_with: type
) -> None:
    """Without a cluster a run reads the keeper's claims: no round trip through its mailbox.

    The keeper hangs on a later submit (it has handled the run's start), or
    on the run's start itself (a short download can end before the keeper
    reads it). Asked through the mailbox, the check waited behind the hang
    and counted as "not the owner" after 30 s.
    """
    answered = threading.Event()
    answers: list[bool] = []
    checking = threading.Event()

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        if name == "a.bin":
            while not checking.is_set():
                ctx.sleep(1.0)  # on the manual clock: settle() counts the run as waiting
            answers.append(ctx.still_owner())
            answered.set()
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    faults = FaultInjector(system)
    downloads = []
    if busy_with is ClaimDownload:
        faults.hang(p.KEEPER, 600.0, message_type=ClaimDownload)
        downloads.append(system.downloads.submit("s", "t", "a.bin"))
    else:
        downloads.append(system.downloads.submit("s", "t", "a.bin"))
        system.settle(timeout=WAIT)  # the run waits in the impl
        faults.hang(p.KEEPER, 600.0, message_type=QueueDownload)
        downloads.append(system.downloads.submit("s", "t", "b.bin"))
    system.settle(timeout=WAIT)  # the keeper waits in the hang, the run in the impl
    assert faults.pending(p.KEEPER) == 0
    checking.set()
    manual_clock.advance(1.0)  # the run wakes and checks; the keeper still hangs
    assert answered.wait(WAIT), "the check waited for the keeper"
    assert answers == [True]
    manual_clock.advance(600.0)
    for download in downloads:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED


@pytest.mark.timeout(60)
def test_a_second_system_on_one_database_never_runs_a_live_owners_download(
    system_factory: Callable[..., ActorSystem],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="regisseur")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first_runs, second_runs, third_runs = Runs(), Runs(), Runs()
    first = system_factory(
        name="first", database_url=url, download_sources=[DownloadSource("s", first_runs)]
    )
    download = first.downloads.submit("s", "t", "a.bin")
    first_runs.wait_started(1)

    second = system_factory(
        name="second", database_url=url, download_sources=[DownloadSource("s", second_runs)]
    )
    second.settle()
    assert second_runs.claims == []  # the first system is alive: its download is not resumed
    assert any(getattr(r, "event", None) == "downloads_left_to_owner" for r in caplog.records)
    own = second.downloads.submit("s", "t2", "b.bin")
    second_runs.wait_started(1)
    assert [i for i, _ in second_runs.claims] == [own]  # runs its own beside the first

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT owner, claim FROM regisseur_downloads WHERE id = :i"), {"i": download}
            ).one()
        assert row.claim == first_runs.claims[0][1]
        assert row.owner.split(":")[2] == "first"

        first.stop()  # a stop keeps the download InProgress, for whoever runs next
        system_factory(
            name="third", database_url=url, download_sources=[DownloadSource("s", third_runs)]
        )
        third_runs.wait_started(1)
        assert third_runs.claims[0][0] == download  # its owner is gone: resumed, once
        assert [i for i, _ in second_runs.claims] == [own]
        with engine.connect() as connection:
            owner = connection.execute(
                text("SELECT owner FROM regisseur_downloads WHERE id = :i"), {"i": download}
            ).scalar_one()
        assert owner.split(":")[2] == "third"
    finally:
        engine.dispose()
        for runs in (first_runs, second_runs, third_runs):
            runs.release()
