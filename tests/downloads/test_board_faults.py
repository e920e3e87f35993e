"""The run board under faults and races: killed workers, a crashing queue,
limits changed under load, the delay with several workers, cancels and stops.

Every test checks what a user depends on: each download ends exactly once
(one terminal ``DownloadStateChanged`` per id), none stays stuck, no
download runs twice at the same time, and the concurrency limit holds for
new starts. Impls are held by a ``Ledger`` (threading primitives, bounded
waits); time is the ``ManualClock`` and ``system.settle()``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import DownloadSource
from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting, DeadLetter
from regisseur.messages.downloads import DownloadStateChanged
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.helpers import CANCELLED, ERRORED, SUCCEEDED, WAIT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from regisseur.actors import ActorSystem
    from regisseur.actors.clock import ManualClock


class Ledger:
    """An impl (it takes the context) that records every run and holds it until released.

    Thread-safe. Per display name: how many runs began (``runs``) and the
    most that ran at the same time (``overlap``); overall: the runs inside
    the impl now (``running``, name -> worker) and the most at once since
    the last ``reset_peak`` (``peak``). A run returns its path once its
    name is released (or everything is), ``None`` once its context is
    cancelled. A held run waits on the system clock's timers (woken by a
    release or a cancel), so ``system.settle()`` counts its worker as idle.
    """

    def __init__(self, *, hold: bool = True) -> None:
        self._cond = threading.Condition()
        self._all_open = not hold
        self._open: set[str] = set()
        self._waiters: set[Any] = set()
        self.timers: Any = None  # the system's timers (see ``attach``)
        self.runs: Counter[str] = Counter()
        self.overlap: Counter[str] = Counter()
        self._now: Counter[str] = Counter()
        self.running: dict[str, str] = {}
        self.started: list[str] = []
        self.saw_cancel: list[str] = []
        self.peak = 0

    def attach(self, system: ActorSystem) -> ActorSystem:
        self.timers = system.timers
        return system

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        worker = threading.current_thread().name.rsplit("/", 1)[-1].split("#")[0]
        with self._cond:
            self.runs[name] += 1
            self._now[name] += 1
            self.overlap[name] = max(self.overlap[name], self._now[name])
            self.running[name] = worker
            self.started.append(name)
            self.peak = max(self.peak, len(self.running))
            self._cond.notify_all()
        try:
            while True:
                with self._cond:
                    if self._all_open or name in self._open:
                        return f"/files/{name}"
                    if ctx.cancelled:
                        self.saw_cancel.append(name)
                        return None
                    waiter = self.timers.waiter(3600.0)
                    self._waiters.add(waiter)
                ctx.on_cancel(waiter.set)
                waiter.wait()
                waiter.cancel()
                with self._cond:
                    self._waiters.discard(waiter)
        finally:
            with self._cond:
                self._now[name] -= 1
                if self._now[name] == 0:
                    self.running.pop(name, None)
                self._cond.notify_all()

    def release(self, *names: str) -> None:
        """Let ``names`` finish (every run, now and later, when none is given)."""
        with self._cond:
            if names:
                self._open.update(names)
            else:
                self._all_open = True
            waiters = list(self._waiters)
            self._cond.notify_all()
        for waiter in waiters:
            waiter.set()

    def reset_peak(self) -> None:
        with self._cond:
            self.peak = len(self.running)

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, WAIT), f"ledger: {what} within {WAIT}s"

    def wait_started(self, count: int) -> None:
        self.wait_for(lambda: len(self.started) >= count, f"{count} started")

    def wait_running(self, count: int) -> None:
        self.wait_for(lambda: len(self.running) == count, f"{count} running")

    def on(self, worker: str) -> str:
        """The name of the download ``worker`` (``source:s.worker-N``) runs now."""
        with self._cond:
            found = [name for name, w in self.running.items() if w == worker]
        assert len(found) == 1, (worker, dict(self.running))
        return found[0]


class Endings:
    """Counts the terminal ``DownloadStateChanged`` events per download id."""

    def __init__(self, system: ActorSystem) -> None:
        self._lock = threading.Lock()
        self.ends: Counter[str] = Counter()
        self.final: dict[str, Any] = {}
        self._subscription = system.events.subscribe(self._record, DownloadStateChanged)

    def _record(self, event: DownloadStateChanged) -> None:
        if event.record.state.terminal:
            with self._lock:
                self.ends[event.record.id] += 1
                self.final[event.record.id] = event.record.state

    def close(self) -> None:
        self._subscription.cancel()


def with_ledger(
    system_factory: Callable[..., ActorSystem], **source: Any
) -> tuple[Ledger, ActorSystem]:
    """A system whose source ``s`` runs a ``Ledger`` (``source``: its other arguments)."""
    ledger = Ledger()
    system = system_factory(download_sources=[DownloadSource("s", ledger, **source)])
    return ledger, ledger.attach(system)


def wait_all(system: ActorSystem, ids: Iterable[str]) -> dict[str, Any]:
    """Each download's final state (every one must end within ``WAIT``)."""
    return {d: system.downloads.wait(d, WAIT).state for d in ids}


