"""``LeaseGuard``: how long this node may still act as the owner of its work.

The node's lease expires on the database's clock, ``lease_ttl`` after the
renewal statement ran. The statement ran after the node sent it, so the
lease cannot expire before ``sent + lease_ttl`` on the node's own clock; the
guard keeps a margin below that (for the two clocks' drift and for the
time it takes to stop the running downloads) and answers ``valid(now)``.

A node whose guard has run out is *fenced*: it no longer writes, publishes
or starts anything about the downloads it ran, and it does not reap other
nodes; the node that takes its work over decides the outcome. A frozen
process (SIGSTOP) cannot stop itself, but once it wakes every check through
the guard fails before it can touch anything.

Threads: any thread. The node actor calls :meth:`renewed` and
:meth:`lost`; workers and the keeper call :meth:`valid`. One small lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from regisseur.actors.downloads.context import CancelToken

if TYPE_CHECKING:
    from regisseur.actors.clock import Clock

__all__ = ["FENCED", "LeaseGuard", "LeasedToken", "fence_margin"]

#: The cancel reason a run sees when its node fenced itself.
FENCED = "fenced"


def fence_margin(lease_ttl: float) -> float:
    """Seconds a node stops acting before its lease can expire (15 % of it, >= 50 ms)."""
    return max(0.05, 0.15 * lease_ttl)


class LeaseGuard:
    """This node's lease as its own clock sees it (see the module docstring)."""

    __slots__ = ("_fenced", "_lock", "_margin", "_ttl", "_valid_until")

    def __init__(self, lease_ttl: float) -> None:
        self._ttl = lease_ttl
        self._margin = fence_margin(lease_ttl)
        self._lock = threading.Lock()
        self._valid_until = float("-inf")
        self._fenced = False

    @property
    def valid_until(self) -> float:
        """The clock time at which this node fences itself (-inf: never held)."""
        return self._valid_until

    @property
    def fenced(self) -> bool:
        """True between a fence (:meth:`fence_if_due`, :meth:`lost`) and the next renewal."""
        return self._fenced

    def renewed(self, sent_at: float) -> bool:
        """A renewal (or registration) sent at ``sent_at`` succeeded.

        Moves ``valid_until`` forward (never back). True if this ends a
        fence: the caller announces it.
        """
        with self._lock:
            until = sent_at + self._ttl - self._margin
            self._valid_until = max(self._valid_until, until)
            ended, self._fenced = self._fenced, False
            return ended

    def fence_if_due(self, now: float) -> bool:
        """Fence if ``valid_until`` has passed; True if this call fenced."""
        with self._lock:
            if self._fenced or now < self._valid_until:
                return False
            self._fenced = True
            return True

    def lost(self) -> bool:
        """The lease is gone (reaped): fenced until renewed; True if this call fenced."""
        with self._lock:
            self._valid_until = float("-inf")
            started, self._fenced = not self._fenced, True
            return started

    def valid(self, now: float) -> bool:
        """True while this node may still act as the owner of its work."""
        return now < self._valid_until


class LeasedToken(CancelToken):
    """A download's cancel token that also reads as cancelled (reason
    ``"fenced"``) as soon as the node's lease guard has run out.

    The fence itself arrives as a message; a process that wakes from a
    freeze may run a worker before that message is handled. Through this
    token the run's first check after the wake (``context.cancelled``,
    ``context.sleep``) already stops it.
    """

    __slots__ = ("_clock", "_guard")

    def __init__(self, guard: LeaseGuard, clock: Clock) -> None:
        super().__init__()
        self._guard = guard
        self._clock = clock

    @property
    def cancelled(self) -> bool:
        if not self._cancelled and not self._guard.valid(self._clock.now()):
            self.cancel(FENCED)
        return self._cancelled
