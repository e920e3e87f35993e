"""The runtime seam: what a supervisor needs from the actors package.

Every named actor runs in a *cell* (``actors._cell``): the cell keeps the
name, mailbox, ``ActorRef`` and thread while incarnations of the actor come
and go. A supervisor (``regisseur.supervision``) and the testing kit drive
cells through this module only; the cell's other members and the modules
behind it are private and may change. The contract:

* :class:`CellHandle`: the members of a cell a supervisor may read, set or
  call, with their thread rules. :func:`new_cell` makes one
  (:data:`ActorCell` is its class, for annotations; it satisfies
  :class:`CellHandle`, which a type check in this module holds it to).
* :class:`Parent`: what a cell reports to. The cell's thread calls
  ``parent.notify(notice)`` with one of the *notices*
  :class:`ChildFailure`, :class:`ChildExited`, :class:`ChildRecovered`;
  ``notify`` must not block (a supervisor forwards it to its own mailbox,
  in an :class:`Envelope`).
* *Control messages*, queued with ``cell.control(message)``, overtake the
  actor's user messages: :class:`Start` (build an incarnation and run
  ``on_start``; the supervisor awaits its :class:`StartAttempt`),
  :class:`Teardown` (end the incarnation; ``final`` also ends the thread),
  :class:`ResumeMailbox` (keep the failed incarnation), :class:`Kill` (end the
  thread at once, no hooks).
* :class:`CellState`: a cell's lifecycle (NEW → STARTING → RUNNING →
  FAILED/IDLE/DEAD → … → STOPPED).
* The system's registry of names is public on the system itself:
  ``system.registry`` (``register``, ``unregister``, ``check_free``,
  ``lookup``, ``find``), with ``system.state``, ``system.check_not_forked()``
  and ``system.publish_sources()`` for the downloads and cluster packages.
* :func:`stops_quietly`: whether a child's teardown runs code of its own.
* Fault hooks for the testing kit: a cell runs its :class:`CellFaults`
  plan (``cell.faults``) before each start and each message;
  :class:`InjectedFault` is the default injected exception.

Threads: as documented on each member; the registry functions are safe
from any thread. Failures: as documented on each member; nothing here
swallows an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from regisseur.actors._cell import Cell, CellState, Parent
from regisseur.actors._faults import CellFaults, InjectedFault
from regisseur.actors._protocol import (
    ChildExited,
    ChildFailure,
    ChildRecovered,
    Kill,
    ResumeMailbox,
    Start,
    StartAttempt,
    Teardown,
)
from regisseur.actors._pykka import Envelope
from regisseur.actors.mailbox import ControlMessage

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    import pykka

    from regisseur.actors.actor import Actor
    from regisseur.actors.system import ActorSystem

__all__ = [
    "ActorCell",
    "CellFaults",
    "CellHandle",
    "CellState",
    "ChildExited",
    "ChildFailure",
    "ChildRecovered",
    "ControlMessage",
    "Envelope",
    "InjectedFault",
    "Kill",
    "Parent",
    "ResumeMailbox",
    "Start",
    "StartAttempt",
    "Teardown",
    "new_cell",
    "stops_quietly",
]

ActorCell = Cell
"""The class of the cells :func:`new_cell` makes (for annotations only).

Use only the members :class:`CellHandle` lists; the rest is private.
"""


class CellHandle(Protocol):
    """The members of a cell its supervisor may use.

    Unless said otherwise, reads are safe from any thread (they may be
    stale by the time they are used) and calls are made from the
    supervisor's thread, never from the cell's own.
    """

    @property
    def name(self) -> str:
        """The actor's name in its system (fixed)."""
        ...

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        """The actor's ``ActorRef``; valid across restarts (fixed)."""
        ...

    @property
    def state(self) -> CellState:
        """Where the cell is in its lifecycle (set by the cell's thread)."""
        ...

    @property
    def generation(self) -> int:
        """The incarnation last started (``Actor.actor_incarnation``); 0 before any."""
        ...

    @property
    def instance(self) -> Actor | None:
        """The live incarnation, or None (between incarnations, once stopped)."""
        ...

    @property
    def thread(self) -> threading.Thread | None:
        """The cell's thread, None before :meth:`ensure_thread` first ran."""
        ...

    @property
    def stopped(self) -> threading.Event:
        """Set once the cell is closed for good (it takes no more messages)."""
        ...

    @property
    def abandoned(self) -> bool:
        """True once a teardown overran its timeout: the cell is never used again."""
        ...

    failures: int
    """Consecutive failures; kept by the supervisor (``Actor.consecutive_failures``)."""
    restarts: int
    """Restarts so far; kept by the supervisor (``Actor.restarts``)."""
    on_close: Callable[[], None] | None
    """Called on the closing thread when the cell closes for good (errors logged)."""
    faults: CellFaults | None
    """The fault plan run before each start and message (the testing kit sets it)."""

    def ensure_thread(self) -> None:
        """Start the cell's thread unless a live one will take its messages."""
        ...

    def control(self, message: ControlMessage) -> None:
        """Queue a control message; it overtakes user messages (any thread)."""
        ...

    def request_stop(self) -> None:
        """Make the actor's ``stopping`` true and wake its ``sleep`` (any thread)."""
        ...

    def terminate(
        self, *, final: bool, reason: str, timeout: float | None, hooks: bool = True
    ) -> bool:
        """The one stop protocol; True if the incarnation ended within ``timeout``.

        A stop request, a :class:`Teardown`, a wait of ``timeout`` real
        seconds, then (past it) abandoning the cell with a
        ``ChildStopTimedOut`` event: see ``actors._cell.Cell.terminate``.
        """
        ...

    def begin_terminate(self, *, final: bool, reason: str, hooks: bool = True) -> Teardown | None:
        """The first half of :meth:`terminate`: the teardown to await, None if done."""
        ...

    def finish_terminate(
        self, command: Teardown, timeout: float | None, *, limit: float | None = None
    ) -> bool:
        """The second half of :meth:`terminate`, for a command of :meth:`begin_terminate`."""
        ...

    def kill(self) -> None:
        """End the thread without hooks, as if it had been killed (any thread)."""
        ...


def new_cell(
    system: ActorSystem,
    name: str,
    actor_class: type[Actor],
    factory: Callable[[], Actor],
    parent: Parent,
) -> ActorCell:
    """A new cell named ``name`` in ``system``, reporting to ``parent``.

    ``factory`` builds each incarnation on the cell's thread (its
    ``__init__`` sees the cell). Nothing runs until the caller registers
    the cell, queues a :class:`Start` and calls ``ensure_thread()``. Any
    thread; never raises for valid arguments.
    """
    return Cell(system, name, actor_class, factory, parent)


def stops_quietly(actor_class: type[Actor]) -> bool:
    """True if tearing down an instance of ``actor_class`` runs no code of its own.

    No ``on_stop``, no ``on_incarnation_end`` and none of the library's own
    teardown (a service's ``cleanup``): a supervisor may then stop several
    such children together instead of one after the other. Any thread.
    """
    from regisseur.actors.actor import Actor

    return (
        actor_class.on_stop is Actor.on_stop
        and actor_class.on_incarnation_end is Actor.on_incarnation_end
        and actor_class._end_incarnation is Actor._end_incarnation
    )


def _conforms(cell: ActorCell) -> CellHandle:
    """Static check (mypy): the concrete cell satisfies the documented handle."""
    return cell