def succeeded_once(system: ActorSystem, endings: Endings, ids: list[str]) -> None:
    """Every download succeeded, with exactly one terminal event each."""
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}
    ended_once(system, endings, ids)


def ended_once(system: ActorSystem, endings: Endings, ids: list[str]) -> None:
    """Every id has exactly one terminal event, matching its stored final state."""
    system.settle()
    with endings._lock:
        assert {d: endings.ends[d] for d in ids} == dict.fromkeys(ids, 1)
        for download in ids:
            assert endings.final[download] is system.downloads.status(download).state


def workers(system: ActorSystem, source: str = "s") -> list[str]:
    return sorted(n for n in system.names() if n.startswith(f"source:{source}.worker-"))


def queue_limit(system: ActorSystem, source: str = "s") -> int:
    """The limit the source's queue applies, asked through its mailbox (after the keeper's)."""
    details = system.ref(f"source:{source}.queue").proxy().health().get(timeout=WAIT)
    return int(details["concurrency"])


def names_of(system: ActorSystem, ids: list[str]) -> dict[str, str]:
    return {d: system.downloads.status(d).filename for d in ids}


# -- killed workers ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_worker_killed_while_downloads_wait_loses_and_repeats_none(system_factory, manual_clock):
    ledger, system = with_ledger(system_factory, concurrency=2)
    endings = Endings(system)
    probe = Probe(system, ChildFailed, ChildRestarted)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(8)]
    ledger.wait_running(2)
    victim = ledger.on("source:s.worker-1")

    FaultInjector(system).kill("source:s.worker-1")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    # The keeper errors the run of the dead worker; worker-2 still holds its own.
    assert system.downloads.wait(ids[int(victim[1:])], WAIT).state is ERRORED
    assert ledger.runs[victim] == 1
    ledger.release(*(f"d{i}" for i in range(8) if f"d{i}" != victim))
    manual_clock.advance(60)  # past the restart backoff
    probe.expect(ChildRestarted, timeout=WAIT, name="source:s.worker-1")

    states = wait_all(system, ids)
    by_name = names_of(system, ids)
    assert {by_name[d]: s for d, s in states.items()} == {
        f"d{i}": (ERRORED if f"d{i}" == victim else SUCCEEDED) for i in range(8)
    }
    assert set(ledger.runs.values()) == {1}  # the killed run is not run again
    assert set(ledger.overlap.values()) == {1}
    ended_once(system, endings, ids)
    endings.close()
    probe.close()


@pytest.mark.timeout(30)
def test_a_parked_worker_killed_does_not_hold_a_download_others_could_run(system_factory):
    ledger = Ledger(hold=False)
    system = system_factory(download_sources=[DownloadSource("s", ledger, concurrency=2)])
    ledger.attach(system)
    probe = Probe(system, ChildFailed)
    system.settle()  # both workers parked

    FaultInjector(system).kill("source:s.worker-1")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    system.settle()
    # No clock advance: worker-1 waits for its restart, worker-2 is idle.
    download = system.downloads.submit("s", "t", "d")
    assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    probe.close()


