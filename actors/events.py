"""The event bus: supervision events, dead letters and download changes.

Each system has its own bus, an actor of the system. ``publish`` only tells
the bus, so the publisher (often a supervisor) never waits for subscribers.
The bus delivers events in publish order, on its own thread: a callback is
called there, an actor ref is told the event. A callback that raises is
logged and stays subscribed; a subscribed actor that has stopped is dropped.

The bus actor is a child of the system supervisor (``actors._kernel``),
started first and stopped last. If it fails, it is restarted with backoff
like any child and ``health()`` reports it unhealthy meanwhile; events
published during the restart wait in its mailbox, subscribers are kept
(:class:`BusState`). The message it had in hand when it failed is not
retried: its events are counted in ``EventBus.dropped`` and logged
(``events_dropped``). At stop, the bus first delivers what was published
before.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, overload

import pykka

from regisseur.actors._pykka import Envelope
from regisseur.actors.actor import Actor
from regisseur.actors.clock import check_duration
from regisseur.actors.errors import WaitTimeoutError, describe_error
from regisseur.actors.log import get_logger
from regisseur.messages import Event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from regisseur.actors._cell import Cell
    from regisseur.actors.aio import EventStream

__all__ = ["BUS", "BusActor", "BusState", "EventBus", "Subscription", "check_event_types"]

#: The bus's actor name (a child of the system supervisor).
BUS = "regisseur.events"
#: Messages kept for the bus before the system started it; beyond, dropped and counted.
_PENDING_MAX = 100_000

E1 = TypeVar("E1")
E2 = TypeVar("E2")
E3 = TypeVar("E3")
_AnyRef: TypeAlias = "pykka.ActorRef[Any]"
E = TypeVar("E", bound=Event)


def check_event_types(types: Iterable[object], where: str) -> None:
    """``TypeError`` for a type the bus never publishes (any thread).

    The bus publishes events only: subclasses of ``regisseur.messages.Event``.
    A command (``QueueDownload``, ``Pause`` …), a record or anything else
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


@dataclass(frozen=True, slots=True)
class _Flush:
    """Answered once everything queued before it was handled (``EventBus.flush``)."""


class BusState:
    """What the bus keeps across its restarts: subscribers and the dropped count.

    One per system, made by :class:`EventBus` and given to every incarnation
    of the bus actor (also on a new cell), so a restarted bus keeps its
    subscribers. The table changes on the bus thread only (``lost`` aside,
    see :meth:`EventBus.lost`); the lock lets other threads read it.
    """

    __slots__ = ("dropped", "lock", "subscribers")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subscribers: dict[int, tuple[Any, tuple[type, ...]]] = {}
        self.dropped = 0


class BusActor(Actor):
    """Delivers events to the subscribers of a :class:`BusState`; runs on the bus thread.

    A child of the system supervisor (``actors._kernel``): if it fails it is
    restarted with backoff, and what was published meanwhile waits in its
    mailbox. It uses no runtime internals (``self._cell``): its state is
    handed in.
    """

    logger_name = "regisseur.actors.events"

    def __init__(self, state: BusState) -> None:
        super().__init__()
        self._kept = state
        # event class -> its subscribers, built on first use, dropped on change
        self._routes: dict[type, tuple[tuple[int, Any], ...]] = {}

    def health(self) -> dict[str, Any]:
        """Subscribers and events dropped so far (runs on the bus thread)."""
        kept = self._kept
        with kept.lock:
            return {"subscribers": len(kept.subscribers), "dropped": kept.dropped}

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _Publish:
            self._deliver(message.event)
        elif kind is _PublishMany:
            for event in message.events:
                self._deliver(event)
        elif kind is _Subscribe or kind is _Unsubscribe:
            _apply(self._kept, message)
            self._routes.clear()
        elif kind is _Flush:
            return None  # the reply says: all before it was handled
        else:
            return super().on_receive(message)
        return None

    def _drop(self, key: int) -> None:
        _apply(self._kept, _Unsubscribe(key))
        self._routes.clear()

    def _route(self, kind: type) -> tuple[tuple[int, Any], ...]:
        kept = self._kept
        with kept.lock:
            items = list(kept.subscribers.items())
        route = tuple((key, target) for key, (target, types) in items if issubclass(kind, types))
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


