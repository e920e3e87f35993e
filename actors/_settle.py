"""Waiting until a system's actors have nothing they can do right now.

``settle_cells`` is ``ActorSystem.settle()`` (and the manual clock's
quiesce hook); ``wait_idle`` lets the bus and the journal drain before
they stop.

Threads: the caller's (any thread but the actors' own, except the one
named ``except_thread``). The waits poll the cells' state, woken early by
``activity`` (set when a mailbox goes to sleep or a clock wait starts).

Failures: ``settle_cells`` raises ``WaitTimeoutError`` naming the busy
actors after ``timeout`` real seconds; ``wait_idle`` returns False then.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from regisseur.actors.clock import monotonic
from regisseur.actors.errors import WaitTimeoutError

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors._cell import Cell
    from regisseur.actors.clock import Timers

__all__ = ["Activity", "settle_cells", "wait_idle"]

_POLL = 0.05


class Activity(threading.Event):
    """The "something went idle" flag the waits below sleep on.

    Every mailbox going to sleep and every clock wait sets it, so ``set``
    is on the hot path of every message exchange; it takes the event's
    lock only when the flag is down (a wait cleared it). Skipping a set on
    a raised flag changes nothing: a waiter that saw it down was notified
    by the set that raised it. Any thread.
    """

    def set(self) -> None:
        if not self.is_set():
            super().set()


def settle_cells(
    all_cells: Callable[[], list[Cell]],
    timers: Timers,
    activity: threading.Event,
    timeout: float,
    except_thread: threading.Thread | None,
) -> None:
    """Return once every cell is idle (or waits on the clock) twice in a row, unchanged."""
    deadline = monotonic() + timeout
    previous: list[int] | None = None
    while True:
        activity.clear()
        cells = all_cells()
        counts = [c.mailbox.processed for c in cells]
        waiting = timers.waiting()
        if except_thread is not None:
            waiting.add(except_thread)
        if all(c.idle() or c.thread in waiting for c in cells):
            if counts == previous:
                return
            previous = counts
            continue
        previous = None
        remaining = deadline - monotonic()
        if remaining <= 0:
            busy = sorted(c.name for c in cells if not (c.idle() or c.thread in waiting))
            msg = f"system did not settle within {timeout:g}s; busy: {', '.join(busy)}"
            raise WaitTimeoutError(msg)
        activity.wait(min(remaining, _POLL))


def wait_idle(cells: list[Cell], activity: threading.Event, timeout: float) -> bool:
    """Wait (bounded) until ``cells`` have handled what they hold; True if so."""
    deadline = monotonic() + timeout
    while not all(c.idle() for c in cells):
        remaining = deadline - monotonic()
        if remaining <= 0:
            return False
        activity.clear()
        if all(c.idle() for c in cells):
            break
        activity.wait(min(remaining, _POLL))
    return True