# -- a busy worker between two downloads ------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_message_to_a_busy_worker_is_handled_before_its_next_download(system_factory):
    # A worker goes straight on from one download to the next only while its
    # mailbox is empty: an ask sent during a run is answered before the next run.
    ledger, system = with_ledger(system_factory, concurrency=1)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    ledger.wait_running(1)
    answered = threading.Event()

    def ask() -> None:
        system.ask("source:s.worker-1", "ping", timeout=WAIT)  # unhandled: a dead letter, None
        answered.set()

    asker = threading.Thread(target=ask, name="regisseur:test-asker")
    asker.start()
    system.settle()  # the ask waits in the mailbox behind the running download
    assert not answered.is_set()
    ledger.release("d0")
    assert answered.wait(WAIT)  # while d1 is still held: not after the whole backlog
    asker.join(WAIT)
    ledger.release()
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}


@pytest.mark.timeout(30)
def test_a_crash_planned_for_a_busy_worker_fires_before_its_next_download(
    system_factory, manual_clock
):
    # The testing kit's "crash the next message" means, for a worker running a
    # backlog, between two downloads (as when every download came as a message).
    injector: FaultInjector
    planned_at_start: dict[str, int] = {}
    ledger = Ledger()

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        planned_at_start[name] = injector.pending("source:s.worker-1")
        return ledger(download_id, target_id, name, ctx)

    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=1)])
    ledger.attach(system)
    injector = FaultInjector(system)
    probe = Probe(system, ChildFailed, ChildRestarted)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    ledger.wait_running(1)
    injector.crash("source:s.worker-1")
    ledger.release()
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    manual_clock.advance(60)  # past the restart backoff
    probe.expect(ChildRestarted, timeout=WAIT, name="source:s.worker-1")
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}
    # Planned while d0 ran; fired before d1 started (not after the backlog).
    assert planned_at_start == {"d0": 0, "d1": 0, "d2": 0}
    assert set(ledger.runs.values()) == {1}
    probe.close()


@pytest.mark.timeout(30)
def test_a_restarted_worker_ends_its_failures_in_a_row_with_its_first_download(
    system_factory, manual_clock
):
    # The supervisor counts a worker's failures in a row until a handler of
    # the restarted worker returns. A worker going on through a backlog
    # returns after its first download all the same, so a later failure
    # backs off from the start again (2 s), not as a second failure in a row (4 s).
    ledger, system = with_ledger(system_factory, concurrency=1)
    probe = Probe(system, ChildFailed, ChildRestarted)
    injector = FaultInjector(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    ledger.wait_running(1)
    injector.kill("source:s.worker-1")  # d0 dies with it: the first failure
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, timeout=WAIT, name="source:s.worker-1")
    ledger.wait_for(lambda: ledger.running.get("d1") is not None, "d1 running")
    ledger.release("d1")
    ledger.wait_for(lambda: ledger.running.get("d2") is not None, "d2 running")

    injector.kill("source:s.worker-1")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    manual_clock.advance(2.0)  # the first delay again: d1 ended the run of failures
    probe.expect(ChildRestarted, timeout=WAIT, name="source:s.worker-1")
    states = wait_all(system, ids)
    assert [states[d] for d in ids] == [ERRORED, SUCCEEDED, ERRORED]
    probe.close()


# -- the queue crashing ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_queue_crash_with_downloads_running_and_waiting_loses_none(system_factory, manual_clock):
    ledger, system = with_ledger(system_factory, concurrency=3)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(10)]
    ledger.wait_running(3)
    interrupted = set(ledger.running)

    probe = Probe(system, ChildRestarting)
    FaultInjector(system).crash("source:s.queue")
    late = system.downloads.submit("s", "t", "late")  # its Enqueue hits the crash
    probe.expect(ChildRestarting, timeout=WAIT, name="source:s.queue")
    system.settle()  # the workers are stopped with the queue: their runs are released
    assert sorted(ledger.saw_cancel) == sorted(interrupted)
    ledger.release()
    manual_clock.advance(60)  # past the restart backoff

    everything = [*ids, late]
    assert set(wait_all(system, everything).values()) == {SUCCEEDED}
    assert set(ledger.overlap.values()) == {1}  # never two runs of one download at once
    by_name = names_of(system, everything)
    assert {by_name[d]: ledger.runs[by_name[d]] for d in everything} == {
        name: (2 if name in interrupted else 1) for name in by_name.values()
    }
    ended_once(system, endings, everything)
    endings.close()
    probe.close()


