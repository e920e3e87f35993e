"""Virtual time without races: ``ManualClock.advance`` settles as it goes.

``advance`` lets every system on the clock settle first, then fires timers
deadline by deadline, settling after each, like trio's autojump clock. The
tests here do what users write: no ``settle()`` between a crash and an
``advance``, no ``settle()`` after it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ServerActor
from regisseur.actors.clock import ManualClock, RealClock, monotonic
from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting
from regisseur.supervision import Backoff, ChildSpec
from regisseur.supervision.testing import Probe

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem
    from regisseur.supervision.testing import FaultInjector

pytestmark = pytest.mark.timeout(30)


class Ticker(ServerActor):
    """Records the clock time of every run."""

    def __init__(self, runs: list[float]) -> None:
        super().__init__("ticker", interval=10.0)
        self.times = runs

    def run_loop(self) -> None:
        self.times.append(self.system.clock.now())


class Fragile(Actor):
    """Raises on "crash", answers anything else."""

    def __init__(self, log: list[Any] | None = None) -> None:
        super().__init__()
        self.seen = log if log is not None else []

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise KeyError(message)
        self.seen.append(message)
        return message


class Advancer(Actor):
    """Advances the clock from its own handler."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock

    def on_receive(self, message: Any) -> Any:
        self.clock.advance(message)
        return self.clock.now()


def test_advance_runs_a_ten_second_loop_three_times_in_thirty_seconds(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock
) -> None:
    runs: list[float] = []
    system = system_factory([ChildSpec("ticker", Ticker, args=(runs,))])
    manual_clock.advance(0)  # settles: the first run, right after the start
    assert runs == [0.0]
    manual_clock.advance(30)
    assert runs == [0.0, 10.0, 20.0, 30.0]
    manual_clock.advance(5)
    assert runs == [0.0, 10.0, 20.0, 30.0]
    assert system.ask("ticker", "x", timeout=1) is None  # unhandled: a dead letter


def test_crash_then_advance_restarts_without_settling_in_between(
    system_factory: Callable[..., ActorSystem], probe: Probe, manual_clock: ManualClock
) -> None:
    system = system_factory([ChildSpec("inbox", Fragile, backoff=Backoff(initial=2.0))])
    for _ in range(5):  # the race the old advance lost every time
        system.tell("inbox", "crash")
        manual_clock.advance(2)
        probe.expect(ChildRestarted, name="inbox", timeout=0)
        assert probe.expect(ChildRestarting, name="inbox", timeout=0).delay == 2.0
        assert system.ask("inbox", "ok") == "ok"  # a success resets the backoff


def test_a_restart_is_timed_from_the_failure_under_a_manual_clock(
    system_factory: Callable[..., ActorSystem], probe: Probe, manual_clock: ManualClock
) -> None:
    system = system_factory([ChildSpec("inbox", Fragile, backoff=Backoff(initial=2.0))])
    system.tell("inbox", "crash")
    manual_clock.advance(1.5)
    probe.expect_no(ChildRestarted, within=0)
    manual_clock.advance(0.5)
    probe.expect(ChildRestarted, name="inbox", timeout=0)


def test_faults_and_probe_fixtures_work_on_a_factory_system(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
) -> None:
    system = system_factory([ChildSpec("inbox", Fragile)])
    faults.crash("inbox", exc=ValueError("injected"))
    system.tell("inbox", "hello")
    manual_clock.advance(2)
    assert probe.expect(ChildFailed, name="inbox", timeout=0).error == "ValueError: injected"
    probe.expect(ChildRestarted, name="inbox", timeout=0)
    assert system.ask("inbox", "again") == "again"


def test_the_fixtures_follow_every_system_and_find_names_in_the_right_one(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
) -> None:
    one = system_factory([ChildSpec("a", Fragile)], name="one")
    two = system_factory([ChildSpec("b", Fragile)], name="two")
    faults.crash("b")
    two.tell("b", "x")
    one.tell("a", "crash")
    manual_clock.advance(2)  # settles both systems on the clock
    assert {e.name for e in probe.events if isinstance(e, ChildRestarted)} == {"a", "b"}
    assert probe.system is one
    faults.crash("a", times=3)
    assert faults.pending("a") == 3
    with pytest.raises(RuntimeError, match="no system of this test runs it"):
        faults.crash("nowhere")


def test_the_faults_fixture_cancels_what_did_not_fire(
    system_factory: Callable[..., ActorSystem], faults: FaultInjector
) -> None:
    system = system_factory([ChildSpec("a", Fragile)])
    faults.crash("a", times=5)
    faults.close()
    assert faults.pending("a") == 0
    assert system.ask("a", "fine") == "fine"


