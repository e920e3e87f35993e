"""What happens to messages, refs and stop requests while a failure is pending."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from regisseur.messages import ChildRestarted, ChildRestarting, ChildStopped, DeadLetter
from regisseur.supervision import Backoff, Directive, Restart
from tests.supervision.helpers import Block, Fail, Journal, events_of, kit, spec, sub

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe


@pytest.fixture
def journal() -> Journal:
    return Journal()


def test_messages_sent_during_the_backoff_are_handled_after_the_restart_in_order(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    first = actor_system.ask("w", "serial")
    actor_system.tell("w", "before")
    actor_system.tell("w", Fail(RuntimeError("boom")))
    for i in range(20):
        actor_system.tell("w", i)  # some may arrive before the failure is handled
    probe.expect(ChildRestarting, name="w", delay=2.0)
    more = threading.Thread(target=lambda: [actor_system.tell("w", i) for i in range(20, 40)])
    more.start()
    more.join(5)
    actor_system.settle()
    assert journal.got("w") == ["before"]  # nothing handled while the restart is pending
    manual_clock.advance(1.0)
    assert journal.got("w") == ["before"]
    manual_clock.advance(1.0)
    probe.expect(ChildRestarted, name="w")
    actor_system.settle()
    assert journal.got("w") == ["before", *range(40)]
    # ... and by the new incarnation.
    second = journal.serials("w")[-1]
    assert second != first
    assert all(e[3] == second for e in journal.items if e[0] == "got" and e[2] != "before")
    assert events_of(probe, DeadLetter, reason="stopped") == []


def test_a_ref_obtained_before_the_crash_still_works_after(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    ref = actor_system.ref("w")
    proxy = ref.proxy()
    assert proxy.counter.get(timeout=1) == 0
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w")
    reply = ref.ask("asked during the backoff", block=False)  # waits for the restart
    manual_clock.advance(2.0)
    assert reply.get(timeout=1) == "asked during the backoff"
    assert ref.is_alive()
    assert ref.ask("incr", timeout=1) == 1
    assert proxy.counter.get(timeout=1) == 1  # the proxy reaches the new instance
    ref.tell("told")
    actor_system.settle()
    assert journal.got("w")[-1] == "told"
    assert actor_system.ref("w") is ref


def test_a_stop_overtakes_queued_messages(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal, restart=Restart.TRANSIENT))
    entered, gate = threading.Event(), threading.Event()
    actor_system.tell("w", Block(entered, gate))
    assert entered.wait(2)
    for i in range(5):
        actor_system.tell("w", i)
    stopped = actor_system.ref("w").stop(block=False)  # queued behind 0..4, but control
    gate.set()
    assert stopped.get(timeout=2) is True
    probe.expect(ChildStopped, name="w")
    for i in range(5):
        probe.expect(DeadLetter, recipient="w", message=i, reason="stopped")
    assert journal.got("w") == []
    assert journal.lifecycle("w") == ["start w", "stop w"]


def test_a_restart_of_a_permanent_child_keeps_the_messages_the_stop_overtook(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    entered, gate = threading.Event(), threading.Event()
    actor_system.tell("w", Block(entered, gate))
    assert entered.wait(2)
    actor_system.tell("w", "stop-self")  # self.stop(): a normal exit, restarted
    for i in range(5):
        actor_system.tell("w", i)
    gate.set()
    probe.expect(ChildRestarted, name="w")
    actor_system.settle()
    lines = [e[0] if e[0] != "got" else e[2] for e in journal.items]
    assert lines == ["start", "stop", "start", 0, 1, 2, 3, 4]


def test_a_stop_request_during_a_long_backoff_stops_the_system_at_once(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory(
        [sub("sup", [spec("w", journal)], decider=lambda exc: Directive.restart_after(60))]
    )
    probe, _ = kit(system)
    system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=60.0)
    system.tell("w", "queued")
    system.settle()
    stopper = threading.Thread(target=system.stop)
    stopper.start()
    stopper.join(2.0)  # the clock is never advanced
    assert not stopper.is_alive(), "system.stop() waited for the backoff"
    assert manual_clock.now() == 0.0
    assert system.threads() == []
    assert journal.lifecycle() == ["start w", "stop w"]  # not restarted on the way out
    assert journal.got("w") == []


def test_stop_child_during_the_backoff_cancels_the_restart(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory([spec("w", journal), spec("v", journal)], backoff=Backoff(initial=30))
    probe, _ = kit(system)
    system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=30.0)
    system.stop_child("w")
    probe.expect(ChildStopped, name="w")
    manual_clock.advance(60)
    assert events_of(probe, ChildRestarted) == []
    assert journal.lifecycle("w") == ["start w", "stop w"]
    assert system.ask("v", "fine") == "fine"