@pytest.mark.timeout(60)
def test_repeated_queue_crashes_under_a_quick_backlog_run_each_download_once(
    system_factory, manual_clock
):
    ledger = Ledger(hold=False)
    system = system_factory(download_sources=[DownloadSource("s", ledger, concurrency=3)])
    ledger.attach(system)
    endings = Endings(system)
    faults = FaultInjector(system)
    probe = Probe(system, ChildRestarting)
    ids: list[str] = []
    for round_ in range(4):
        ids += [system.downloads.submit("s", "t", f"r{round_}-{i}") for i in range(25)]
        faults.crash("source:s.queue")
        system.downloads.configure("s", delay=0)  # a message to the queue: it crashes
        probe.expect(ChildRestarting, timeout=WAIT, name="source:s.queue")
        manual_clock.advance(60)
    succeeded_once(system, endings, ids)
    assert set(ledger.overlap.values()) == {1}
    endings.close()
    probe.close()


# -- concurrency changed under load -------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_lower_limit_holds_for_new_starts_while_older_runs_finish(system_factory):
    ledger, system = with_ledger(system_factory, concurrency=3)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(9)]
    ledger.wait_running(3)

    system.downloads.configure("s", concurrency=1)
    assert queue_limit(system) == 1  # applied by the time configure returned
    ledger.release(ledger.on("source:s.worker-1"))
    system.settle()
    # Two runs above the new limit still go on: nothing new may start yet.
    assert len(ledger.started) == 3
    assert len(ledger.running) == 2

    ledger.reset_peak()
    ledger.release(*ledger.running)
    ledger.wait_started(4)
    system.settle()
    assert ledger.peak <= 2
    ledger.reset_peak()
    ledger.release()
    succeeded_once(system, endings, ids)
    assert ledger.peak == 1
    assert workers(system) == ["source:s.worker-1"]
    endings.close()


@pytest.mark.timeout(30)
def test_configure_returns_once_the_queue_applied_the_new_limit(system_factory, manual_clock):
    """``configure`` is effective at once: it returns after the source's queue applied it.

    The queue is held (a hang on the system clock) with the new limit in
    its mailbox: ``configure`` waits for it. Before, it returned once the
    keeper had stored the limit, and a start right after it could still
    use the old one.
    """
    ledger, system = with_ledger(system_factory, concurrency=3)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(5)]
    ledger.wait_running(3)
    faults = FaultInjector(system)
    faults.hang("source:s.queue", 30.0)
    returned = threading.Event()

    def lower() -> None:
        system.downloads.configure("s", concurrency=1)
        returned.set()

    caller = threading.Thread(target=lower)
    caller.start()
    try:
        system.settle()  # the queue waits in the hang, the new limit behind it
        assert faults.pending("source:s.queue") == 0
        assert not returned.wait(0.2)  # a bounded wait for what must not happen
        manual_clock.advance(30.0)
        assert returned.wait(WAIT)
    finally:
        manual_clock.advance(30.0)
        caller.join(WAIT)
    ledger.release(ledger.on("source:s.worker-1"))
    system.settle()
    assert len(ledger.started) == 3  # two runs above the new limit: nothing new starts
    ledger.release()
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}


@pytest.mark.timeout(30)
def test_a_limit_lowered_and_raised_again_at_once_keeps_its_workers(system_factory):
    ledger, system = with_ledger(system_factory, concurrency=3)
    system.settle()
    for _ in range(5):
        system.downloads.configure("s", concurrency=1)
        system.downloads.configure("s", concurrency=3)
        system.settle()
        assert workers(system) == [f"source:s.worker-{i}" for i in (1, 2, 3)]
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    ledger.wait_running(3)
    ledger.release()
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}


