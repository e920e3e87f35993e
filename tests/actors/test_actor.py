"""The Actor base: helpers on the actor's thread, proxies, health, dead letters."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.actors.mailbox import NoDeadLetter
from regisseur.messages import ChildRestarted, DeadLetter
from regisseur.supervision import Backoff, ChildSpec, StartupError
from regisseur.supervision.testing import FaultInjector, Probe


class Ticker(Actor):
    """Schedules ticks and records them in a shared list."""

    def __init__(self, seen: list[Any]) -> None:
        super().__init__()
        self.seen = seen
        self.value = 0

    def on_start(self) -> None:
        self.schedule(1.0, "once")
        self.every = self.schedule_every(2.0, "tick")

    def on_receive(self, message: Any) -> Any:
        if message == "stop-ticking":
            self.every.cancel()
            return None
        if message == "crash":
            raise RuntimeError("crash")
        self.seen.append((message, self.system.clock.now()))
        return None

    def bump(self, by: int) -> int:
        self.value += by
        return self.value


def test_schedule_and_schedule_every_run_on_the_system_clock(
    system_factory: Any, manual_clock: ManualClock
) -> None:
    seen: list[Any] = []
    system = system_factory([ChildSpec("t", Ticker, args=(seen,))])
    manual_clock.advance(4.5)
    assert [m for m, _ in seen] == ["once", "tick", "tick"]
    system.tell("t", "stop-ticking")
    manual_clock.advance(10)
    assert [m for m, _ in seen] == ["once", "tick", "tick"]


def test_timers_are_cancelled_on_restart(system_factory: Any, manual_clock: ManualClock) -> None:
    seen: list[Any] = []
    system = system_factory([ChildSpec("t", Ticker, args=(seen,), backoff=Backoff(0))])
    probe = Probe(system, ChildRestarted)
    system.tell("t", "crash")
    probe.expect(ChildRestarted, name="t")
    manual_clock.advance(1.0)  # only the new incarnation's one-shot timer fires
    assert [m for m, _ in seen] == ["once"]
    manual_clock.advance(1.0)
    assert [m for m, _ in seen] == ["once", "tick"]


def test_proxies_work_and_survive_a_restart(system_factory: Any) -> None:
    system = system_factory([ChildSpec("t", Ticker, args=([],), backoff=Backoff(0))])
    proxy = system.ref("t").proxy()
    assert proxy.bump(2).get(timeout=5) == 2
    probe = Probe(system, ChildRestarted)
    system.tell("t", "crash")
    probe.expect(ChildRestarted, name="t")
    assert proxy.bump(3).get(timeout=5) == 3  # a fresh instance: state starts again


class Sleeper(Actor):
    def __init__(self, result: list[bool], entered: threading.Event) -> None:
        super().__init__()
        self.result = result
        self.entered = entered

    def on_receive(self, message: Any) -> Any:
        self.entered.set()
        self.result.append(self.sleep(3600))  # the API under test (manual clock)
        self.result.append(self.stopping)


def test_sleep_returns_early_when_a_stop_is_requested(manual_clock: ManualClock) -> None:
    result: list[bool] = []
    entered = threading.Event()
    system = ActorSystem(
        [ChildSpec("s", Sleeper, args=(result, entered))], clock=manual_clock, database_url=None
    )
    system.start()
    system.tell("s", "nap")
    assert entered.wait(5)
    system.stop()  # no clock advance: the stop wakes the sleeper
    assert result == [False, True]


def test_sleep_completes_when_the_clock_reaches_the_deadline(
    system_factory: Any, manual_clock: ManualClock
) -> None:
    result: list[bool] = []
    entered = threading.Event()
    system = system_factory([ChildSpec("s", Sleeper, args=(result, entered))])
    system.tell("s", "nap")
    assert entered.wait(5)
    system.settle()  # an actor asleep on the clock waits for the clock
    assert result == []
    manual_clock.advance(3600)
    assert result == [True, False]


def test_starting_an_actor_outside_a_system_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="start it through a system"):
        Ticker.start([])


class Picky(Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "known":
            return "ok"
        return super().on_receive(message)


def test_unhandled_messages_become_dead_letters(system_factory: Any) -> None:
    system = system_factory([ChildSpec("p", Picky)])
    probe = Probe(system, DeadLetter)
    assert system.ask("p", "known") == "ok"
    system.tell("p", {"unknown": 1})
    letter = probe.expect(DeadLetter, recipient="p", reason="unhandled")
    assert letter.message == {"unknown": 1}


@dataclass(frozen=True)
class Poke(NoDeadLetter):
    """A nudge: it carries nothing that could be lost."""


def test_a_message_that_loses_nothing_to_a_stopped_actor_is_dropped_without_a_dead_letter(
    system_factory: Any,
) -> None:
    system = system_factory([ChildSpec("p", Picky)])
    probe = Probe(system, DeadLetter)
    system.stop_child("p")
    system.tell("p", Poke())
    system.tell("p", "lost")
    letter = probe.expect(DeadLetter, recipient="p", reason="stopped")
    assert letter.message == "lost"  # the first dead letter: the nudge made none
    system.settle()
    assert [e for e in probe.events if isinstance(e, DeadLetter)] == []


class Unhealthy(Actor):
    def health(self) -> Any:
        return {"healthy": False, "queue": 12}


def test_health_tree_reports_status_details_and_restarts(
    system_factory: Any, manual_clock: ManualClock
) -> None:
    system = system_factory(
        [ChildSpec("p", Picky, description="the picky one"), ChildSpec("u", Ticker, args=([],))]
    )
    report = system.health()
    assert report.status == "running"
    assert [c.name for c in report.children] == ["event bus", "database", "event journal", "p", "u"]
    picky = report.find("p")
    assert picky is not None
    assert picky.status == "running"
    assert picky.healthy
    assert picky.description == "the picky one"
    manual_clock.advance(5)
    assert system.health().find("p").uptime == 5.0  # type: ignore[union-attr]
    FaultInjector(system).crash("p")
    system.tell("p", "known")
    system.settle()
    restarting = system.health().find("p")
    assert restarting is not None
    assert restarting.status == "restarting"
    assert restarting.last_error is not None
    assert "injected crash" in restarting.last_error
    assert not system.healthy


def test_an_actor_unhealthy_after_on_start_fails_its_start(system_factory: Any) -> None:
    system = system_factory()
    system.spawn(ChildSpec("ok", Picky))
    assert system.healthy
    with pytest.raises(StartupError, match="'u' failed to start: .*not healthy") as info:
        system.spawn(ChildSpec("u", Unhealthy))
    assert info.value.child == "u"
    assert "u" not in system.names()
    assert system.healthy  # the failed spawn left nothing behind


def test_ask_to_a_stopped_actor_raises_and_records_a_dead_letter(system_factory: Any) -> None:
    system = system_factory([ChildSpec("p", Picky)])
    ref = system.ref("p")
    probe = Probe(system, DeadLetter)
    system.stop_child("p")
    with pytest.raises(pykka.ActorDeadError):
        system.ask("p", "known")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("known", timeout=5)
    system.tell("p", "hello?")
    probe.expect(DeadLetter, recipient="p", message="hello?", reason="stopped")


class Remembers:
    """A cooperative mixin listed before Actor: its __init__ must still run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mixin_ran = True


