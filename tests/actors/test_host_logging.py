"""The library's logs inside a host application's own logging setup.

What a script with ``logging.basicConfig(format=...)`` or a JSON pipeline
sees: the traceback of a crash, the key fields in the message text, and a
user's actors under the user's own logger names.
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor
from regisseur.actors.log import JsonFormatter
from regisseur.messages import ChildRestarting
from regisseur.supervision import Backoff, ChildSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from regisseur.actors import ActorSystem
    from regisseur.supervision.testing import Probe

pytestmark = pytest.mark.timeout(30)


class Inbox(Actor):
    """Fails on a missing key, as the crash in the issue did."""

    def on_receive(self, message: Any) -> Any:
        self.log.info("handled", key=message)
        return {}[message]


class Named(Actor):
    logger_name = "myapp.custom"

    def on_receive(self, message: Any) -> Any:
        self.log.info("named")


class Capture(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Iterator[Callable[[logging.Formatter], Capture]]:
    """Attach handlers to the root logger, as a host application would."""
    root = logging.getLogger()
    attached: list[Capture] = []
    level = root.level
    root.setLevel(logging.DEBUG)

    def attach(formatter: logging.Formatter) -> Capture:
        handler = Capture(formatter)
        root.addHandler(handler)
        attached.append(handler)
        return handler

    yield attach
    for handler in attached:
        root.removeHandler(handler)
    root.setLevel(level)


def crash_inbox(system_factory: Callable[..., ActorSystem], probe: Probe) -> ActorSystem:
    spec = ChildSpec("inbox", Inbox, backoff=Backoff(initial=1.0))
    system = system_factory([spec])
    system.tell("inbox", "x")
    probe.expect(ChildRestarting, name="inbox")
    return system


def test_a_crash_from_a_tell_logs_its_traceback_and_fields_in_the_hosts_format(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    capture: Callable[[logging.Formatter], Capture],
) -> None:
    host = capture(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    system = crash_inbox(system_factory, probe)
    system.settle()
    (line,) = [text for text in host.lines if "child_failed" in text]
    first, *traceback_lines = line.splitlines()
    assert first == (
        "WARNING regisseur.supervision.supervisor: child_failed actor=root child=inbox"
        " error=\"KeyError: 'x'\" failures=1 restarts=0"
    )
    assert traceback_lines[0] == "Traceback (most recent call last):"
    assert any("return {}[message]" in text for text in traceback_lines)
    assert traceback_lines[-1] == "KeyError: 'x'"


def test_the_json_formatter_prints_the_event_and_each_field_once(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    capture: Callable[[logging.Formatter], Capture],
) -> None:
    host = capture(JsonFormatter())
    system = crash_inbox(system_factory, probe)
    system.settle()
    (line,) = [json.loads(t) for t in host.lines if '"child_failed"' in t]
    assert line["event"] == "child_failed"
    assert line["fields"] == {
        "child": "inbox",
        "error": "KeyError: 'x'",
        "failures": 1,
        "restarts": 0,
    }
    assert line["exception"].endswith("KeyError: 'x'")


def test_user_actors_log_under_their_own_module_and_the_library_under_regisseur(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    capture: Callable[[logging.Formatter], Capture],
) -> None:
    host = capture(logging.Formatter("%(name)s %(message)s"))
    system = crash_inbox(system_factory, probe)
    system.spawn(ChildSpec("named", Named))
    system.tell("named", "go")
    system.settle()
    by_event = {getattr(r, "event", None): r.name for r in host.records}
    assert by_event["handled"] == __name__  # the user's module
    assert by_event["named"] == "myapp.custom"  # Actor.logger_name
    assert by_event["child_failed"] == "regisseur.supervision.supervisor"
    library = {r.name for r in host.records if getattr(r, "event", None) != "handled"}
    assert {n for n in library if not n.startswith("regisseur.")} == {"myapp.custom"}


def test_silencing_the_library_keeps_the_users_actor_audible(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    capture: Callable[[logging.Formatter], Capture],
) -> None:
    host = capture(logging.Formatter("%(message)s"))
    library = logging.getLogger("regisseur")
    level = library.level
    library.setLevel(logging.CRITICAL)
    try:
        system = crash_inbox(system_factory, probe)
        system.settle()
    finally:
        library.setLevel(level)
    assert host.lines == ["handled actor=inbox key=x"]


def test_a_bad_logger_name_is_a_clear_error(system_factory: Callable[..., ActorSystem]) -> None:
    class Bad(Actor):
        logger_name = ""

    system = system_factory()
    with pytest.raises(Exception, match="logger_name must be a non-empty str"):
        system.spawn(ChildSpec("bad", Bad))


def test_configure_logging_output_is_single_even_with_a_host_root_handler(
    system_factory: Callable[..., ActorSystem],
    probe: Probe,
    capture: Callable[[logging.Formatter], Capture],
) -> None:
    from regisseur.actors import configure_logging

    host = capture(logging.Formatter("%(message)s"))
    stream = io.StringIO()
    handler = configure_logging(stream=stream)
    try:
        system = crash_inbox(system_factory, probe)
        system.settle()
    finally:
        logging.getLogger("regisseur").removeHandler(handler)
        logging.getLogger("regisseur").propagate = True
        logging.getLogger("regisseur").setLevel(logging.NOTSET)
    assert stream.getvalue().count(" child_failed ") == 1
    assert not [line for line in host.lines if "child_failed" in line]