@pytest.mark.timeout(60)
def test_limits_changed_again_and_again_under_a_backlog(system_factory):
    ledger = Ledger(hold=False)
    system = system_factory(download_sources=[DownloadSource("s", ledger, concurrency=2)])
    ledger.attach(system)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(300)]
    for limit in (4, 1, 3, 1, 5, 2, 1, 4, 2, 3):
        system.downloads.configure("s", concurrency=limit)
    system.downloads.configure("s", concurrency=3)
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}
    assert set(ledger.overlap.values()) == {1}
    assert ledger.peak <= 5
    system.settle()
    assert workers(system) == [f"source:s.worker-{i}" for i in (1, 2, 3)]
    ended_once(system, endings, ids)

    # The final limit holds, and every worker of it takes work.
    slow = Ledger()
    slow.attach(system)
    system.downloads.register(DownloadSource("t", slow, concurrency=1))
    more = [system.downloads.submit("t", "t", f"e{i}") for i in range(6)]
    system.downloads.configure("t", concurrency=3)
    slow.wait_running(3)
    slow.reset_peak()
    slow.release()
    assert set(wait_all(system, more).values()) == {SUCCEEDED}
    assert slow.peak == 3
    endings.close()


# -- delay with several workers ------------------------------------------------------------------


def start_times(clock: ManualClock) -> tuple[list[float], Callable[..., str]]:
    starts: list[float] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        starts.append(clock.now())
        return f"/files/{name}"

    return starts, impl


@pytest.mark.timeout(30)
def test_starts_of_several_workers_keep_the_delay(system_factory, manual_clock):
    starts, impl = start_times(manual_clock)
    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=3, delay=5)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(6)]
    system.settle()
    assert starts == [0.0]
    for step in range(1, 6):
        manual_clock.advance(2.5)
        manual_clock.advance(2.5)
        assert starts == [5.0 * n for n in range(step + 1)]
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}


@pytest.mark.timeout(30)
def test_a_delay_lowered_then_raised_strands_nothing(system_factory, manual_clock):
    starts, impl = start_times(manual_clock)
    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=3, delay=100)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(8)]
    system.settle()
    assert starts == [0.0]
    system.downloads.configure("s", delay=1)
    system.settle()
    assert starts == [0.0]  # the next start is due at 1.0 on the clock
    manual_clock.advance(1)
    assert starts == [0.0, 1.0]
    system.downloads.configure("s", delay=10)
    manual_clock.advance(1)
    manual_clock.advance(9)
    manual_clock.advance(10)
    system.downloads.configure("s", delay=0)
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 8
    assert all(gap >= 0 for gap in gaps)
    assert starts[2] >= 2.0  # the first start after the raise keeps at least the old delay


@pytest.mark.timeout(30)
def test_the_worker_waiting_out_the_delay_retired_strands_nothing(system_factory, manual_clock):
    ledger, system = with_ledger(system_factory, delay=5)
    system.downloads.configure("s", concurrency=2)  # worker-2 parks after worker-1
    system.settle()
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    ledger.wait_running(1)
    system.settle()  # worker-2 waits out the delay on its timer
    first = ledger.on("source:s.worker-1")

    system.downloads.configure("s", concurrency=1)
    manual_clock.advance(5)  # its timer: it retires
    assert workers(system) == ["source:s.worker-1"]
    ledger.release()
    manual_clock.advance(5)
    manual_clock.advance(5)
    assert set(wait_all(system, ids).values()) == {SUCCEEDED}
    assert ledger.started[0] == first
    assert set(ledger.runs.values()) == {1}