def test_advance_from_inside_an_actor_does_not_wait_for_that_actor(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock
) -> None:
    runs: list[float] = []
    system = system_factory(
        [
            ChildSpec("ticker", Ticker, args=(runs,)),
            ChildSpec("advancer", Advancer, args=(manual_clock,)),
        ]
    )
    assert system.ask("advancer", 20.0) == 20.0
    assert runs == [0.0, 10.0, 20.0]


def test_advance_names_an_actor_busy_in_its_own_code(
    system_factory: Callable[..., ActorSystem],
) -> None:
    release = threading.Event()

    class Blocked(Actor):
        def on_receive(self, message: Any) -> Any:
            release.wait(10)

    clock = ManualClock(settle_timeout=0.2)
    system = system_factory([ChildSpec("blocked", Blocked)], clock=clock)
    system.tell("blocked", "go")
    with pytest.raises(TimeoutError, match="busy: blocked"):
        clock.advance(1)
    assert clock.now() == 0.0  # it did not settle first: time did not move
    release.set()
    clock.advance(1)
    assert clock.now() == 1.0
    with pytest.raises(ValueError, match="settle_timeout"):
        ManualClock(settle_timeout=0)


class SlowStart(Actor):
    """Holds its supervisor in ``on_start`` until released."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        release.wait(10)


class Stamped(Fragile):
    """Notes when it failed, on its own thread."""

    def __init__(self, failed: list[float], noted: threading.Event) -> None:
        super().__init__()
        self.failed = failed
        self.noted = noted

    def on_failure(self, *exc_info: Any) -> None:
        self.failed.append(monotonic())
        self.noted.set()


def test_a_restart_backoff_counts_from_the_failure_not_from_its_handling(
    system_factory: Callable[..., ActorSystem],
) -> None:
    """Real time: the supervisor is busy for 1.5 s when the child fails."""
    failed: list[float] = []
    noted = threading.Event()
    release = threading.Event()
    spec = ChildSpec("inbox", Stamped, args=(failed, noted), backoff=Backoff(initial=1.0))
    system = system_factory([spec], clock=RealClock())
    events = Probe(system, ChildRestarting, ChildRestarted)
    spawner = threading.Thread(
        target=system.spawn, args=(ChildSpec("slow", SlowStart, args=(release,)),)
    )
    spawner.start()  # the root supervisor now waits in SlowStart.__init__
    try:
        system.tell("inbox", "crash")
        assert noted.wait(5)  # failed; the notice waits in the busy supervisor's queue
        # Keep the supervisor busy past the backoff (time passing is the point).
        assert not release.wait(1.5)
    finally:
        release.set()
        spawner.join(10)
    assert events.expect(ChildRestarting, name="inbox", timeout=5).delay == 1.0
    events.expect(ChildRestarted, name="inbox", timeout=5)
    restarted = monotonic()
    events.close()
    # Handled 1.5 s after the failure, the 1 s backoff has already run out:
    # the restart follows at once (at 2.5 s after the failure before the fix).
    assert restarted - failed[0] < 2.3


def test_jump_moves_time_without_waiting_for_a_busy_actor(
    system_factory: Callable[..., ActorSystem],
) -> None:
    release = threading.Event()
    runs: list[float] = []

    class Blocked(Actor):
        def on_receive(self, message: Any) -> Any:
            release.wait(10)

    clock = ManualClock(settle_timeout=0.2)
    system = system_factory(
        [ChildSpec("blocked", Blocked), ChildSpec("ticker", Ticker, args=(runs,))], clock=clock
    )
    system.settle()
    system.tell("blocked", "go")
    clock.jump(10)  # the ticker's timer fires; nothing waits for "blocked"
    assert clock.now() == 10.0
    release.set()
    system.settle()
    assert runs == [0.0, 10.0]
    with pytest.raises(ValueError, match="jump"):
        clock.jump(-1)


def test_two_advances_at_once_keep_deadline_order_and_the_later_target(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock
) -> None:
    runs: list[float] = []
    system = system_factory(
        [
            ChildSpec("ticker", Ticker, args=(runs,)),
            ChildSpec("advancer", Advancer, args=(manual_clock,)),
        ]
    )
    other = threading.Thread(target=manual_clock.advance, args=(25.0,))
    other.start()
    assert system.ask("advancer", 40.0, timeout=10) >= 40.0
    other.join(10)
    assert not other.is_alive()
    # The actor's advance counts from wherever the other one had got to, so
    # time ends at 40 or later; the loop ran once per deadline, in order,
    # none twice or skipped.
    now = manual_clock.now()
    assert 40.0 <= now <= 65.0
    assert runs == [10.0 * i for i in range(int(now // 10) + 1)]
