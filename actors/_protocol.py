"""Internal messages between a cell, its supervisor and the system.

Control messages overtake user messages (see :mod:`actors.mailbox`); they
are commands to a cell, named as imperatives (``Start``, ``Teardown``,
``ResumeMailbox``, ``Kill``). Notices are ordinary messages a child's
runtime sends to its supervisor; they report what happened
(``ChildFailure``, ``ChildExited``, ``ChildRecovered``).
``ResumeMailbox`` is not the service command ``regisseur.messages.Resume``:
that one resumes a paused service's runs, this one a failed cell's mailbox.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regisseur.actors.mailbox import ControlMessage

if TYPE_CHECKING:
    from regisseur.actors._cell import Cell

__all__ = [
    "ChildExited",
    "ChildFailure",
    "ChildRecovered",
    "Kill",
    "ResumeMailbox",
    "Start",
    "StartAttempt",
    "Teardown",
]


class StartAttempt:
    """One start of one incarnation, awaited by its supervisor.

    The child's thread calls :meth:`succeed` or :meth:`fail`; the supervisor
    calls :meth:`wait`. If the wait times out the attempt is cancelled
    atomically, so a late success is not taken for a start.
    """

    __slots__ = ("_done", "_lock", "cancelled", "error", "ok")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.ok = False
        self.cancelled = False
        self.error: BaseException | None = None

    def succeed(self) -> bool:
        """Record success; False if the supervisor already gave up waiting."""
        with self._lock:
            if self.cancelled:
                return False
            self.ok = True
            self._done.set()
            return True

    def fail(self, error: BaseException) -> None:
        """Record a failed start."""
        with self._lock:
            self.error = error
            self._done.set()

    def done(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` real seconds for an answer, cancelling nothing."""
        return self._done.wait(timeout)

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` real seconds (None: no bound); False on timeout.

        A timed-out attempt is cancelled: a late success is not a start.
        """
        if self._done.wait(timeout):
            return True
        with self._lock:
            if self._done.is_set():
                return True
            self.cancelled = True
            return False


class Start(ControlMessage):
    """Create a new incarnation and run ``on_start``."""

    __slots__ = ("attempt",)

    def __init__(self, attempt: StartAttempt) -> None:
        self.attempt = attempt


class Teardown(ControlMessage):
    """Stop the current incarnation; ``final`` also ends the thread.

    ``hooks`` false skips ``on_stop`` (used for children whose spec says
    ``rollback_on_failure=False``). ``done`` is set once it is finished.
    """

    __slots__ = ("done", "final", "hooks", "reason")

    def __init__(self, *, final: bool, hooks: bool = True, reason: str = "stopped") -> None:
        self.done = threading.Event()
        self.final = final
        self.hooks = hooks
        self.reason = reason


class ResumeMailbox(ControlMessage):
    """Keep the failed incarnation and deliver user messages again (RESUME)."""

    __slots__ = ()


class Kill(ControlMessage):
    """End the thread at once, running no hook (fault injection)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ChildFailure:
    """A child's incarnation failed (raised, failed to start or died)."""

    cell: Cell
    generation: int
    error: str
    exception: BaseException | None
    hint: Any = None  # the actor's own ``decide(exc)`` answer, if any
    limit: int | None = None  # the actor's own max_failures, if it has one
    at: float | None = None  # system clock time of the failure (stamped on the way)


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child's incarnation ended on request, not by failing.

    ``final`` false: the actor stopped itself (``self.stop()``), and its
    restart type applies. ``final`` true: someone called ``ref.stop()``; the
    cell is already closed for good and is not restarted.
    """

    cell: Cell
    generation: int
    final: bool = False


@dataclass(frozen=True, slots=True)
class ChildRecovered:
    """A restarted child handled a message successfully."""

    cell: Cell
    generation: int