@pytest.mark.timeout(30)
def test_the_worker_waiting_out_the_delay_killed_strands_nothing(system_factory, manual_clock):
    ledger, system = with_ledger(system_factory, delay=5)
    system.downloads.configure("s", concurrency=2)  # worker-2 parks after worker-1
    system.settle()
    endings = Endings(system)
    probe = Probe(system, ChildFailed)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(4)]
    ledger.wait_running(1)
    system.settle()  # worker-2 waits out the delay on its timer
    ledger.on("source:s.worker-1")

    FaultInjector(system).kill("source:s.worker-2")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-2")
    ledger.release()
    for _ in range(12):
        manual_clock.advance(5)
    succeeded_once(system, endings, ids)
    assert set(ledger.runs.values()) == {1}
    endings.close()
    probe.close()


# -- cancels under load ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cancels_of_waiting_and_running_downloads_under_load(system_factory):
    ledger, system = with_ledger(system_factory, concurrency=3)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(60)]
    ledger.wait_running(3)
    cancelled = [d for n, d in enumerate(ids) if n % 3 != 2]
    errors: list[BaseException] = []

    def cancel(part: list[str]) -> None:
        try:
            for download in part:
                system.downloads.cancel(download)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [
        threading.Thread(target=cancel, args=(cancelled[i::2],), name="regisseur:test-cancel")
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    ledger.release(*(f"d{n}" for n in range(60) if n % 3 == 2))
    for thread in threads:
        thread.join(WAIT)
    assert errors == []

    states = wait_all(system, ids)
    assert {d for d, s in states.items() if s is CANCELLED} == set(cancelled)
    assert {d for d, s in states.items() if s is SUCCEEDED} == set(ids) - set(cancelled)
    by_name = names_of(system, ids)
    # A cancelled download that had not started never starts.
    late_starts = [n for n in ledger.started if n not in ledger.saw_cancel]
    assert all(by_name[d] not in late_starts for d in cancelled)
    assert set(ledger.overlap.values()) <= {1}
    system.settle()
    assert all(system.downloads.status(d).state is CANCELLED for d in cancelled)
    ended_once(system, endings, ids)
    endings.close()


# -- stopping and resuming ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_stop_mid_backlog_leaves_no_dead_letter_and_a_restart_resumes_the_rest(
    system_factory, tmp_path, caplog
):
    url = f"sqlite:///{tmp_path / 'downloads.db'}"
    ledger = Ledger()
    system = system_factory(
        database_url=url, download_sources=[DownloadSource("s", ledger, concurrency=3)]
    )
    ledger.attach(system)
    dead = Probe(system, DeadLetter)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(40)]
    ledger.release(*(f"d{i}" for i in range(10)))
    ledger.wait_started(13)
    system.downloads.configure("s", concurrency=2)  # and a retirement on the way
    system.stop()
    assert dead.events == []
    assert [r.getMessage() for r in caplog.records if "dead_letter" in r.getMessage()] == []
    assert system.threads() == []
    dead.close()
    endings.close()
    succeeded = {f"d{i}" for i, d in enumerate(ids) if endings.final.get(d) is SUCCEEDED}
    assert succeeded  # some had ended, and they stay ended

    again = Ledger(hold=False)
    resumed = system_factory(
        database_url=url, download_sources=[DownloadSource("s", again, concurrency=3)]
    )
    states = wait_all(resumed, ids)
    assert set(states.values()) == {SUCCEEDED}
    assert set(again.runs) == {f"d{i}" for i in range(40)} - succeeded
    assert set(again.runs.values()) == {1}


@pytest.mark.timeout(30)
def test_a_queue_killed_with_downloads_running_and_waiting_loses_none(system_factory, manual_clock):
    ledger, system = with_ledger(system_factory, concurrency=2)
    endings = Endings(system)
    probe = Probe(system, ChildFailed, ChildRestarted)
    system.settle()
    subscribers = system.events.subscriber_count()
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(6)]
    ledger.wait_running(2)

    for _ in range(2):  # the second kill hits the restarted queue
        FaultInjector(system).kill("source:s.queue")
        probe.expect(ChildFailed, timeout=WAIT, name="source:s.queue")
        manual_clock.advance(60)
        probe.expect(ChildRestarted, timeout=WAIT, name="source:s.queue")
    late = system.downloads.submit("s", "t", "late")
    ledger.release()
    everything = [*ids, late]
    assert set(wait_all(system, everything).values()) == {SUCCEEDED}
    assert set(ledger.overlap.values()) == {1}
    ended_once(system, endings, everything)
    # A worker killed now is still heard of (one subscription, not one per kill).
    FaultInjector(system).kill("source:s.worker-1")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    system.settle()
    download = system.downloads.submit("s", "t", "after")
    assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    system.settle()
    assert system.events.subscriber_count() == subscribers  # none left by a killed queue
    endings.close()
    probe.close()


