"""Dead letters: nothing is dropped silently."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka
import pytest

from regisseur.actors import Actor
from regisseur.messages import ChildRestarting, DeadLetter
from regisseur.supervision import ChildSpec
from tests.supervision.helpers import Fail, Journal, events_of, spec

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe


@pytest.fixture
def journal() -> Journal:
    return Journal()


class Picky(Actor):
    """Handles "known"; leaves everything else to the default on_receive."""

    def on_receive(self, message: Any) -> Any:
        if message == "known":
            return "handled"
        return super().on_receive(message)


def test_a_message_to_a_stopped_actor_by_name_is_a_dead_letter(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    actor_system.stop_child("w")
    actor_system.tell("w", {"job": 1})
    letter = probe.expect(DeadLetter, recipient="w")
    assert letter.message == {"job": 1}
    assert letter.reason == "stopped"


def test_an_unhandled_message_is_a_dead_letter(actor_system: ActorSystem, probe: Probe) -> None:
    actor_system.spawn(ChildSpec("p", Picky))
    actor_system.tell("p", "unknown")
    probe.expect(DeadLetter, recipient="p", message="unknown", reason="unhandled")
    assert actor_system.ask("p", "known") == "handled"
    actor_system.settle()
    assert events_of(probe, DeadLetter) == []  # handled messages are not dead letters


def test_the_failing_message_itself_is_a_dead_letter(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    message = Fail(ValueError("bad row 7"))
    actor_system.tell("w", message)
    letter = probe.expect(DeadLetter, recipient="w")
    assert letter.message is message
    assert letter.reason.startswith("failed:")
    assert letter.reason == "failed: ValueError: bad row 7"


def test_an_ask_whose_handler_fails_gets_the_exception_and_a_dead_letter(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    with pytest.raises(KeyError, match="missing"):
        actor_system.ask("w", Fail(KeyError("missing")))
    letter = probe.expect(DeadLetter, recipient="w")
    assert letter.reason.startswith("failed: KeyError")


def test_an_ask_to_a_stopped_actor_raises_actor_dead_error(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    ref = actor_system.spawn(spec("w", journal))
    actor_system.stop_child("w")
    with pytest.raises(pykka.ActorDeadError):
        actor_system.ask("w", "hello?")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("hello?", timeout=1)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("hello?")
    with pytest.raises(pykka.ActorDeadError):
        actor_system.ref("w")
    probe.expect(DeadLetter, recipient="w", message="hello?", reason="stopped")


def test_messages_queued_behind_a_pending_restart_are_dead_letters_if_it_never_comes(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w")
    for i in range(3):
        actor_system.tell("w", i)
    actor_system.settle()
    pending = actor_system.ref("w").ask("asked", block=False)
    actor_system.stop_child("w")  # during the backoff: the restart never happens
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=1)
    for i in range(3):
        probe.expect(DeadLetter, recipient="w", message=i, reason="stopped")
    manual_clock.advance(10)
    assert journal.got("w") == []
    assert journal.lifecycle("w") == ["start w", "stop w"]