class PykkaSide(pykka.ThreadingActor):
    """A Pykka actor class an Actor subclass also inherits (after Actor in the MRO)."""

    def __init__(self) -> None:
        super().__init__()
        self.pykka_side_ran = True


class WithMixins(Remembers, Actor, PykkaSide):
    def on_receive(self, message: Any) -> Any:
        same_urn = self.actor_urn == self.actor_ref.actor_urn
        return (self.mixin_ran, self.pykka_side_ran, same_urn, self.actor_inbox is not None)


def test_every_init_in_the_chain_runs_in_every_incarnation(system_factory: Any) -> None:
    system = system_factory([ChildSpec("m", WithMixins, backoff=Backoff(0))])
    assert system.ask("m", "?") == (True, True, True, True)
    FaultInjector(system).crash("m")
    system.tell("m", "crash me")
    assert system.ask("m", "?") == (True, True, True, True)


# -- mailbox_waiting: when a looping handler must return ----------------------------------


class Looper(Actor):
    """Answers ``mailbox_waiting()`` as seen from inside a handler; "hold" waits first."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        if message == "hold":
            assert self.gate.wait(5.0)
        return self.mailbox_waiting()


def looper(system_factory: Any, gate: threading.Event | None = None) -> ActorSystem:
    spec = ChildSpec("l", Looper, args=(gate or threading.Event(),), backoff=Backoff(0))
    return system_factory([spec])  # type: ignore[no-any-return]


@pytest.mark.timeout(30)
def test_mailbox_waiting_is_false_for_a_lone_handler_and_true_with_a_message_behind(
    system_factory: Any,
) -> None:
    gate = threading.Event()
    system = looper(system_factory, gate)
    assert system.ask("l", "look") is False
    held = system.ref("l").ask("hold", block=False)  # waits inside its handler ...
    behind = system.ref("l").ask("look", block=False)  # ... with this one queued
    gate.set()
    assert held.get(timeout=5.0) is True
    assert behind.get(timeout=5.0) is False


@pytest.mark.timeout(30)
def test_mailbox_waiting_is_true_in_the_first_handler_after_a_restart(system_factory: Any) -> None:
    # The supervisor counts failures in a row until a handler returns: a
    # handler looping over its own work must return once after a restart.
    system = looper(system_factory)
    probe = Probe(system, ChildRestarted)
    system.tell("l", "crash")
    probe.expect(ChildRestarted, timeout=5.0, name="l")
    assert system.ask("l", "look") is True
    assert system.ask("l", "look") is False
    probe.close()


@pytest.mark.timeout(30)
def test_mailbox_waiting_is_true_while_the_testing_kit_has_a_fault_planned(
    system_factory: Any,
) -> None:
    system = looper(system_factory)
    injector = FaultInjector(system)
    injector.crash("l", message_type=int)  # planned for an int, not for these str messages
    assert system.ask("l", "look") is True
    injector.clear("l")
    assert system.ask("l", "look") is False
