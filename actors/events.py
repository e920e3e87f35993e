"""The event bus: supervision events, dead letters and download changes.

Each system has its own bus, an actor of the system. ``publish`` only tells
the bus, so the publisher (often a supervisor) never waits for subscribers.
The bus delivers events in publish order, on its own thread: a callback is
called there, an actor ref is told the event. A callback that raises is
logged and stays subscribed; a subscribed actor that has stopped is dropped.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, overload

import pykka
from pykka._envelope import Envelope

from regisseur.actors.actor import Actor
from regisseur.actors.errors import describe_error
from regisseur.messages import Event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from regisseur.actors._cell import Cell
    from regisseur.actors.aio import EventStream

__all__ = ["EventBus", "Subscription", "check_event_types"]

E1 = TypeVar("E1")
E2 = TypeVar("E2")
E3 = TypeVar("E3")
_AnyRef: TypeAlias = "pykka.ActorRef[Any]"
E = TypeVar("E", bound=Event)


def check_event_types(types: Iterable[object], where: str) -> None:
    """``TypeError`` for a type the bus never publishes (any thread).

    The bus publishes events only: subclasses of ``regisseur.messages.Event``.
    A command (``DownloadQueued``, ``Pause`` …), a record or anything else
    would never arrive, so subscribing to it is refused, naming it.
    """
    for kind in types:
        if not isinstance(kind, type):
            msg = f"{where}: event types must be classes, got {kind!r}"
            raise TypeError(msg)
        if not issubclass(kind, Event):
            msg = (
                f"{where}: {kind.__name__} is never published on the event bus (it is not "
                "a subclass of regisseur.messages.Event: commands go to actors, events "
                "come from them)"
            )
            raise TypeError(msg)


@dataclass(frozen=True, slots=True)
class _Publish:
    event: object


@dataclass(frozen=True, slots=True)
class _PublishMany:
    events: tuple[object, ...]


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
        # Kept in the cell's store: a restarted bus keeps its subscribers.
        self._subscribers: dict[int, tuple[Any, tuple[type, ...]]] = self._cell.store.setdefault(
            "subscribers", {}
        )
        # event class -> its subscribers, built on first use, dropped on change
        self._routes: dict[type, tuple[tuple[int, Any], ...]] = {}

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _Publish:
            self._deliver(message.event)
        elif kind is _PublishMany:
            for event in message.events:
                self._deliver(event)
        elif kind is _Subscribe:
            self._subscribers[message.key] = (message.target, message.types)
            self._routes.clear()
        elif kind is _Unsubscribe:
            self._drop(message.key)
        else:
            return super().on_receive(message)
        return None

    def _drop(self, key: int) -> None:
        if self._subscribers.pop(key, None) is not None:
            self._routes.clear()

    def _route(self, kind: type) -> tuple[tuple[int, Any], ...]:
        route = tuple(
            (key, target)
            for key, (target, types) in self._subscribers.items()
            if issubclass(kind, types)
        )
        self._routes[kind] = route
        return route

    def _deliver(self, event: object) -> None:
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        for key, target in route:
            if isinstance(target, pykka.ActorRef):
                try:
                    target.tell(event)
                except pykka.ActorDeadError:
                    self._drop(key)
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
        # What is subscribed, as publishers see it (the bus keeps its own
        # table): an event nobody subscribed to when it is published is
        # not sent to the bus at all, saving the bus a wake-up per event.
        self._lock = threading.Lock()
        self._wanted: dict[int, tuple[type, ...]] = {}
        self._sent: dict[type, bool] = {}  # event class -> someone wants it; rebuilt on change

    @overload
    def subscribe(self, target: Callable[[Event], object] | _AnyRef, /) -> Subscription: ...
    @overload
    def subscribe(
        self, target: Callable[[E1], object] | _AnyRef, event_type: type[E1], /
    ) -> Subscription: ...
    @overload
    def subscribe(
        self,
        target: Callable[[E1 | E2], object] | _AnyRef,
        event_type: type[E1],
        other: type[E2],
        /,
    ) -> Subscription: ...
    @overload
    def subscribe(
        self,
        target: Callable[[E1 | E2 | E3], object] | _AnyRef,
        event_type: type[E1],
        second: type[E2],
        third: type[E3],
        /,
    ) -> Subscription: ...
    @overload
    def subscribe(
        self,
        target: Callable[[E1], object] | _AnyRef,
        event_type: type[E1],
        second: type[E1],
        third: type[E1],
        fourth: type[E1],
        /,
        *more: type[E1],
    ) -> Subscription: ...
    def subscribe(self, target: Any, /, *event_types: type) -> Subscription:
        """Deliver events of ``event_types`` (default: every event) to ``target``.

        ``target`` is a callable taking the event (called on the bus thread)
        or an actor ref (told the event). Events published after this call
        returns are delivered. Returns a :class:`Subscription`.

        Typed: the callback's parameter must accept every subscribed type
        (``def on_failed(e: ChildFailed)`` for ``ChildFailed``; a union or a
        common base for several; ``Event`` when subscribing to all), so
        ``mypy`` reports a callback subscribed to an event it cannot take.
        """
        self._cell.system._fork.check()  # no bus thread in a forked child
        if not (callable(target) or isinstance(target, pykka.ActorRef)):
            msg = f"subscribe() needs a callable or an ActorRef, got {type(target).__name__}"
            raise TypeError(msg)
        check_event_types(event_types, "subscribe()")
        key = next(self._keys)
        types = tuple(event_types) or (Event,)
        with self._lock:
            self._wanted[key] = types
            self._sent = {}
        self._cell.mailbox.put(Envelope(_Subscribe(key, target, types)))
        return Subscription(self, key)

    def stream(self, *event_types: type[E], maxsize: int = 1000) -> EventStream[E]:
        """Events of ``event_types`` as an async iterator (see ``aio.EventStream``).

        ``async with system.events.stream(ChildFailed) as events: async for
        event in events: ...``. At most ``maxsize`` events wait in its buffer;
        beyond that the oldest is dropped and counted in ``dropped``. Raises
        ``TypeError`` for a type that is not an ``Event`` class.
        """
        from regisseur.actors.aio import EventStream, check_stream_types

        check_stream_types(event_types, maxsize)
        return EventStream(self, event_types, maxsize)

    def _unsubscribe(self, key: int) -> None:
        with self._lock:
            if self._wanted.pop(key, None) is not None:
                self._sent = {}
        if not self._cell.mailbox.closed:  # a stopped bus has no subscribers left
            self._cell.mailbox.put(Envelope(_Unsubscribe(key)))

    def _is_wanted(self, kind: type) -> bool:
        """True if a subscription (made before now) covers events of ``kind`` (any thread)."""
        wanted = self._sent.get(kind)
        if wanted is None:
            with self._lock:  # a consistent table, and the cache it answers for
                sent = self._sent
                wanted = any(issubclass(kind, types) for types in self._wanted.values())
                sent[kind] = wanted
        return wanted

    def publish(self, event: object) -> None:
        """Queue ``event`` for delivery (any thread, never blocks).

        An event no subscription covers is dropped here: nobody would get it.
        """
        if self._is_wanted(type(event)):
            self._cell.mailbox.put(Envelope(_Publish(event)))

    def publish_many(self, events: Iterable[object]) -> None:
        """Queue several events for delivery, in order, as one message."""
        batch = tuple(event for event in events if self._is_wanted(type(event)))
        if batch:
            self._cell.mailbox.put(Envelope(_PublishMany(batch)))
