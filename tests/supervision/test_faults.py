"""The FaultInjector: crashes, failed starts, hangs and killed threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    DeadLetter,
)
from regisseur.supervision import FatalError
from regisseur.supervision.testing import InjectedFault
from tests.supervision.helpers import Journal, events_of, spec

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import FaultInjector, Probe


@pytest.fixture
def journal() -> Journal:
    return Journal()


@dataclass(frozen=True)
class Ping:
    n: int


def test_crash_with_message_type_hits_only_that_type(
    actor_system: ActorSystem,
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
    journal: Journal,
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.crash("w", message_type=Ping)
    assert faults.pending("w") == 1
    actor_system.tell("w", "plain")
    actor_system.tell("w", Ping(1))
    letter = probe.expect(DeadLetter, recipient="w", message=Ping(1))
    assert letter.reason.startswith("failed: InjectedFault")
    failed = probe.expect(ChildFailed, name="w")
    assert "injected crash in 'w'" in failed.error
    probe.expect(ChildRestarting, name="w", delay=2.0)
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    actor_system.tell("w", Ping(2))  # the fault fired once: later Pings pass
    actor_system.settle()
    assert journal.got("w") == ["plain", Ping(2)]
    assert faults.pending("w") == 0


def test_crash_times_survives_restarts_until_it_has_fired(
    actor_system: ActorSystem,
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
    journal: Journal,
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.crash("w", times=2)
    assert faults.pending("w") == 2
    actor_system.tell("w", "one")
    probe.expect(ChildRestarting, name="w", delay=2.0)
    assert faults.pending("w") == 1
    actor_system.tell("w", "two")
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    probe.expect(ChildRestarting, name="w", delay=4.0)  # "two" crashed the new instance
    actor_system.tell("w", "three")
    manual_clock.advance(4.0)
    assert journal.got("w") == ["three"]
    assert faults.pending("w") == 0


@pytest.mark.parametrize("exc", [FatalError, FatalError("config is wrong")])
def test_crash_with_a_custom_exception_goes_through_the_deciders(
    actor_system: ActorSystem, probe: Probe, faults: FaultInjector, journal: Journal, exc: object
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.crash("w", exc=exc)
    actor_system.tell("w", "x")
    gave_up = probe.expect(ChildGaveUp, name="w")
    assert gave_up.error.startswith("FatalError")


def test_clear_cancels_planned_faults(
    actor_system: ActorSystem, probe: Probe, faults: FaultInjector, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.crash("w", times=3)
    faults.fail_start("w")
    faults.clear("w")
    assert faults.pending("w") == 0
    assert actor_system.ask("w", "safe") == "safe"
    actor_system.settle()
    assert events_of(probe, ChildFailed) == []


def test_fail_start_fails_the_next_restarts(
    actor_system: ActorSystem,
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
    journal: Journal,
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.fail_start("w", times=2, exc=OSError("disk full"))
    faults.crash("w")
    actor_system.tell("w", "x")
    probe.expect(ChildRestarting, name="w", delay=2.0)
    manual_clock.advance(2.0)
    failed = probe.expect(ChildFailed, name="w", error="OSError: disk full")
    assert failed.error == "OSError: disk full"
    probe.expect(ChildRestarting, name="w", delay=4.0)
    manual_clock.advance(4.0)
    probe.expect(ChildFailed, name="w", error="OSError: disk full")
    probe.expect(ChildRestarting, name="w", delay=8.0)
    manual_clock.advance(8.0)
    probe.expect(ChildRestarted, name="w")
    # on_start never ran for the failed starts, so neither did on_stop.
    assert journal.lifecycle() == ["start w", "stop w", "start w"]


def test_bad_exceptions_are_rejected_when_the_fault_is_planned(
    actor_system: ActorSystem, faults: FaultInjector, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    with pytest.raises(TypeError, match="exc"):
        faults.crash("w", exc="boom")
    with pytest.raises(TypeError, match="exc"):
        faults.fail_start("w", exc=42)
    assert faults.pending("w") == 0
    assert actor_system.ask("w", "fine") == "fine"


def test_hang_holds_the_handler_until_the_clock_is_advanced(
    actor_system: ActorSystem, faults: FaultInjector, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.hang("w", 10.0)
    actor_system.tell("w", "slow")
    actor_system.tell("w", "next")
    # A handler hung on the clock waits for the clock: the system is settled.
    actor_system.settle(timeout=1.0)
    assert journal.got("w") == []
    manual_clock.advance(9.9)
    assert journal.got("w") == []
    manual_clock.advance(0.1)  # the hang ends and both messages are handled
    assert journal.got("w") == ["slow", "next"]  # the hang only delays, in order


def test_hang_with_message_type_and_a_stop_cuts_it_short(
    actor_system: ActorSystem, faults: FaultInjector, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.hang("w", 3600.0, message_type=int)
    actor_system.tell("w", "first")  # not an int: not delayed
    actor_system.settle()
    assert journal.got("w") == ["first"]
    actor_system.tell("w", 1)
    actor_system.settle()  # returns once the handler waits in the hang
    assert journal.got("w") == ["first"]
    stopper = threading.Thread(target=actor_system.stop_child, args=("w",))
    stopper.start()
    stopper.join(2.0)
    assert not stopper.is_alive(), "a stop did not cut the hang short"
    assert journal.lifecycle() == ["start w", "stop w"]


def _thread(name: str) -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == name)


def test_kill_ends_the_thread_and_the_supervisor_restarts_it_on_a_new_one(
    actor_system: ActorSystem,
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
    journal: Journal,
) -> None:
    ref = actor_system.spawn(spec("w", journal))
    old_name = actor_system.ask("w", "thread")
    old = _thread(old_name)
    faults.kill("w")
    failed = probe.expect(ChildFailed, name="w")
    assert "killed" in failed.error
    old.join(2.0)
    assert not old.is_alive()
    probe.expect(ChildRestarting, name="w", delay=2.0)
    actor_system.tell("w", "sent while dead")
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    new_name = ref.ask("thread", timeout=1)
    assert new_name != old_name
    assert ref.ask("hi", timeout=1) == "hi"
    assert journal.got("w") == ["sent while dead", "hi"]
    # The killed incarnation ran no hook: no "stop w" between the two starts.
    assert journal.lifecycle() == ["start w", "start w"]


def test_kill_during_a_hang_kills_at_once(
    actor_system: ActorSystem,
    probe: Probe,
    faults: FaultInjector,
    manual_clock: ManualClock,
    journal: Journal,
) -> None:
    actor_system.spawn(spec("w", journal))
    faults.hang("w", 3600.0)
    actor_system.tell("w", "stuck")
    actor_system.settle()  # returns once the handler waits in the hang
    faults.kill("w")
    probe.expect(ChildFailed, name="w")
    probe.expect(ChildRestarting, name="w", delay=2.0)
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    assert actor_system.ask("w", "alive") == "alive"
    assert "stuck" not in journal.got("w")


def test_injected_faults_are_ordinary_exceptions() -> None:
    assert issubclass(InjectedFault, Exception)
    assert not issubclass(InjectedFault, FatalError)
