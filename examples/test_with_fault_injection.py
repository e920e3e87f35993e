"""Simulating failures in your own tests with regisseur's pytest fixtures.

The fixtures come with the package (a pytest plugin): ``manual_clock``,
``system_factory`` (systems on that clock, each on a temporary SQLite
file, stopped and checked for leftover threads after the test),
``actor_system``, ``faults`` and ``probe`` (both follow every system the
test makes). Nothing sleeps: time moves when the test advances the clock,
and ``advance`` lets the actors handle everything that falls due, deadline
by deadline, before it returns.

Run: ``.venv/bin/python -m pytest -q examples/test_with_fault_injection.py``
"""

from __future__ import annotations

import threading
from typing import Any

from regisseur.actors import ActorSystem, ManualClock, ServerActor
from regisseur.actors.downloads import DownloadContext, DownloadSource
from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting, DownloadState
from regisseur.supervision import ChildSpec
from regisseur.supervision.testing import FaultInjector, Probe


class Poller(ServerActor):
    """Your per-server loop; the tests never change it."""

    def run_loop(self) -> None:
        self.log.info("polled")


def test_a_crash_is_restarted_with_growing_backoff(
    system_factory: Any, manual_clock: ManualClock, probe: Probe, faults: FaultInjector
) -> None:
    system = system_factory([ChildSpec("poller", Poller, args=("eu-1",), kwargs={"interval": 1})])
    system.settle()  # the first run (right after the start) is done; the next is at t=1

    faults.crash("poller", times=2, exc=ConnectionError("eu-1 is down"))
    manual_clock.advance(1.0)  # the next tick crashes
    assert probe.expect(ChildFailed, name="poller").error == "ConnectionError: eu-1 is down"
    assert probe.expect(ChildRestarting, name="poller").delay == 2.0
    manual_clock.advance(2.0)  # fires the restart timer; the first run crashes again
    probe.expect(ChildRestarted, name="poller")
    assert probe.expect(ChildRestarting, name="poller").delay == 4.0  # backoff doubles
    manual_clock.advance(3.9)
    probe.expect_no(ChildRestarted, name="poller", within=0)  # not yet: 0.1 s to go
    manual_clock.advance(0.1)
    probe.expect(ChildRestarted, name="poller", timeout=0)
    report = system.health().find("poller")
    assert report is not None and report.status == "running" and report.restarts == 2


def test_a_killed_download_worker_errors_its_download(
    system_factory: Any, manual_clock: ManualClock
) -> None:
    started = threading.Event()

    def slow(download_id: str, target_id: str, name: str, ctx: DownloadContext) -> str | None:
        started.set()
        ctx.sleep(3600)  # on the manual clock: ends only when cancelled or killed
        return None

    system: ActorSystem = system_factory(download_sources=[DownloadSource("s", slow)])
    probe = Probe(system)
    download_id = system.downloads.submit("s", "t", "f")
    assert started.wait(5)
    FaultInjector(system).kill("source:s.worker-1")  # the thread dies, no hook runs
    record = system.downloads.wait(download_id, timeout=5)
    assert record.state is DownloadState.ERRORED
    assert record.error is not None and record.error.startswith("worker died")
    probe.expect(ChildRestarting, name="source:s.worker-1", delay=2.0)
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="source:s.worker-1")  # a fresh worker took over


def test_a_restart_that_fails_to_start_is_retried_with_backoff(
    actor_system: ActorSystem, faults: FaultInjector, probe: Probe, manual_clock: ManualClock
) -> None:
    actor_system.spawn(ChildSpec("poller", Poller, args=("us-1",), kwargs={"interval": 1}))
    actor_system.settle()  # the first run is done: the faults hit the tick at t=1
    faults.fail_start("poller", exc=OSError("no route to host"))
    faults.crash("poller")
    manual_clock.advance(1.0)  # the tick crashes; the restart is due in 2 s
    probe.expect(ChildRestarting, name="poller", delay=2.0)
    manual_clock.advance(2.0)  # the restart fails to start ...
    probe.expect(ChildFailed, name="poller", error="OSError: no route to host")
    probe.expect(ChildRestarting, name="poller", delay=4.0)  # ... and backs off further
    manual_clock.advance(4.0)
    probe.expect(ChildRestarted, name="poller")