def _apply(state: BusState, change: _Subscribe | _Unsubscribe) -> None:
    """Add or remove a subscriber (idempotent)."""
    with state.lock:
        if isinstance(change, _Subscribe):
            state.subscribers[change.key] = (change.target, change.types)
        else:
            state.subscribers.pop(change.key, None)


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
    """A system's publish/subscribe channel for frozen event dataclasses.

    The facade stays while the bus actor behind it is restarted (or runs on
    a new cell): messages for it wait in its mailbox during a restart, and
    in a bounded list here before the system started it.
    """

    def __init__(self, check: Callable[[], None]) -> None:
        """``check`` raises where the bus may not be used (a forked child)."""
        self._check = check
        self._keys = itertools.count(1)
        self.kept = BusState()
        """The bus's state, handed to each incarnation of its actor."""
        self._bus_cell: Cell | None = None
        self._lock = threading.Lock()
        self._pending: deque[Envelope[Any]] = deque()
        self._log = get_logger("regisseur.actors.events")
        # What is subscribed, as publishers see it (the bus keeps its own
        # table): an event nobody subscribed to when it is published is
        # not sent to the bus at all, saving the bus a wake-up per event.
        self._wanted: dict[int, tuple[type, ...]] = {}
        self._sent: dict[type, bool] = {}  # event class -> someone wants it; rebuilt on change

    # -- the runtime's side (any thread) ---------------------------------------
    def attach(self, cell: Cell) -> None:
        """Send to ``cell`` from now on (the kernel made the bus's cell).

        What was queued before the bus had a cell goes first, in order.
        The one place the bus touches a cell (its mailbox): once the
        runtime offers a public way to reach an actor's mailbox, this is
        the line to change.
        """
        with self._lock:
            while self._pending:
                cell.mailbox.put(self._pending.popleft())
            self._bus_cell = cell

    @property
    def closed(self) -> bool:
        """True once the bus stopped for good (what is published is dropped)."""
        cell = self._bus_cell
        return cell is not None and cell.mailbox.closed

    def lost(self, message: object, reason: str) -> bool:
        """Account for a bus message its actor could not handle; False if not one.

        Called for the bus's dead letters (it failed with the message in
        hand, or it stopped): a subscription change is applied here, so no
        subscriber is lost; events are counted as dropped (``dropped``, the
        bus's health) and logged. Any thread.
        """
        if isinstance(message, (_Subscribe, _Unsubscribe)):
            _apply(self.kept, message)
            return True
        if isinstance(message, _Publish):
            events: tuple[object, ...] = (message.event,)
        elif isinstance(message, _PublishMany):
            events = message.events
        else:
            return False
        self._count_dropped(events, reason)
        return True

    def _count_dropped(self, events: tuple[object, ...], reason: str) -> None:
        with self.kept.lock:
            self.kept.dropped += len(events)
            total = self.kept.dropped
        kinds = sorted({type(e).__name__ for e in events})
        # After the bus stopped for good, a late publisher is expected (a
        # thread finishing during shutdown): a warning. A bus failure: an error.
        log = self._log.warning if self.closed else self._log.error
        log("events_dropped", count=len(events), events=kinds, reason=reason, total=total)

    @property
    def dropped(self) -> int:
        """How many published events were never delivered (the bus failed or had stopped)."""
        with self.kept.lock:
            return self.kept.dropped

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the bus handled everything published (or subscribed) before.

        Blocks the calling thread (not a subscriber callback: that would wait
        for itself) up to ``timeout`` real seconds, then raises
        ``WaitTimeoutError``. While the bus restarts, the wait includes the
        restart. Raises ``RuntimeError`` before the system started it;
        returns at once once it stopped for good.
        """
        timeout = check_duration(timeout, "flush(timeout)")
        cell = self._bus_cell
        if cell is None:
            msg = "the event bus is not running yet (start the system first)"
            raise RuntimeError(msg)
        if cell.mailbox.closed:
            return
        try:
            cell.ref.ask(_Flush(), timeout=timeout)
        except pykka.ActorDeadError:
            return  # it stopped meanwhile
        except pykka.Timeout:
            msg = f"the event bus did not deliver what it holds within {timeout:g}s"
            raise WaitTimeoutError(msg) from None

    def subscriber_count(self) -> int:
        """How many subscriptions the bus has handled and holds now (any thread)."""
        with self.kept.lock:
            return len(self.kept.subscribers)

    def _put(self, message: object) -> None:
        cell = self._bus_cell
        if cell is None:
            with self._lock:
                cell = self._bus_cell
                if cell is None:  # not started yet: keep it for the bus
                    if len(self._pending) < _PENDING_MAX:
                        self._pending.append(Envelope(message))
                        return
                    lost = self.lost(message, "too many events before the system started")
                    assert lost
                    return
        cell.mailbox.put(Envelope(message))

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
        self._check()  # no bus thread in a forked child
        if not (callable(target) or isinstance(target, pykka.ActorRef)):
            msg = f"subscribe() needs a callable or an ActorRef, got {type(target).__name__}"
            raise TypeError(msg)
        check_event_types(event_types, "subscribe()")
        key = next(self._keys)
        types = tuple(event_types) or (Event,)
        with self._lock:
            self._wanted[key] = types
            self._sent = {}
        self._put(_Subscribe(key, target, types))
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
        if not self.closed:  # a stopped bus has no subscribers left
            self._put(_Unsubscribe(key))

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
            self._put(_Publish(event))

    def publish_many(self, events: Iterable[object]) -> None:
        """Queue several events for delivery, in order, as one message."""
        batch = tuple(event for event in events if self._is_wanted(type(event)))
        if batch:
            self._put(_PublishMany(batch))
