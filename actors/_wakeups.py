"""Waking asyncio futures from other threads, one loop wake-up per burst.

``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call,
and that write lets go of the GIL: an actor answering 50 awaited asks in a
row would hand the GIL to the loop and wait to get it back 50 times. Here
the first wake-up of a burst schedules one drain on the loop; the ones
that come before the drain ran only join its list.

The wake-up record of a loop is stored on the loop object itself (an
attribute, made on the loop's own thread the first time one of its tasks
waits): it lives and dies with the loop, holds nothing but futures of that
loop waiting to be resolved, and no module-level registry exists (two
loops, or two systems, share nothing here). A loop that takes no attribute
(a C loop without ``__dict__``) is woken once per reply instead.

Timeouts of pending waits use the same per-loop record (``expire_later``).

Threads: ``wake`` from any thread; ``waker``, the drain and
``expire_later`` on the loop.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from typing import TYPE_CHECKING, Any

from regisseur.actors.log import get_logger

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ["expire_later", "wake", "waker"]

#: Timeouts of a second or more fire on this grid (at most this much late),
#: so that thousands of pending asks share a few loop timers instead of
#: each pushing one onto (and leaving a cancelled one in) the loop's heap.
GRID = 0.05

_log = get_logger("regisseur.actors.aio")


class _Wakeups:
    """The futures of one loop waiting to be resolved, and whether a drain is due."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._lock = threading.Lock()
        self._due: list[tuple[asyncio.Future[Any], Any]] = []
        self._buckets: dict[float, set[asyncio.Future[Any]]] = {}  # the loop's thread only

    def wake(self, future: asyncio.Future[Any], result: Any) -> None:
        with self._lock:
            self._due.append((future, result))
            first = len(self._due) == 1
        if not first:
            return  # a drain is already scheduled
        loop = self._loop()
        try:
            if loop is None:
                raise RuntimeError("event loop is gone")
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError as exc:  # the loop was closed: nobody waits any more
            with self._lock:
                self._due.clear()
            _log.debug("await_abandoned", reason=str(exc))

    def expire_later(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], delay: float
    ) -> Callable[[], None]:
        when = math.ceil((loop.time() + delay) / GRID) * GRID
        bucket = self._buckets.get(when)
        if bucket is None:
            bucket = self._buckets[when] = set()
            loop.call_at(when, self._expire, when)
        bucket.add(future)
        return functools.partial(bucket.discard, future)

    def _expire(self, when: float) -> None:
        for future in self._buckets.pop(when, ()):
            _resolve(future, False)

    def _drain(self) -> None:
        with self._lock:
            due, self._due = self._due, []
        for future, result in due:
            _resolve(future, result)


#: The loop attribute holding its ``_Wakeups`` (one per loop, made on its thread).
_ATTRIBUTE = "_regisseur_wakeups"


def _for_loop(loop: asyncio.AbstractEventLoop) -> _Wakeups | None:
    """The loop's record, made now if it has none (the loop's thread only)."""
    wakeups: _Wakeups | None = getattr(loop, _ATTRIBUTE, None)
    if wakeups is None:
        wakeups = _Wakeups(loop)
        try:
            setattr(loop, _ATTRIBUTE, wakeups)
        except (AttributeError, TypeError):  # a loop without __dict__: no batching
            return None
    return wakeups


def expire_later(future: asyncio.Future[Any], delay: float) -> Callable[[], None]:
    """Resolve ``future`` with False after ``delay`` seconds; returns a cancel function.

    The loop's thread only. Delays under a second get a timer of their own;
    longer ones share the timers of a ``GRID`` (they fire up to 50 ms late).
    """
    loop = future.get_loop()
    wakeups = _for_loop(loop) if delay >= 1.0 else None
    if wakeups is not None:
        return wakeups.expire_later(loop, future, delay)
    return loop.call_later(delay, _resolve, future, False).cancel


def wake(future: asyncio.Future[Any], result: Any = True) -> None:
    """Resolve ``future`` with ``result`` on its loop (any thread; no-op if done by then)."""
    loop = future.get_loop()
    wakeups: _Wakeups | None = getattr(loop, _ATTRIBUTE, None)  # made on the loop only
    if wakeups is None:  # no record (yet, or ever): wake the loop for this one
        try:
            loop.call_soon_threadsafe(_resolve, future, result)
        except RuntimeError as exc:
            _log.debug("await_abandoned", reason=str(exc))
        return
    wakeups.wake(future, result)


def waker(future: asyncio.Future[Any]) -> Callable[[], None]:
    """A function that does ``wake(future)``, its loop's record found now (on the loop)."""
    wakeups = _for_loop(future.get_loop())
    if wakeups is None:
        return functools.partial(wake, future, True)
    return functools.partial(wakeups.wake, future, True)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)
