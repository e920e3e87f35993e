"""A run that outlives a restart of the keeper is heard, not fetched again.

The keeper's supervisor restarts the sources with it (REST_FOR_ONE): each
worker is asked to stop, and one whose impl does not see the stop (it
takes no context, or blocks in a call a cancel cannot reach) is abandoned
after its ``shutdown_timeout`` (5 s) and runs on. Before: the restarted
keeper queued that download again under a new claim at once, the new run
fetched the whole body a second time beside the old one, and the old
run's result was rejected as stale. Now the new keeper holds back a
download whose earlier run (the claim it inherited) is still on the
source's run board, until that run reports: its success or failure ends
the download, its release queues it again.

Each test abandons one worker: about 5 s of real time.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors._faults import InjectedFault
from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads import _protocol as p
from regisseur.messages import CancelDownload, ChildFailed, ChildRestarted, ChildRestarting
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.helpers import CANCELLED, ERRORED, RUNNING, SUCCEEDED, WAIT

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem
    from regisseur.actors.clock import ManualClock
    from tests.downloads.conftest import HttpServer, Request

BODY = bytes(range(256)) * 256  # 64 KiB
ABANDON = 15.0  # real seconds: a worker that ignores its stop is abandoned after 5


class HeldBody:
    """A route that sends the head and half the body, then holds the rest
    until ``release()`` (bounded); counts the GETs through the server."""

    def __init__(self, http_server: HttpServer) -> None:
        self.half_sent = threading.Event()
        self.gate = http_server.gate()
        self.url = http_server.route("/f.bin", self._answer)
        self._server = http_server

    def _answer(self, request: Request) -> None:
        half = len(BODY) // 2
        request.head(200, {"Content-Length": str(len(BODY))})
        request.write(BODY[:half])
        self.half_sent.set()
        self.gate.wait(WAIT * 4)
        try:
            request.write(BODY[half:])
        except OSError:
            pass  # the client went away

    def release(self) -> None:
        self.gate.set()

    def gets(self) -> int:
        return len(self._server.seen("/f.bin"))


class Fetch:
    """A three-argument impl (it never sees a cancel): GET the URL, store
    the body under the display name (atomically), return its path.

    ``fail``: raise after the body arrived instead. Counts its calls."""

    def __init__(self, folder: Path, *, fail: str | None = None) -> None:
        self.folder = folder
        self.fail = fail
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, download_id: str, target_id: str, name: str) -> str:
        with self._lock:
            self.calls += 1
        with urllib.request.urlopen(target_id, timeout=WAIT * 4) as response:  # noqa: S310
            body = response.read()
        if self.fail is not None:
            raise RuntimeError(self.fail)
        path = self.folder / name
        part = self.folder / f".{name}.{download_id}.part"
        part.write_bytes(body)
        os.replace(part, path)
        return str(path)


def crash_keeper(
    system: ActorSystem,
    clock: ManualClock,
    download: str,
    while_down: Callable[[], object] | None = None,
) -> None:
    """Crash the keeper and let its restart (and its sources') happen.

    A worker whose run ignores its stop holds the teardown up to its
    shutdown timeout (real seconds), then is abandoned with its run going.
    ``while_down`` runs once the keeper waits for its restart. The source's supervisor waits for that (its own bound covers its
    workers'), so the source restarts at the first attempt: before, it was
    abandoned too, at the same moment, and its restart could fail with
    "an actor named 'source:s.queue' is already running".
    """
    probe = Probe(system, ChildRestarting, ChildRestarted, ChildFailed)
    try:
        # Only the status ask crashes it (not a report or an Attach on its way).
        FaultInjector(system).crash(p.KEEPER, message_type=p.Lookup)
        with pytest.raises(InjectedFault):
            system.downloads.status(download)
        probe.expect(ChildRestarting, timeout=ABANDON, name=p.KEEPER)
        if while_down is not None:
            while_down()
        clock.jump(60)  # past the restart backoff (a run is busy: no settling)
        probe.expect(ChildRestarted, timeout=ABANDON, name="source:s")
        probe.expect_no(ChildFailed, within=0.0, name="source:s")
    finally:
        probe.close()


def started(
    system_factory: Callable[..., ActorSystem],
    tmp_path: Path,
    http_server: HttpServer,
    *,
    fail: str | None = None,
    **system_options: Any,
) -> tuple[ActorSystem, HeldBody, Fetch, str]:
    """A system with one ``Fetch`` download in flight (half its body read)."""
    folder = tmp_path / "files"
    folder.mkdir()
    fetch = Fetch(folder, fail=fail)
    body = HeldBody(http_server)
    system = system_factory(
        download_sources=[DownloadSource("s", fetch, concurrency=2)], **system_options
    )
    download = system.downloads.submit("s", body.url, "f.bin")
    assert body.half_sent.wait(WAIT)  # the fetch is in flight
    return system, body, fetch, download


@pytest.mark.timeout(60)
@pytest.mark.parametrize("database", ["sqlite", "memory"])
def test_a_download_finished_across_a_keeper_restart_is_fetched_once(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    tmp_path: Path,
    http_server: HttpServer,
    database: str,
) -> None:
    options: dict[str, Any] = {} if database == "sqlite" else {"database_url": None}
    system, body, fetch, download = started(system_factory, tmp_path, http_server, **options)

    crash_keeper(system, manual_clock, download)
    if database == "sqlite":  # the stored record (in memory: the journal's submit)
        assert system.downloads.status(download).state is RUNNING
    body.release()
    record = system.downloads.wait(download, WAIT)
    system.settle(timeout=WAIT)  # a second run, had one started, has ended too

    assert record.state is SUCCEEDED, record.error
    assert record.id == download
    assert Path(record.file_path).read_bytes() == BODY
    assert (body.gets(), fetch.calls) == (1, 1), "the body was fetched again"
    assert system.downloads.status(download) == record


@pytest.mark.timeout(60)
def test_a_download_failing_across_a_keeper_restart_ends_errored_once(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    tmp_path: Path,
    http_server: HttpServer,
) -> None:
    """A three-argument impl cannot see the stop: its failure is its own, not
    an interruption, and the download ends Errored with it (not run again)."""
    system, body, fetch, download = started(
        system_factory, tmp_path, http_server, fail="checksum mismatch"
    )
    crash_keeper(system, manual_clock, download)
    body.release()
    record = system.downloads.wait(download, WAIT)
    system.settle(timeout=WAIT)

    assert record.state is ERRORED
    assert record.error == "RuntimeError: checksum mismatch"
    assert (body.gets(), fetch.calls) == (1, 1)


@pytest.mark.timeout(60)
def test_a_download_finished_across_two_keeper_restarts_is_fetched_once(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    tmp_path: Path,
    http_server: HttpServer,
) -> None:
    system, body, fetch, download = started(system_factory, tmp_path, http_server)
    crash_keeper(system, manual_clock, download)  # abandons the worker: its run goes on
    crash_keeper(system, manual_clock, download)  # the new workers are idle: at once
    body.release()
    record = system.downloads.wait(download, WAIT)
    system.settle(timeout=WAIT)

    assert record.state is SUCCEEDED, record.error
    assert Path(record.file_path).read_bytes() == BODY
    assert (body.gets(), fetch.calls) == (1, 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("when", ["while the keeper is down", "after its restart"])
def test_a_cancel_around_the_restart_wins_over_the_earlier_runs_late_success(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    tmp_path: Path,
    http_server: HttpServer,
    when: str,
) -> None:
    system, body, fetch, download = started(system_factory, tmp_path, http_server)
    if when == "while the keeper is down":
        # In the keeper's mailbox before its restart: answered by the new keeper.
        asked: list[Any] = []

        def cancel() -> None:
            asked.append(system.ref(p.KEEPER).ask(CancelDownload(download), block=False))

        crash_keeper(system, manual_clock, download, while_down=cancel)
        assert asked[0].get(timeout=WAIT).unwrap() is True
    else:
        crash_keeper(system, manual_clock, download)
        assert system.downloads.cancel(download) is True
    body.release()
    system.settle(timeout=WAIT)
    # The earlier run returned its file by now: its result is too late.
    assert fetch.calls == 1
    record = system.downloads.wait(download, WAIT)
    assert record.state is CANCELLED
    assert system.downloads.status(download).state is CANCELLED
    assert body.gets() == 1


class StopsLate:
    """A context impl whose first run ignores the stop, then gives up (None,
    as after a cancel); later runs return a file at once. Records when each
    run began and ended, to show that no two ran at once."""

    def __init__(self, folder: Path, gate: threading.Event) -> None:
        self.folder = folder
        self.gate = gate
        self.events: list[str] = []
        self.began = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        with self._lock:
            first = not self.events
            self.events.append(f"begin {ctx.claim}")
        self.began.set()
        try:
            if first:
                self.gate.wait(WAIT * 4)  # deaf to the stop
                return None  # it saw the cancel in the end: interrupted
            path = self.folder / name
            path.write_bytes(b"done")
            return str(path)
        finally:
            with self._lock:
                self.events.append(f"end {ctx.claim}")


@pytest.mark.timeout(60)
def test_an_earlier_run_released_late_runs_again_after_it_never_beside_it(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    impl = StopsLate(tmp_path, gate)
    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=2)])
    download = system.downloads.submit("s", "t", "f.bin")
    try:
        assert impl.began.wait(WAIT)
        crash_keeper(system, manual_clock, download)
        assert impl.events == ["begin 1"], "a second run started beside the first"
    finally:
        gate.set()
    record = system.downloads.wait(download, WAIT)

    assert record.state is SUCCEEDED, record.error
    assert impl.events[:2] == ["begin 1", "end 1"]
    assert impl.events[2].startswith("begin ") and impl.events[2] != "begin 1"
    assert len(impl.events) == 4
