"""An id returned by ``submit()`` is never lost: the keeper's crash or death
while it handles the submit (or before it stored it) does not drop it.

Each test injects the fault with ``FaultInjector`` into the keeper, lets the
supervisor restart it (the manual clock is advanced past the backoff) and
then waits for the download to end. Without the journal of accepted
submits, ``wait()`` raised ``UnknownDownloadError`` at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads import DownloadSource
from regisseur.messages import ChildRestarted, DeadLetter, DownloadState
from regisseur.messages.downloads import QueueDownload
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.helpers import SUCCEEDED, WAIT, quick

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem
    from regisseur.supervision.testing import ManualClock

KEEPER = "download-keeper"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "memory"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str | None:
    """Both keepers: one that stores its records, one that keeps them in memory."""
    return f"sqlite:///{tmp_path / 'downloads.db'}" if request.param == "sqlite" else None


def _in_the_hang(system: ActorSystem, faults: FaultInjector) -> None:
    """Return once the keeper has taken the message and waits in the injected hang.

    A thread waiting on the system clock counts as settled, so ``settle()``
    returns exactly then; no polling.
    """
    system.settle(timeout=WAIT)
    assert faults.pending(KEEPER) == 0, "the keeper never reached the hang"


def _restart_keeper(system: ActorSystem, probe: Probe, clock: ManualClock) -> None:
    """Advance the clock until the keeper has been restarted."""
    deadline = time.monotonic() + WAIT
    while not any(isinstance(e, ChildRestarted) and e.name == KEEPER for e in probe.events):
        assert time.monotonic() < deadline, "the keeper was not restarted"
        system.settle(timeout=WAIT)
        clock.advance(60.0)  # past any restart backoff
    system.settle(timeout=WAIT)


def test_a_submit_the_keeper_crashes_on_still_runs(
    system_factory, manual_clock: ManualClock, database_url: str | None
) -> None:
    system = system_factory(
        download_sources=[DownloadSource("s", quick)], database_url=database_url
    )
    probe = Probe(system, ChildRestarted, DeadLetter)
    FaultInjector(system).crash(KEEPER, message_type=QueueDownload)

    download = system.downloads.submit("s", "t", "one")
    probe.expect(DeadLetter, recipient=KEEPER, timeout=WAIT)  # the crash happened
    _restart_keeper(system, probe, manual_clock)

    record = system.downloads.wait(download, WAIT)
    assert record.state is SUCCEEDED
    assert record.file_path == "/files/one"
    assert [r.id for r in system.downloads.list()] == [download]


def test_a_submit_in_hand_when_the_keeper_is_killed_still_runs(
    system_factory, manual_clock: ManualClock, database_url: str | None
) -> None:
    system = system_factory(
        download_sources=[DownloadSource("s", quick)], database_url=database_url
    )
    probe = Probe(system, ChildRestarted)
    faults = FaultInjector(system)
    faults.hang(KEEPER, 600.0, message_type=QueueDownload)

    download = system.downloads.submit("s", "t", "one")
    _in_the_hang(system, faults)
    faults.kill(KEEPER)  # dies with the submit in hand
    _restart_keeper(system, probe, manual_clock)

    assert system.downloads.wait(download, WAIT).state is SUCCEEDED


def test_submits_applied_but_not_yet_stored_survive_a_killed_keeper(
    system_factory, manual_clock: ManualClock
) -> None:
    """Group commit: the keeper applies a submit in memory and stores it once
    its mailbox is empty. Killed before that, it left nothing behind."""
    system = system_factory(download_sources=[DownloadSource("s", quick)])
    probe = Probe(system, ChildRestarted)
    faults = FaultInjector(system)
    faults.hang(KEEPER, 5.0, message_type=QueueDownload)
    first = system.downloads.submit("s", "t", "first")
    _in_the_hang(system, faults)
    faults.hang(KEEPER, 600.0, message_type=QueueDownload)
    second = system.downloads.submit("s", "t", "second")
    manual_clock.advance(5.0)  # the first is applied; the second, queued behind it, hangs
    _in_the_hang(system, faults)
    faults.kill(KEEPER)
    _restart_keeper(system, probe, manual_clock)

    assert system.downloads.wait(first, WAIT).state is SUCCEEDED
    assert system.downloads.wait(second, WAIT).state is SUCCEEDED
    assert [r.id for r in system.downloads.list()] == [first, second]


def test_a_download_the_keeper_had_already_stored_is_not_queued_twice(
    system_factory, manual_clock: ManualClock, database_url: str | None
) -> None:
    """Replaying accepted submits after a restart skips those already stored."""
    runs: list[str] = []

    def counted(download_id: str, target_id: str, name: str) -> str:
        runs.append(download_id)
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", counted)], database_url=database_url
    )
    done = system.downloads.submit("s", "t", "done")
    assert system.downloads.wait(done, WAIT).state is SUCCEEDED
    probe = Probe(system, ChildRestarted, DeadLetter)
    faults = FaultInjector(system)
    faults.crash(KEEPER, message_type=QueueDownload)
    lost = system.downloads.submit("s", "t", "lost")
    probe.expect(DeadLetter, recipient=KEEPER, timeout=WAIT)
    _restart_keeper(system, probe, manual_clock)

    assert system.downloads.wait(lost, WAIT).state is SUCCEEDED
    system.settle(timeout=WAIT)
    assert sorted(runs) == sorted([done, lost])
    states = {r.id: r.state for r in system.downloads.list()}
    if database_url is not None:
        assert states == {done: DownloadState.SUCCEEDED, lost: DownloadState.SUCCEEDED}


def test_submits_waiting_in_the_mailbox_when_the_system_stops_run_at_the_next_start(
    system_factory, tmp_path
) -> None:
    """A stop overtakes the keeper's queued submits; they are stored, not dropped."""
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    system = system_factory(download_sources=[DownloadSource("s", quick)], database_url=url)
    faults = FaultInjector(system)
    faults.hang(KEEPER, 3600.0, message_type=QueueDownload)
    ids = [system.downloads.submit("s", "t", f"f{i}") for i in range(5)]
    _in_the_hang(system, faults)
    system.stop()  # the keeper is held in the first submit; the other four wait in its mailbox

    again = system_factory(download_sources=[DownloadSource("s", quick)], database_url=url)
    for download in ids:
        record = again.downloads.wait(download, WAIT)
        assert record.state is SUCCEEDED, (download, record)
    assert sorted(r.id for r in again.downloads.list()) == sorted(ids)
