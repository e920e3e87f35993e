"""Children added, stopped and restarted by name while the system runs.

``ActorSystem.spawn/stop_child/restart_child/count_children`` come here:
each finds the supervisor concerned (the root unless named) and asks it
with the supervisors' client protocol (``supervision.protocol``); the
supervisor does the work on its own thread.

Threads: the caller's (any but the supervisor's own); each call blocks
until the supervisor has answered.

Failures: ``RuntimeError`` when the system is not running, ``ValueError``
for the system's own actors (and what the supervisor refuses),
``UnknownActorError``/``ActorStoppedError`` for names, ``TypeError`` for a
non-supervisor, and the supervisor's ``StartupError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka

from regisseur.actors._kernel import is_kernel_child
from regisseur.actors.errors import ActorStoppedError, UnknownActorError
from regisseur.messages.lifecycle import Lifecycle
from regisseur.supervision.protocol import (
    ChildCounts,
    ChildInfo,
    Inspect,
    Outcome,
    RestartChild,
    Spawn,
    StopChild,
)
from regisseur.supervision.spec import ChildSpec

if TYPE_CHECKING:
    from regisseur.actors._cell import Cell
    from regisseur.actors.system import ActorSystem

__all__ = ["count_children", "restart_child", "spawn", "stop_child"]


def spawn(system: ActorSystem, spec: ChildSpec, supervisor: str | None) -> pykka.ActorRef[Any]:
    """Start ``spec`` under the root (or ``supervisor``); its ref once started."""
    if not isinstance(spec, ChildSpec):
        msg = f"spawn() needs a ChildSpec, got {type(spec).__name__}"
        raise TypeError(msg)
    cell = _supervisor_cell(system, supervisor, "spawn(supervisor)")
    outcome: Outcome = cell.ref.ask(Spawn(spec), block=True)
    ref: pykka.ActorRef[Any] = outcome.unwrap()
    return ref


def stop_child(system: ActorSystem, name: str) -> None:
    """Stop ``name`` for good and remove it from its supervisor (idempotent)."""
    _refuse_kernel_child(name, "stop_child")
    supervisor = _supervisor_of(system, name, "stop_child(name)")
    try:
        outcome: Outcome = supervisor.ask(StopChild(name), block=True)
        outcome.unwrap()
    except (UnknownActorError, pykka.ActorDeadError):
        if not system.registry.was_removed(name):
            raise
        # already removed (or its supervisor is gone): nothing to stop


def restart_child(system: ActorSystem, name: str) -> pykka.ActorRef[Any]:
    """Start the stopped or failed child ``name`` again; its new ref."""
    _check_running(system)
    _refuse_kernel_child(name, "restart_child")
    supervisor = _supervisor_of(system, name, "restart_child(name)")
    outcome: Outcome = supervisor.ask(RestartChild(name), block=True)
    ref: pykka.ActorRef[Any] = outcome.unwrap()
    return ref


def count_children(system: ActorSystem, supervisor: str | None) -> ChildCounts:
    """How many children the root (or ``supervisor``) has, by kind and status."""
    cell = _supervisor_cell(system, supervisor, "count_children(supervisor)")
    infos: list[ChildInfo] = cell.ref.ask(Inspect(), block=True)
    return ChildCounts.of(infos)


def _check_running(system: ActorSystem) -> None:
    system.check_not_forked()
    if system.state != Lifecycle.RUNNING:
        msg = f"system {system.name!r} is not running (state: {system.state})"
        raise RuntimeError(msg)


def _supervisor_cell(system: ActorSystem, name: str | None, what: str) -> Cell:
    """The running supervisor ``name`` (None: the root), or the error."""
    from regisseur.supervision.supervisor import SupervisorActor

    _check_running(system)
    if name is None:
        root = system._lifecycle.root
        assert root is not None
        return root
    cell = system.registry.lookup(name, what)
    if cell is None or cell.stopped.is_set():
        msg = f"supervisor {name!r} is stopped"
        raise ActorStoppedError(msg)
    if not isinstance(cell.instance, SupervisorActor):
        msg = f"{name!r} is not a supervisor"
        raise TypeError(msg)
    return cell


def _supervisor_of(system: ActorSystem, name: str, what: str) -> pykka.ActorRef[Any]:
    """The ref of the supervisor that has (or had) the child ``name``."""
    parent = system.registry.parent_of(name, what)
    ref = getattr(parent, "_ref", None)
    if ref is None:
        msg = f"{name!r} is not a supervised child"
        raise ValueError(msg)
    return ref  # type: ignore[no-any-return]


def _refuse_kernel_child(name: object, what: str) -> None:
    """The system's own actors are not the caller's to stop or restart."""
    if isinstance(name, str) and is_kernel_child(name):
        msg = f"{what}({name!r}): it is one of the system's own actors (stop the system instead)"
        raise ValueError(msg)