@pytest.mark.timeout(30)
def test_a_late_death_notice_does_not_error_the_successors_download(system_factory, manual_clock):
    """The keeper hears of a worker's death through the event bus; a slow bus
    (a subscriber's callback, say) can deliver it after the worker's restart."""
    ledger, system = with_ledger(system_factory)
    probe = Probe(system, ChildRestarted)
    first = system.downloads.submit("s", "t", "first")
    ledger.wait_running(1)
    system.settle()

    faults = FaultInjector(system)
    faults.hang("regisseur.events", 100)  # the bus's next delivery waits 100 s
    faults.kill("source:s.worker-1")
    ledger.wait_running(0)  # the killed run saw its cancel
    manual_clock.advance(60)  # the worker restarts; the bus still waits
    second = system.downloads.submit("s", "t", "second")
    ledger.wait_running(1)  # the successor runs it
    manual_clock.advance(60)  # now the bus delivers the death notice
    probe.expect(ChildRestarted, timeout=WAIT, name="source:s.worker-1")
    ledger.release()
    assert system.downloads.wait(first, WAIT).state is ERRORED  # its worker died
    assert system.downloads.wait(second, WAIT).state is SUCCEEDED
    probe.close()


@pytest.mark.timeout(60)
def test_a_stop_during_a_quick_backlog_drops_no_report(system_factory, tmp_path):
    """The keeper stops after the sources; the workers' last reports must not die in its mailbox."""
    url = f"sqlite:///{tmp_path / 'downloads.db'}"
    done = threading.Event()
    runs: Counter[str] = Counter()

    def impl(download_id: str, target_id: str, name: str) -> str:
        runs[name] += 1
        if len(runs) == 150:
            done.set()
        return f"/files/{name}"

    system = system_factory(
        database_url=url, download_sources=[DownloadSource("s", impl, concurrency=4)]
    )
    dead = Probe(system, DeadLetter)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(600)]
    assert done.wait(WAIT)
    system.stop()
    endings.close()
    assert dead.events == []
    dead.close()
    first = dict(runs)
    succeeded = {f"d{i}" for i, d in enumerate(ids) if endings.final.get(d) is SUCCEEDED}

    runs.clear()
    resumed = system_factory(
        database_url=url, download_sources=[DownloadSource("s", impl, concurrency=4)]
    )
    assert set(wait_all(resumed, ids).values()) == {SUCCEEDED}
    assert not set(runs) & succeeded  # what ended stays ended
    # A download runs again only if its first run's result was not stored.
    again = set(runs) & set(first)
    assert len(again) <= 4, sorted(again)


@pytest.mark.timeout(60)
def test_a_cancel_racing_the_result_of_a_run_is_never_overwritten(system_factory):
    ledger, system = with_ledger(system_factory, concurrency=4)
    endings = Endings(system)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(40)]
    said: dict[str, bool] = {}
    errors: list[BaseException] = []

    def cancel_all() -> None:
        try:
            for download in ids:
                said[download] = system.downloads.cancel(download)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    ledger.wait_running(4)
    canceller = threading.Thread(target=cancel_all, name="regisseur:test-cancel")
    canceller.start()
    for n in range(40):  # results race the cancels
        ledger.release(f"d{n}")
    canceller.join(WAIT)
    assert errors == []
    states = wait_all(system, ids)
    for download in ids:
        expected = CANCELLED if said[download] else SUCCEEDED
        assert states[download] is expected, (download, said[download])
    assert set(ledger.runs.values()) <= {1}
    ended_once(system, endings, ids)
    endings.close()
