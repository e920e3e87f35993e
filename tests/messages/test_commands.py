"""Commands are imperatives sent to one actor; events are published facts.

The two are told apart by their base class (``Command`` / ``Event``) and by
their names, and no internal message takes a public message's name (the
control message that resumes a failed cell's mailbox was once ``Resume``,
like the service command).
"""

from __future__ import annotations

import pytest

import regisseur.actors._protocol as control
import regisseur.supervision.protocol as supervisor_protocol
from regisseur import messages
from regisseur.actors import ActorSystem
from regisseur.messages import Command, Event

# The public classes of regisseur.messages that are neither commands nor
# events: records, states and the two base classes.
DATA = {
    "Command",
    "DownloadRecord",
    "DownloadState",
    "Event",
    "HealthReport",
    "Lifecycle",
    "NodeInfo",
}


def _public_classes() -> dict[str, type]:
    return {
        name: value
        for name in messages.__all__
        if isinstance(value := getattr(messages, name), type)
    }


def _commands() -> list[type[Command]]:
    found: list[type[Command]] = []
    todo = list(Command.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return sorted(found, key=lambda k: k.__name__)


def test_every_public_message_is_a_command_an_event_or_data() -> None:
    for name, kind in _public_classes().items():
        if name in DATA:
            continue
        is_command, is_event = issubclass(kind, Command), issubclass(kind, Event)
        assert is_command != is_event, f"{name} must be a Command or an Event (exactly one)"


def test_the_download_service_and_supervisor_commands_are_commands() -> None:
    names = {kind.__name__ for kind in _commands()}
    assert {
        "QueueDownload",
        "ClaimDownload",
        "ReportProgress",
        "CompleteDownload",
        "FailDownload",
        "CancelDownload",
        "Pause",
        "Resume",
        "RunNow",
        "Spawn",
        "StopChild",
        "RestartChild",
        "Inspect",
    } <= names


def test_no_command_is_named_like_an_event() -> None:
    for kind in _commands():
        assert not kind.__name__.endswith(("ed", "ing")), f"{kind.__name__} reads as an event"


@pytest.mark.parametrize("module", [control, supervisor_protocol], ids=lambda m: m.__name__)
def test_no_internal_message_takes_a_public_message_name(module: object) -> None:
    taken = {
        name
        for name, value in vars(module).items()
        if isinstance(value, type)
        and name in messages.__all__
        and value is not getattr(messages, name)
    }
    assert taken == set()


@pytest.mark.timeout(30)
def test_the_bus_refuses_a_subscription_to_any_command(actor_system: ActorSystem) -> None:
    for kind in _commands():
        with pytest.raises(TypeError, match=f"{kind.__name__} is never published"):
            actor_system.events.subscribe(lambda event: None, kind)
