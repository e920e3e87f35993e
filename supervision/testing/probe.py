"""``Probe``: wait for events in tests, with a timeout instead of a sleep."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar

from regisseur.actors.clock import MAX_WAIT, check_duration, monotonic
from regisseur.messages import Event

if TYPE_CHECKING:
    from regisseur.actors.events import Subscription
    from regisseur.actors.system import ActorSystem

__all__ = ["Probe"]

E = TypeVar("E")


def _check_system(system: object, who: str) -> None:
    from regisseur.actors.system import ActorSystem

    if not isinstance(system, ActorSystem):
        msg = f"{who}(system) needs an ActorSystem, got {type(system).__name__} {system!r}"
        raise TypeError(msg)


def _check_class(kind: object, what: str) -> None:
    if not isinstance(kind, type):
        plural = what.endswith("types")
        must = "must be classes" if plural else "must be a class"
        msg = f"{what} {must} (e.g. ChildRestarted), got {kind!r}"
        raise TypeError(msg)


class Probe:
    """Records a system's events (of ``event_types``, default all) from now on.

    ``expect`` returns the first recorded event of a type whose fields equal
    the given values and removes it from the record, waiting up to
    ``timeout`` real seconds for it to arrive; otherwise ``AssertionError``
    lists what did arrive. ``expect_no`` asserts that no such event arrives
    within ``within`` seconds (call ``system.settle()`` first for a
    deterministic check). ``watch(other)`` records a second system's events
    too; ``close()`` ends every subscription. Thread-safe; events arrive on
    the bus threads.
    """

    def __init__(self, system: ActorSystem, *event_types: type) -> None:
        _check_system(system, "Probe")
        self._setup(event_types)
        self.watch(system)

    @classmethod
    def _unbound(cls, *event_types: type) -> Probe:
        """A probe that watches no system yet (the pytest fixture's)."""
        probe = cls.__new__(cls)
        probe._setup(event_types)
        return probe

    def _setup(self, event_types: tuple[type, ...]) -> None:
        for kind in event_types:
            _check_class(kind, "Probe event types")  # "event types must be classes"
        self.types = tuple(event_types) or (Event,)
        self._events: list[Any] = []
        self._cond = threading.Condition()
        self._systems: list[ActorSystem] = []
        self._subscriptions: list[Subscription] = []
        self._closed = False

    @property
    def system(self) -> ActorSystem:
        """The first system this probe watches."""
        if not self._systems:
            msg = "this probe watches no system yet: make one with system_factory"
            raise RuntimeError(msg)
        return self._systems[0]

    def watch(self, system: ActorSystem) -> None:
        """Record ``system``'s events as well, from now on (any thread)."""
        _check_system(system, "Probe.watch")
        with self._cond:
            if self._closed:
                msg = "this probe is closed"
                raise RuntimeError(msg)
            if any(s is system for s in self._systems):
                return
            self._systems.append(system)
            self._subscriptions.append(system.events.subscribe(self._record, *self.types))

    def _record(self, event: Any) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    @property
    def events(self) -> list[Any]:
        """Every recorded event not yet taken by ``expect``, oldest first."""
        with self._cond:
            return list(self._events)

    def _take(self, event_type: type, fields: dict[str, Any]) -> Any:
        for index, event in enumerate(self._events):
            if isinstance(event, event_type) and all(
                getattr(event, key, _MISSING) == value for key, value in fields.items()
            ):
                return self._events.pop(index)
        return _MISSING

    def expect(self, event_type: type[E], timeout: float = 1.0, **fields: Any) -> E:
        """Return (and take) the first matching event; wait up to ``timeout``."""
        _check_class(event_type, "expect(event_type)")
        timeout = check_duration(timeout, "expect(timeout)")
        deadline = monotonic() + timeout
        with self._cond:
            while True:
                found = self._take(event_type, fields)
                if found is not _MISSING:
                    return found  # type: ignore[no-any-return]
                remaining = deadline - monotonic()
                if remaining <= 0:
                    seen = ", ".join(repr(e) for e in self._events[-10:]) or "nothing"
                    want = ", ".join(f"{k}={v!r}" for k, v in fields.items())
                    msg = f"no {event_type.__name__}({want}) within {timeout:g}s; recorded: {seen}"
                    raise AssertionError(msg)
                self._cond.wait(min(remaining, MAX_WAIT))

    def expect_no(self, event_type: type, within: float = 0.2, **fields: Any) -> None:
        """Assert that no matching event is recorded within ``within`` seconds."""
        _check_class(event_type, "expect_no(event_type)")
        within = check_duration(within, "expect_no(within)")
        deadline = monotonic() + within
        with self._cond:
            while True:
                for event in self._events:
                    if isinstance(event, event_type) and all(
                        getattr(event, k, _MISSING) == v for k, v in fields.items()
                    ):
                        msg = f"unexpected {event!r}"
                        raise AssertionError(msg)
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(min(remaining, MAX_WAIT))

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._cond:
            self._events.clear()

    def close(self) -> None:
        """Stop recording, from every system watched (idempotent)."""
        with self._cond:
            self._closed = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.cancel()


_MISSING: Any = object()
