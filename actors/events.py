"""The event bus: supervision events, dead letters and download changes.

Each system has its own bus, an actor of the system. ``publish`` only tells
the bus, so the publisher (often a supervisor) never waits for subscribers.
The bus delivers events in publish order, on its own thread: a callback is
called there, an actor ref is told the event. A callback that raises is
logged and stays subscribed; a subscribed actor that has stopped is dropped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from pykka._envelope import Envelope

from actors.actor import Actor
from actors.errors import describe_error
from messages import Event

if TYPE_CHECKING:
    from actors._cell import Cell

__all__ = ["EventBus", "Subscription"]


@dataclass(frozen=True, slots=True)
class _Publish:
    event: object


@dataclass(frozen=True, slots=True)
class _Subscribe:
    key: int
    target: Any
    types: tuple[type, ...]


@dataclass(frozen=True, slots=True)
class _Unsubscribe:
    key: int


class _BusActor(Actor):
    """Owns the subscriber table; runs on the bus thread."""

    def __init__(self) -> None:
        super().__init__()
        self._subscribers: dict[int, tuple[Any, tuple[type, ...]]] = {}

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Publish(event):
                self._deliver(event)
            case _Subscribe(key, target, types):
                self._subscribers[key] = (target, types)
            case _Unsubscribe(key):
                self._subscribers.pop(key, None)
            case _:
                return super().on_receive(message)
        return None

    def _deliver(self, event: object) -> None:
        for key, (target, types) in list(self._subscribers.items()):
            if not isinstance(event, types):
                continue
            if isinstance(target, pykka.ActorRef):
                try:
                    target.tell(event)
                except pykka.ActorDeadError:
                    self._subscribers.pop(key, None)
                continue
            try:
                target(event)
            except Exception as exc:
                self.log.error(
                    "subscriber_failed",
                    subscriber=repr(target),
                    event=type(event).__name__,
                    error=describe_error(exc),
                    exc_info=exc,
                )


class Subscription:
    """Handle returned by :meth:`EventBus.subscribe`; ``cancel()`` ends it."""

    def __init__(self, bus: EventBus, key: int) -> None:
        self._bus = bus
        self._key = key
        self.active = True

    def cancel(self) -> None:
        """Stop delivering events to this subscriber (idempotent)."""
        if self.active:
            self.active = False
            self._bus._unsubscribe(self._key)

    unsubscribe = cancel

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class EventBus:
    """A system's publish/subscribe channel for frozen event dataclasses."""

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._keys = itertools.count(1)

    def subscribe(self, target: Any, *event_types: type) -> Subscription:
        """Deliver events of ``event_types`` (default: every event) to ``target``.

        ``target`` is a callable taking the event (called on the bus thread)
        or an actor ref (told the event). Events published after this call
        returns are delivered. Returns a :class:`Subscription`.
        """
        if not (callable(target) or isinstance(target, pykka.ActorRef)):
            msg = f"subscribe() needs a callable or an ActorRef, got {type(target).__name__}"
            raise TypeError(msg)
        for kind in event_types:
            if not isinstance(kind, type):
                msg = f"event types must be classes, got {kind!r}"
                raise TypeError(msg)
        key = next(self._keys)
        types = tuple(event_types) or (Event,)
        self._cell.mailbox.put(Envelope(_Subscribe(key, target, types)))
        return Subscription(self, key)

    def _unsubscribe(self, key: int) -> None:
        self._cell.mailbox.put(Envelope(_Unsubscribe(key)))

    def publish(self, event: object) -> None:
        """Queue ``event`` for delivery (any thread, never blocks)."""
        self._cell.mailbox.put(Envelope(_Publish(event)))
