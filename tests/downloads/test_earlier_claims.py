"""A run knows whether an earlier keeper held a claim of its download.

``DownloadContext.earlier_claim`` is the highest claim an earlier keeper
recorded (an earlier process on the database, here a system stopped before
the next one starts on the same SQLite file); a re-claim within one keeper
(a worker released when its queue crashed) adds none. HttpSource takes a
file already under the download's name as its own earlier publish only
after an earlier keeper's claim: within one keeper the identical file
there is the user's, and stays as it is.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads.http import HttpSource
from regisseur.messages import ChildRestarting
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.conftest import HttpServer, Request, serve_bytes
from tests.downloads.helpers import SUCCEEDED, WAIT

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem
    from regisseur.actors.clock import ManualClock

BODY = bytes(range(256)) * 64  # 16 KiB


class Held:
    """An impl that records ``(name, claim, earlier_claim)`` per run and holds
    each run until ``finish()`` or its cancel (bounded)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.runs: list[tuple[str, int, int]] = []
        self._finish = False

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        with self._cond:
            self.runs.append((name, ctx.claim, ctx.earlier_claim))
            self._cond.notify_all()
        ctx.on_cancel(self._wake)
        with self._cond:
            self._cond.wait_for(lambda: self._finish or ctx.cancelled, WAIT)
        return None if ctx.cancelled else f"/files/{name}"

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_runs(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.runs) >= count, WAIT), self.runs

    def finish(self) -> None:
        with self._cond:
            self._finish = True
            self._cond.notify_all()


def crash_queue(system: ActorSystem, clock: ManualClock, source: str) -> None:
    """Crash ``source``'s queue: its workers stop, their runs are released and
    claimed again by the restarted queue (within this keeper)."""
    probe = Probe(system, ChildRestarting)
    try:
        FaultInjector(system).crash(f"source:{source}.queue")
        system.tell(p.queue_name(source), p.Applied())  # a message to the queue: it crashes
        # Scheduled before it is published: the clock can be advanced now.
        probe.expect(ChildRestarting, timeout=WAIT, name=f"source:{source}.queue")
        clock.jump(60)  # past the restart backoff (the runs are busy: no settling)
    finally:
        probe.close()


@pytest.mark.timeout(60)
def test_earlier_claim_is_an_earlier_keepers_never_a_reclaim_within_one(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first_runs, second_runs = Held(), Held()
    first = system_factory(
        name="first", database_url=url, download_sources=[DownloadSource("s", first_runs)]
    )
    carried = first.downloads.submit("s", "t", "carried.bin")
    first_runs.wait_runs(1)
    first.downloads.status(carried)  # an ask: answered once its start (and claim) is stored
    first.stop()  # a stop keeps it InProgress for the next process
    [(_, first_claim, first_earlier)] = first_runs.runs
    assert (first_claim, first_earlier) == (1, 0)

    second = system_factory(
        name="second",
        database_url=url,
        download_sources=[DownloadSource("s", second_runs, concurrency=2)],
    )
    second_runs.wait_runs(1)
    fresh = second.downloads.submit("s", "t", "fresh.bin")
    second_runs.wait_runs(2)
    assert sorted(second_runs.runs) == [("carried.bin", 2, 1), ("fresh.bin", 1, 0)]

    crash_queue(second, manual_clock, "s")
    second_runs.wait_runs(4)
    # Claimed again within this keeper: the carried download still runs
    # after the first system's claim; the fresh one after none.
    again = {name: (claim, earlier) for name, claim, earlier in second_runs.runs[2:]}
    assert again["carried.bin"][0] > 2 and again["fresh.bin"][0] > 1  # claimed anew
    assert (again["carried.bin"][1], again["fresh.bin"][1]) == (1, 0)
    second_runs.finish()
    for download in (carried, fresh):
        assert second.downloads.wait(download, WAIT).state is SUCCEEDED


def _stalling(body: bytes, first_half_sent: threading.Event, gate: threading.Event) -> Any:
    """A route whose first answer stops halfway (until ``gate``); later ones serve ``body``."""
    answered = 0

    def answer(request: Request) -> None:
        nonlocal answered
        answered += 1
        if answered > 1:
            serve_bytes(request, body, etag='"v1"')
            return
        half = len(body) // 2
        request.head(200, {"Content-Length": str(len(body)), "ETag": '"v1"'})
        request.write(body[:half])
        first_half_sent.set()
        gate.wait(WAIT)
        try:
            request.write(body[half:])
        except OSError:
            pass  # the client went away (its run was stopped)

    return answer


@pytest.mark.timeout(60)
def test_a_reclaim_within_one_process_never_takes_the_users_identical_file(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    tmp_path: Path,
    http_server: HttpServer,
) -> None:
    """The user's own report.pdf, byte for byte the download, sits under its
    name. The first run is stopped midway (its queue crashed) and the
    download claimed again in the same process. Before: that second claim
    compared the file, found the same bytes and took it as an earlier
    publish (the user's file recorded as the download, the part removed);
    now it publishes ``report (1).pdf`` and leaves the user's file alone."""
    folder = tmp_path / "files"
    folder.mkdir()
    mine = folder / "report.pdf"
    mine.write_bytes(BODY)
    before = mine.stat()
    sent, gate = threading.Event(), http_server.gate()
    url = http_server.route("/report.pdf", _stalling(BODY, sent, gate))
    system = system_factory(download_sources=[HttpSource(directory=folder, retries=0)])
    download = system.downloads.submit("http", url, "report.pdf")
    assert sent.wait(WAIT)

    crash_queue(system, manual_clock, "http")
    gate.set()
    record = system.downloads.wait(download, WAIT)
    assert record.state is SUCCEEDED, record.error
    assert len(http_server.seen("/report.pdf")) == 2, "a second run fetched it"
    assert record.file_path == str(folder.resolve() / "report (1).pdf")
    assert Path(record.file_path).read_bytes() == BODY
    after = mine.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert mine.read_bytes() == BODY
    assert sorted(p.name for p in folder.iterdir()) == ["report (1).pdf", "report.pdf"]
