"""ActorSystem: lifecycle, registry, messaging errors, events, settle, isolation."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from regisseur.actors import Actor, ActorSystem, ManualClock, UnknownActorError
from regisseur.messages import ChildStarted, ChildStopped, DeadLetter, Event
from regisseur.supervision import ChildSpec, StartupError
from regisseur.supervision.testing import Probe


class Echo(Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "slow":
            self.sleep(100)  # Actor.sleep on the manual clock: ends on a stop request
        return message


class Collector(Actor):
    """Receives events from the bus as messages."""

    def __init__(self, got: list[Any]) -> None:
        super().__init__()
        self.got = got

    def on_receive(self, message: Any) -> Any:
        self.got.append(message)


def test_context_manager_starts_and_stops_leaving_no_thread() -> None:
    with ActorSystem([ChildSpec("e", Echo)], clock=ManualClock(), database_url=None) as system:
        assert system.running
        assert system.ask("e", 42) == 42
        threads = system.threads()
        assert len(threads) >= 3  # bus, root supervisor, echo
    assert not system.running
    assert all(not t.is_alive() for t in threads)
    assert system.threads() == []


def test_starting_twice_is_an_error() -> None:
    system = ActorSystem(clock=ManualClock(), database_url=None)
    system.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            system.start()
    finally:
        system.stop()
    system.stop()  # idempotent


def test_unknown_names_are_a_clear_error(actor_system: ActorSystem) -> None:
    actor_system.spawn(ChildSpec("known", Echo))
    with pytest.raises(UnknownActorError, match="no actor named 'nope'.*'known'") as caught:
        actor_system.tell("nope", 1)
    # The known names are the caller's actors, as names() lists them.
    assert "regisseur." not in str(caught.value) and "'root'" not in str(caught.value)
    with pytest.raises(UnknownActorError):
        actor_system.ask("nope", 1)
    with pytest.raises(UnknownActorError):
        actor_system.ref("nope")
    with pytest.raises(TypeError, match="must be a str"):
        actor_system.tell(3, 1)  # type: ignore[arg-type]


def test_ask_timeout_is_a_timeout_error_naming_the_actor(actor_system: ActorSystem) -> None:
    actor_system.spawn(ChildSpec("e", Echo))
    with pytest.raises(TimeoutError, match="no reply from 'e' within 0.05s"):
        actor_system.ask("e", "slow", timeout=0.05)
    with pytest.raises(ValueError, match="timeout"):
        actor_system.ask("e", 1, timeout=-1)


def test_duplicate_names_are_rejected_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="duplicate child name 'a'"):
        ActorSystem([ChildSpec("a", Echo), ChildSpec("a", Echo)])


def test_spawn_rejects_a_name_in_use(actor_system: ActorSystem) -> None:
    actor_system.spawn(ChildSpec("a", Echo))
    with pytest.raises(ValueError, match="'a'"):
        actor_system.spawn(ChildSpec("a", Echo))
    with pytest.raises(TypeError, match="ChildSpec"):
        actor_system.spawn("a")  # type: ignore[arg-type]
    assert actor_system.ask("a", "still here") == "still here"


class FailsToStart(Actor):
    def on_start(self) -> None:
        raise OSError("port 8080 in use")


class Recorder(Actor):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log  # type: ignore[assignment]

    def on_start(self) -> None:
        self.log.append(f"start {self.name}")  # type: ignore[attr-defined]

    def on_stop(self) -> None:
        self.log.append(f"stop {self.name}")  # type: ignore[attr-defined]


def test_a_failed_start_rolls_back_and_raises_startup_error() -> None:
    log: list[str] = []
    system = ActorSystem(
        [
            ChildSpec("db", Recorder, args=(log,)),
            ChildSpec("cache", Recorder, args=(log,), depends_on=("db",)),
            ChildSpec("web", FailsToStart, depends_on=("cache",)),
        ],
        clock=ManualClock(),
        database_url=None,
    )
    with pytest.raises(StartupError, match="'web' failed to start: OSError: port 8080") as info:
        system.start()
    assert info.value.child == "web"
    assert info.value.rolled_back == ("cache", "db")
    assert log == ["start db", "start cache", "stop cache", "stop db"]
    assert system.threads() == []
    assert not system.running


def test_events_reach_callbacks_and_actor_refs_until_unsubscribed(
    actor_system: ActorSystem,
) -> None:
    got: list[Any] = []
    actor_system.spawn(ChildSpec("collector", Collector, args=(got,)))
    seen: list[Event] = []
    callback_sub = actor_system.events.subscribe(seen.append, ChildStarted)
    ref_sub = actor_system.events.subscribe(actor_system.ref("collector"), ChildStopped)
    actor_system.spawn(ChildSpec("e", Echo))
    actor_system.stop_child("e")
    actor_system.settle()
    assert seen == [ChildStarted("e")]
    assert got == [ChildStopped("e")]
    callback_sub.cancel()
    ref_sub.cancel()
    actor_system.spawn(ChildSpec("e2", Echo))
    actor_system.stop_child("e2")
    actor_system.settle()
    assert seen == [ChildStarted("e")]
    assert got == [ChildStopped("e")]


def test_a_failing_subscriber_does_not_break_the_bus(actor_system: ActorSystem) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    actor_system.events.subscribe(broken)
    probe = Probe(actor_system, ChildStarted)
    actor_system.spawn(ChildSpec("e", Echo))
    probe.expect(ChildStarted, name="e")
    with pytest.raises(TypeError, match="callable or an ActorRef"):
        actor_system.events.subscribe("not callable")


def test_two_systems_in_one_process_do_not_see_each_other() -> None:
    clock = ManualClock()
    with (
        ActorSystem([ChildSpec("same", Echo)], clock=clock, database_url=None) as one,
        ActorSystem([ChildSpec("same", Echo)], clock=clock, database_url=None) as two,
    ):
        one_letters = Probe(one, DeadLetter)
        two_letters = Probe(two, DeadLetter)
        assert one.ref("same") is not two.ref("same")
        one.stop_child("same")
        assert two.ask("same", "alive") == "alive"
        one.tell("same", "gone")
        one_letters.expect(DeadLetter, recipient="same")
        two.settle()
        assert two_letters.events == []


def test_settle_waits_for_chains_of_messages(actor_system: ActorSystem) -> None:
    class Relay(Actor):
        def __init__(self, target: str | None, done: list[int]) -> None:
            super().__init__()
            self.target = target
            self.done = done

        def on_receive(self, message: Any) -> Any:
            if self.target is None:
                self.done.append(message)
            else:
                self.system.tell(self.target, message + 1)

    done: list[int] = []
    actor_system.spawn(ChildSpec("c", Relay, args=(None, done)))
    actor_system.spawn(ChildSpec("b", Relay, args=("c", done)))
    actor_system.spawn(ChildSpec("a", Relay, args=("b", done)))
    for i in range(100):
        actor_system.tell("a", i)
    actor_system.settle()
    assert done == [i + 2 for i in range(100)]


def test_ref_to_a_stopped_actor_raises_actor_dead(actor_system: ActorSystem) -> None:
    actor_system.spawn(ChildSpec("e", Echo))
    ref = actor_system.ref("e")
    actor_system.stop_child("e")
    with pytest.raises(pykka.ActorDeadError):
        actor_system.ref("e")
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("x")


def test_messages_from_many_threads_are_all_handled(actor_system: ActorSystem) -> None:
    got: list[Any] = []
    actor_system.spawn(ChildSpec("collector", Collector, args=(got,)))
    senders = [
        threading.Thread(
            target=lambda n=n: [actor_system.tell("collector", (n, i)) for i in range(500)]
        )
        for n in range(4)
    ]
    for s in senders:
        s.start()
    for s in senders:
        s.join(10)
    actor_system.settle()
    assert sorted(got) == sorted((n, i) for n in range(4) for i in range(500))
