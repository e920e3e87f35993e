"""Waking asyncio futures from other threads, one loop wake-up per burst.

``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call,
and that write lets go of the GIL: an actor answering 50 awaited asks in a
row would hand the GIL to the loop and wait to get it back 50 times. Here
the first wake-up of a burst schedules one drain on the loop; the ones
that come before the drain ran only join its list.

The wake-up lists are kept per event loop (an asyncio loop is used from one
thread and may serve several systems): they hold nothing but futures of
that loop waiting to be resolved, and a loop that is gone takes its list
with it (a weak key). No system's state is kept here.

Timeouts of pending waits use the same per-loop record (``expire_later``).

Threads: ``wake`` from any thread; the drain and ``expire_later`` on the loop.
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


_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wakeups] = (
    weakref.WeakKeyDictionary()
)


def _for_loop(loop: asyncio.AbstractEventLoop) -> _Wakeups | None:
    try:
        wakeups = _by_loop.get(loop)
        if wakeups is None:
            with _lock:
                wakeups = _by_loop.setdefault(loop, _Wakeups(loop))
    except TypeError:  # a loop that takes no weak reference
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
    wakeups = _for_loop(loop)
    if wakeups is None:  # wake such a loop each time
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
