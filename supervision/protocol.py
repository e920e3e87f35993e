"""The supervisor's client protocol: the requests a supervisor answers.

Anyone holding a supervisor's ``ActorRef`` (the system, the download
queue, cluster singletons and shards) talks to it with these messages,
through ``ref.ask(...)`` or the helpers below; nothing else of the
supervisor's internals is needed.

* :class:`Spawn` ``(spec)`` — add and start a child; the reply is an
  :class:`Outcome` holding its ``ActorRef`` (``StartupError`` if it failed
  to start, ``ValueError`` for a taken name or a dependency not running).
* :class:`StopChild` ``(name)`` — stop a child for good and remove it;
  an :class:`Outcome` (``UnknownActorError``, or ``ValueError`` while
  running siblings depend on it).
* :class:`RestartChild` ``(name)`` — start a stopped or failed child again
  (OTP ``restart_child``); an :class:`Outcome` holding its new ref.
* :class:`Inspect` ``()`` — a list of :class:`ChildInfo`, one per child in
  start order (:class:`ChildCounts` counts them).

Requests that can be wrong come back as an :class:`Outcome` instead of
raising inside the supervisor: a caller's mistake is not a failure of the
supervisor and must not trigger supervision. ``outcome.unwrap()`` re-raises
the error on the caller's thread.

Threads: the messages are immutable; the helpers block the calling thread
(never a supervisor's own thread: it would wait for itself) until the
supervisor answers, or ``timeout`` real seconds (``pykka.Timeout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regisseur.messages.commands import Command
from regisseur.messages.lifecycle import Lifecycle

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pykka

    from regisseur.actors.runtime import ActorCell
    from regisseur.supervision.spec import ChildSpec

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildStatus",
    "Inspect",
    "Outcome",
    "RestartChild",
    "Spawn",
    "StopChild",
    "inspect",
    "request",
]


#: A child's status as its supervisor records it: the shared lifecycle enum
#: (states: ``messages.lifecycle.CHILD_STATES``); health reports carry it.
ChildStatus = Lifecycle


@dataclass(frozen=True, slots=True)
class Spawn(Command):
    """Ask a supervisor to add and start a child (reply: its ref)."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class StopChild(Command):
    """Ask a supervisor to stop and remove a child."""

    name: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's result or error, returned (not raised) by a supervisor.

    A bad ``spawn`` or ``stop_child`` request is the caller's mistake, not a
    failure of the supervisor, so it must not trigger supervision.
    """

    value: Any = None
    error: Exception | None = None

    @classmethod
    def of(cls, call: Callable[[], Any]) -> Outcome:
        """Run ``call``; capture its result or the exception it raised."""
        try:
            return cls(value=call())
        except Exception as exc:  # noqa: BLE001 - handed back to the caller
            return cls(error=exc)

    def unwrap(self) -> Any:
        """The value, or raise the captured error (on the caller's thread)."""
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A snapshot of one child's record, for health reports."""

    name: str
    status: ChildStatus
    restarts: int
    failures: int
    last_error: str | None
    started_at: float | None
    cell: ActorCell | None
    is_supervisor: bool
    description: str


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """How many children a supervisor has (OTP's ``count_children``).

    ``specs``: children it knows (running, restarting, stopped or failed);
    ``active``: those running now; ``supervisors`` / ``workers``: how many
    of ``specs`` are nested supervisors / actors.
    """

    specs: int
    active: int
    supervisors: int
    workers: int

    @classmethod
    def of(cls, infos: Sequence[ChildInfo]) -> ChildCounts:
        """Count a supervisor's :class:`ChildInfo` snapshots."""
        supervisors = sum(1 for i in infos if i.is_supervisor)
        return cls(
            specs=len(infos),
            active=sum(1 for i in infos if i.status is ChildStatus.RUNNING),
            supervisors=supervisors,
            workers=len(infos) - supervisors,
        )


@dataclass(frozen=True, slots=True)
class RestartChild(Command):
    """Ask a supervisor to start a stopped or failed child again (reply: its ref)."""

    name: str


@dataclass(frozen=True, slots=True)
class Inspect(Command):
    """Ask a supervisor for :class:`ChildInfo` of every child, in start order."""


def request(supervisor: pykka.ActorRef[Any], message: Spawn | StopChild | RestartChild) -> Any:
    """Send ``message`` to ``supervisor``, wait, and return its value or raise its error."""
    outcome: Outcome = supervisor.ask(message, block=True)
    return outcome.unwrap()


def inspect(supervisor: pykka.ActorRef[Any], timeout: float | None = None) -> list[ChildInfo]:
    """The :class:`ChildInfo` of every child of ``supervisor``, in start order."""
    infos: list[ChildInfo] = supervisor.ask(Inspect(), block=True, timeout=timeout)
    return infos
