"""A stop of a source whose runs do not see it costs one worker's bound, not one per worker.

An impl without a context (or one blocked in a call a cancel cannot reach)
never sees its worker's stop: the worker overruns its ``shutdown_timeout``
(5 s) and is abandoned, its run going on. Since a source's supervisor is
awaited for its children's bounds (``ChildSpec.stop_bound``), it stopped
its workers one after the other: a system with N such runs took N × 5 s to
stop (a ``with ActorSystem(...)`` block, Ctrl-C of a program), where it
took 5 s before. The workers of a source are alike and their stops do not
depend on each other: they are asked together and awaited together.

Real time: each test waits out one worker's stop bound (about 5 s).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads import _protocol as p
from regisseur.messages import ChildRestarted, ChildRestarting, ChildStopped, ChildStopTimedOut
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.helpers import WAIT

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem
    from regisseur.actors.clock import ManualClock

RUNS = 4
BOUND = 5.0  # a worker's default shutdown_timeout


class Deaf:
    """A three-argument impl that runs until ``gate`` is set (bounded): it never sees a stop."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = threading.Semaphore(0)

    def __call__(self, download_id: str, target_id: str, name: str) -> str | None:
        self.running.release()
        self.gate.wait(60.0)
        return None


@pytest.mark.timeout(90)
def test_a_stop_with_runs_that_ignore_it_waits_one_worker_bound_not_one_per_worker(
    system_factory: Callable[..., ActorSystem],
) -> None:
    impl = Deaf()
    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=RUNS)])
    abandoned: list[ChildStopTimedOut] = []
    system.events.subscribe(abandoned.append, ChildStopTimedOut)
    try:
        for index in range(RUNS):
            system.downloads.submit("s", f"t{index}", f"f{index}")
        for _ in range(RUNS):
            assert impl.running.acquire(timeout=WAIT)  # every worker is in its impl

        began = time.monotonic()
        system.stop()
        took = time.monotonic() - began
    finally:
        impl.gate.set()

    workers = sorted(event.name for event in abandoned)
    assert workers == [f"source:s.worker-{index}" for index in range(1, RUNS + 1)]
    # Before: one worker after the other, RUNS × 5 s (20 s).
    assert took < 2 * BOUND, f"the stop took {took:.1f} s"


@pytest.mark.timeout(90)
def test_a_queue_restart_with_runs_that_ignore_the_stop_waits_one_worker_bound(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock
) -> None:
    """A crash of the queue restarts its workers with it (REST_FOR_ONE): they
    are torn down together too. Before: one after the other, the source's
    supervisor (and every download of the source) held RUNS × 5 s."""
    impl = Deaf()
    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=RUNS)])
    probe = Probe(system, ChildRestarting, ChildRestarted)
    try:
        for index in range(RUNS):
            system.downloads.submit("s", f"t{index}", f"f{index}")
        for _ in range(RUNS):
            assert impl.running.acquire(timeout=WAIT)
        FaultInjector(system).crash(p.queue_name("s"))
        began = time.monotonic()
        system.tell(p.queue_name("s"), "crash")
        # Said once the group is torn down (before its restart's backoff).
        probe.expect(ChildRestarting, timeout=RUNS * BOUND + WAIT, name=p.queue_name("s"))
        took = time.monotonic() - began
        manual_clock.jump(60)  # past the backoff
        probe.expect(ChildRestarted, timeout=WAIT, name=p.queue_name("s"))
    finally:
        probe.close()
        impl.gate.set()
    assert took < 2 * BOUND, f"the teardown took {took:.1f} s"


@pytest.mark.timeout(90)
def test_sources_with_runs_that_ignore_the_stop_stop_together_and_the_keeper_last(
    system_factory: Callable[..., ActorSystem],
) -> None:
    """Sources share nothing but the keeper, which they depend on: they are
    asked to stop together, and the keeper stops once they all have.
    Before: one source after the other, SOURCES × 5 s (15 s)."""
    names = [f"s{index}" for index in range(3)]
    impls = {name: Deaf() for name in names}
    system = system_factory(download_sources=[DownloadSource(name, impls[name]) for name in names])
    stopped: list[str] = []
    system.events.subscribe(lambda event: stopped.append(event.name), ChildStopped)
    try:
        for name in names:
            system.downloads.submit(name, "t", "f")
        for name in names:
            assert impls[name].running.acquire(timeout=WAIT)  # each source's worker is in its impl
        began = time.monotonic()
        system.stop()
        took = time.monotonic() - began
    finally:
        for impl in impls.values():
            impl.gate.set()
    assert took < 2 * BOUND, f"the stop took {took:.1f} s"
    sources = [stopped.index(p.source_supervisor(name)) for name in names]
    assert max(sources) < stopped.index(p.KEEPER), stopped
