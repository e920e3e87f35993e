"""Actors and recorders shared by the supervision tests.

Every actor here records what it does in a :class:`Journal` handed to it
through ``ChildSpec.kwargs``; the journal is thread-safe because the actors
write to it from their own threads while the test reads it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regisseur.actors import Actor
from regisseur.supervision import ChildSpec, Supervisor
from regisseur.supervision.testing import FaultInjector, Probe

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

__all__ = [
    "Block",
    "Deciding",
    "Fail",
    "Journal",
    "StartFails",
    "Worker",
    "events_of",
    "kit",
    "spec",
    "sub",
]

_serials = itertools.count(1)


class Journal:
    """A thread-safe, append-only record of what the actors did, in order.

    Entries are tuples: ``("start", name, serial)``, ``("stop", name, serial)``
    and ``("got", name, message, serial)``; ``serial`` identifies the
    incarnation (a fresh instance gets a new one).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[tuple[Any, ...]] = []

    def add(self, *entry: Any) -> None:
        with self._cond:
            self._items.append(entry)
            self._cond.notify_all()

    @property
    def items(self) -> list[tuple[Any, ...]]:
        with self._cond:
            return list(self._items)

    def lifecycle(self, *names: str) -> list[str]:
        """``"start a"`` / ``"stop a"`` lines, in order (only ``names`` if given)."""
        return [
            f"{kind} {name}"
            for kind, name, *_ in self.items
            if kind in ("start", "stop") and (not names or name in names)
        ]

    def got(self, name: str) -> list[Any]:
        """The messages ``name`` handled (any incarnation), in order."""
        return [e[2] for e in self.items if e[0] == "got" and e[1] == name]

    def serials(self, name: str) -> list[int]:
        """Serials of every incarnation of ``name`` that started, in order."""
        return [e[2] for e in self.items if e[0] == "start" and e[1] == name]

    def clear(self) -> None:
        with self._cond:
            self._items.clear()


@dataclass(frozen=True)
class Fail:
    """Tell a :class:`Worker` to raise ``exc`` from its handler."""

    exc: Exception


@dataclass(frozen=True, eq=False)
class Block:
    """Tell a :class:`Worker` to set ``entered`` and wait (bounded) for ``gate``."""

    entered: threading.Event
    gate: threading.Event


class Worker(Actor):
    """Records its lifecycle and messages; answers a few queries.

    * ``Fail(exc)`` raises ``exc``;
    * ``"incr"`` adds one to the instance's counter and returns it,
      ``"count"`` returns the counter (state that a restart loses);
    * ``"serial"`` returns this incarnation's serial,
      ``"thread"`` the name of the thread it runs on;
    * ``"stop-self"`` calls ``self.stop()``;
    * ``Block(entered, gate)`` blocks the handler until ``gate`` is set;
    * anything else is recorded as handled and echoed back.
    """

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.serial = next(_serials)
        self.counter = 0

    def on_start(self) -> None:
        self.journal.add("start", self.name, self.serial)

    def on_stop(self) -> None:
        self.journal.add("stop", self.name, self.serial)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Fail):
            raise message.exc
        if isinstance(message, Block):
            message.entered.set()
            message.gate.wait(5.0)
            return None
        if message == "incr":
            self.counter += 1
            return self.counter
        if message == "count":
            return self.counter
        if message == "serial":
            return self.serial
        if message == "thread":
            return threading.current_thread().name
        if message == "stop-self":
            self.stop()
            return None
        self.journal.add("got", self.name, message, self.serial)
        return message


class Deciding(Worker):
    """A :class:`Worker` whose own ``decide(exc)`` is the ``decide`` callable."""

    def __init__(self, journal: Journal, decide: Callable[[Exception], Any]) -> None:
        super().__init__(journal)
        self._decide = decide

    def decide(self, exc: Exception) -> Any:
        return self._decide(exc)


class StartFails(Actor):
    """``on_start`` raises ``OSError("port 8080 in use")``."""

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__()
        self.journal = journal

    def on_start(self) -> None:
        if self.journal is not None:
            self.journal.add("start-failed", self.name, 0)
        raise OSError("port 8080 in use")


def spec(name: str, journal: Journal, actor: type[Actor] = Worker, **options: Any) -> ChildSpec:
    """A ChildSpec for ``actor`` recording into ``journal`` (``kwargs`` merged)."""
    kwargs = {"journal": journal, **options.pop("kwargs", {})}
    return ChildSpec(name, actor, kwargs=kwargs, **options)


def sub(name: str, children: list[ChildSpec], **options: Any) -> ChildSpec:
    """A ChildSpec for a nested supervisor; ``options`` go to ``Supervisor``."""
    spec_options = {
        k: options.pop(k) for k in ("depends_on", "restart", "max_failures") if k in options
    }
    return ChildSpec(name, Supervisor(children, **options), **spec_options)


def kit(system: ActorSystem) -> tuple[Probe, FaultInjector]:
    """A probe recording every event of ``system`` and a fault injector for it."""
    return Probe(system), FaultInjector(system)


def events_of(probe: Probe, event_type: type, **fields: Any) -> list[Any]:
    """Recorded events of ``event_type`` matching ``fields`` (not taken)."""
    return [
        e
        for e in probe.events
        if isinstance(e, event_type) and all(getattr(e, k) == v for k, v in fields.items())
    ]
