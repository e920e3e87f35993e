"""The supervisor: a spec (``Supervisor``) and the actor that runs it.

``Supervisor(children, ...)`` is declarative data, validated when it is made
(see :mod:`supervision.graph`). Given to an ``ActorSystem`` (as its root) or
nested in a ``ChildSpec``, it runs as a :class:`SupervisorActor` on its own
thread. That actor owns every decision about its children: start order,
restarts with backoff, failure limits, restart intensity, stop order.

How a failure is handled (all on the supervisor's thread, driven by
messages): the child's runtime holds its mailbox and sends a notice; the
supervisor picks a directive (the child's ``decide(exc)``, else the
supervisor's ``decider``, else ``FatalError`` → STOP, other → RESTART),
applies the restart type and ``max_failures``, checks intensity, stops the
strategy's restart group in reverse start order, publishes events, and
schedules the restart as a timer message to itself. A stop request during a
long backoff is therefore handled at once; nothing sleeps.

Starts are synchronous inside the supervisor (bounded by each child's
``start_timeout``): children of one start level are started concurrently,
each on its own thread, and awaited together.

How a child ends, and what remains of it (as OTP's supervisor):

* it stops itself (``self.stop()``): PERMANENT is restarted; TRANSIENT and
  TEMPORARY stop, and a significant one may end the supervisor
  (``auto_shutdown``);
* ``ref.stop()``: its cell closes itself; it is never restarted;
* it gives up (STOP, ``max_failures``): reported failed;
* a sibling's group restart stops it: restarted, unless TEMPORARY.

A stopped or failed static child stays listed (``restart_child`` starts it
again, ``stop_child`` removes it); a dynamic child that stopped is removed,
one that gave up stays listed as failed until ``stop_child``.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regisseur.actors import runtime
from regisseur.actors.actor import Actor
from regisseur.actors.clock import check_duration, monotonic
from regisseur.actors.errors import UnknownActorError, describe_error
from regisseur.actors.runtime import (
    ActorCell,
    CellState,
    ChildExited,
    ChildFailure,
    ChildRecovered,
    Envelope,
    ResumeMailbox,
    Start,
    StartAttempt,
    Teardown,
)
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    StartupFailed,
    SupervisorEscalated,
    SupervisorShutDown,
)
from regisseur.supervision import graph
from regisseur.supervision.backoff import Backoff
from regisseur.supervision.directive import (
    AutoShutdown,
    Decider,
    Directive,
    Restart,
    Strategy,
    _Kind,
    default_decider,
)
from regisseur.supervision.errors import EscalatedError, StartupError
from regisseur.supervision.protocol import (
    ChildCounts,
    ChildInfo,
    ChildStatus,
    Inspect,
    Outcome,
    RestartChild,
    Spawn,
    StopChild,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from regisseur.actors.clock import Clock
    from regisseur.actors.runtime import Parent
    from regisseur.actors.system import ActorSystem
    from regisseur.supervision.spec import ChildSpec

# The client protocol's names stay importable from here (their home is
# supervision.protocol).
__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildStatus",
    "Inspect",
    "Outcome",
    "RestartChild",
    "Spawn",
    "StopChild",
    "Supervisor",
    "SupervisorActor",
]


@dataclass(frozen=True, slots=True)
class Supervisor:
    """A supervision tree node: children plus the rules for their failures.

    * ``strategy``: which siblings restart with a failed child.
    * ``max_restarts`` / ``within``: more restarts than that within
      ``within`` seconds (system clock) make the supervisor stop all its
      children in reverse start order and fail itself, escalating to its
      parent.
    * ``backoff``: default restart delays for children without their own.
    * ``decider``: ``(exc) -> Directive | None`` for children whose actor
      does not decide itself; None falls back to the default rule.
    * ``auto_shutdown``: whether the supervisor ends itself when its
      significant children end by themselves (see ``AutoShutdown``).
    * ``stops_with_peers``: nested in a ``ChildSpec``, whether this subtree's
      stop may run at the same time as those of its siblings in the same
      start level that allow it too (independent subtrees alike, such as
      download sources): its parent then asks them to stop together and
      awaits them together, each within its own ``stop_bound()``. Within
      the subtree the stop order is kept, and siblings in other levels
      still stop in reverse start order (what the subtree depends on
      outlives it). Leave it False where the order of the stops matters.
    """

    children: Sequence[ChildSpec] = ()
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)
    decider: Decider | None = None
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER
    stops_with_peers: bool = False

    def __post_init__(self) -> None:
        from regisseur.supervision.spec import ChildSpec

        if isinstance(self.children, (str, bytes)) or not hasattr(self.children, "__iter__"):
            msg = f"Supervisor children must be a sequence of ChildSpec, got {self.children!r}"
            raise TypeError(msg)
        children = tuple(self.children)
        for child in children:
            if not isinstance(child, ChildSpec):
                msg = f"Supervisor children must be ChildSpec objects, got {child!r}"
                raise TypeError(msg)
        object.__setattr__(self, "children", children)
        if not isinstance(self.strategy, Strategy):
            try:
                object.__setattr__(self, "strategy", Strategy(self.strategy))
            except ValueError:
                choices = ", ".join(s.name for s in Strategy)
                msg = f"Supervisor strategy must be one of {choices}, got {self.strategy!r}"
                raise ValueError(msg) from None
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int):
            msg = f"Supervisor max_restarts must be an int, got {self.max_restarts!r}"
            raise TypeError(msg)
        if self.max_restarts < 0:
            msg = f"Supervisor max_restarts must be >= 0, got {self.max_restarts}"
            raise ValueError(msg)
        object.__setattr__(
            self, "within", check_duration(self.within, "Supervisor within", allow_zero=False)
        )
        if not isinstance(self.backoff, Backoff):
            msg = f"Supervisor backoff must be a Backoff, got {self.backoff!r}"
            raise TypeError(msg)
        if self.decider is not None and not callable(self.decider):
            msg = f"Supervisor decider must be callable, got {self.decider!r}"
            raise TypeError(msg)
        if not isinstance(self.auto_shutdown, AutoShutdown):
            try:
                object.__setattr__(self, "auto_shutdown", AutoShutdown(self.auto_shutdown))
            except ValueError:
                choices = ", ".join(a.name for a in AutoShutdown)
                msg = (
                    f"Supervisor auto_shutdown must be one of {choices}, got {self.auto_shutdown!r}"
                )
                raise ValueError(msg) from None
        if not isinstance(self.stops_with_peers, bool):
            msg = (
                f"Supervisor stops_with_peers must be True or False, got {self.stops_with_peers!r}"
            )
            raise TypeError(msg)
        significant = [c.name for c in children if c.significant]
        if significant and self.auto_shutdown is AutoShutdown.NEVER:
            msg = (
                f"significant children ({', '.join(map(repr, significant))}) need a "
                "Supervisor auto_shutdown other than NEVER"
            )
            raise ValueError(msg)
        graph.validate(children)

    def names(self) -> list[str]:
        """Every name in this tree, nested supervisors' children included."""
        found: list[str] = []
        for child in self.children:
            found.append(child.name)
            if isinstance(child.actor, Supervisor):
                found.extend(child.actor.names())
        return found


class _Child:
    """A supervisor's record of one child (supervisor thread only)."""

    __slots__ = (
        "cell",
        "dynamic",
        "failures",
        "last_error",
        "restarts",
        "seq",
        "spec",
        "started_at",
        "status",
    )

    def __init__(self, spec: ChildSpec, *, dynamic: bool = False) -> None:
        self.spec = spec
        self.cell: ActorCell | None = None
        self.status = ChildStatus.STOPPED
        self.failures = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.started_at: float | None = None
        self.dynamic = dynamic
        self.seq = 0  # its place in spec order, given by _Tree


class _Tree:
    """What a supervisor keeps across its own restarts: children and cells.

    Supervisor thread only (the creating thread before the actor starts).
    Besides the children by name (in spec order) it keeps what restarts,
    spawns and stops ask for, so that none of them scans every sibling:
    each child's start level, the direct dependents of each child, and
    the start order (built on demand, kept until a child is added or
    removed). Every change of ``children`` goes through :meth:`add` and
    :meth:`remove`.
    """

    __slots__ = ("_dependents", "_level", "_order", "_seq", "children")

    def __init__(self, specs: Iterable[ChildSpec]) -> None:
        self._seq = itertools.count()
        self.children: dict[str, _Child] = {}
        for spec in specs:
            child = _Child(spec)
            child.seq = next(self._seq)
            self.children[spec.name] = child
        self._level: dict[str, int] = {}
        self._dependents: dict[str, dict[str, None]] = {}
        self._order: list[str] | None = None
        self._rebuild()

    def specs(self) -> list[ChildSpec]:
        return [c.spec for c in self.children.values()]

    def add(self, child: _Child) -> None:
        """Append ``child``, whose dependencies are children already (a spawn)."""
        spec = child.spec
        name = spec.name
        child.seq = next(self._seq)
        self.children[name] = child
        level = self._level
        level[name] = 1 + max((level[d] for d in spec.depends_on if d in level), default=-1)
        for dep in spec.depends_on:
            self._dependents.setdefault(dep, {})[name] = None
        self._order = None
        if self._dependents.get(name):
            # Stopped children that name it (it was removed and is back)
            # count it again, as graph.levels would: rare, so rebuild.
            self._rebuild()

    def remove(self, name: str) -> None:
        """Forget the child ``name`` (a no-op for an unknown name)."""
        child = self.children.pop(name, None)
        if child is None:
            return
        self._order = None
        if self._dependents.get(name):
            # Children still listed as depending on it (stopped ones) move
            # up a level, as graph.levels places them: rare, so rebuild.
            self._rebuild()
            return
        self._level.pop(name, None)
        self._dependents.pop(name, None)
        for dep in child.spec.depends_on:
            users = self._dependents.get(dep)
            if users is not None:
                users.pop(name, None)
                if not users:
                    del self._dependents[dep]

    def _rebuild(self) -> None:
        """Levels and dependents from scratch (static specs may name later ones)."""
        specs = self.specs()
        self._level = {s.name: i for i, level in enumerate(graph.levels(specs)) for s in level}
        self._dependents = {}
        for spec in specs:
            for dep in spec.depends_on:
                self._dependents.setdefault(dep, {})[spec.name] = None
        self._order = None

    def order(self) -> list[str]:
        """Every child in start order (levels, then spec order); stop in reverse."""
        if self._order is None:
            level, children = self._level, self.children
            self._order = sorted(children, key=lambda n: (level[n], children[n].seq))
        return self._order

    def sort(self, names: Iterable[str]) -> list[str]:
        """``names`` (children) in start order, in time proportional to their number."""
        level, children = self._level, self.children
        return sorted(names, key=lambda n: (level[n], children[n].seq))

    def level(self, name: str) -> int:
        """The start level of the child ``name`` (0: depends on no sibling)."""
        return self._level[name]

    def in_spec_order(self, names: Iterable[str]) -> list[str]:
        """``names`` (children) in the order they were added."""
        children = self.children
        return sorted(names, key=lambda n: children[n].seq)

    def dependents(self, name: str) -> set[str]:
        """Every child that depends on ``name``, directly or transitively."""
        found: set[str] = set()
        frontier = [name]
        while frontier:
            for user in self._dependents.get(frontier.pop(), ()):
                if user not in found:
                    found.add(user)
                    frontier.append(user)
        return found

    def direct_dependents(self, name: str) -> list[str]:
        """The children whose ``depends_on`` names ``name``."""
        return list(self._dependents.get(name, ()))


# Children without stop hooks asked to stop before the first is awaited.
_STOP_WINDOW = 32


@dataclass(frozen=True, slots=True)
class _RestartDue:
    token: int


def cell_for_supervisor(
    system: ActorSystem,
    name: str,
    spec: Supervisor,
    parent: Parent,
    actor_class: type[SupervisorActor] | None = None,
) -> ActorCell:
    """Create the cell that runs ``spec`` under ``parent``.

    ``actor_class`` (a ``SupervisorActor`` subclass) runs it instead of the
    plain one (the system's kernel does).
    """
    tree = _Tree(spec.children)
    kind = actor_class if actor_class is not None else SupervisorActor
    cell = runtime.new_cell(system, name, kind, lambda: kind(spec, tree), parent)
    cell.on_close = lambda: _close_tree(system, tree)
    return cell


def _close_tree(system: ActorSystem, tree: _Tree) -> None:
    """Final stop of every child cell still open (the supervisor cell closed)."""
    for name in reversed(tree.order()):
        child = tree.children[name]
        cell = child.cell
        if cell is None or cell.state is CellState.STOPPED:
            continue
        cell.terminate(final=True, reason="supervisor stopped", timeout=child.spec.stop_bound())
        system.registry.unregister(cell)
        child.status = ChildStatus.STOPPED


class SupervisorActor(Actor):
    """Runs a :class:`Supervisor` spec; see the module docstring."""

    def __init__(self, spec: Supervisor, tree: _Tree) -> None:
        super().__init__()
        self.spec = spec
        self.tree = tree
        self._restart_times: deque[float] = deque()
        self._pending: dict[int, list[str]] = {}
        # Teardowns queued but not yet awaited: their start follows at once.
        self._tearing_down: dict[str, tuple[ActorCell | None, Teardown, float]] = {}
        self._tokens = itertools.count(1)
        self._rng = random.Random()

    # -- lifecycle -------------------------------------------------------
    def on_start(self) -> None:
        """Start every child by levels; on failure roll back and raise StartupError."""
        names = list(self.tree.children)
        started, failures = self._start_names(names)
        if failures:
            child, error = failures[0]
            rolled = self._rollback(started, failed=[c.spec.name for c, _ in failures])
            if isinstance(error, StartupError):
                raise StartupError(error.child, error.cause, error.rolled_back + rolled)
            text = describe_error(error)
            self.system.events.publish(StartupFailed(child.spec.name, text, rolled))
            self.log.error("startup_failed", child=child.spec.name, error=text, rolled_back=rolled)
            raise StartupError(child.spec.name, error, rolled) from error

    def on_incarnation_end(self, *, final: bool) -> None:
        """Stop the children in reverse start order (a supervisor has no ``on_stop``)."""
        self._stop_children(list(reversed(self._start_order())), final=final)

    def health(self) -> dict[str, Any]:
        """Details only; the health tree judges a supervisor by its children's reports.

        A false answer here would make ``system.health()`` leave out the
        nested reports, hiding the very child that failed.
        """
        failed = [n for n, c in self.tree.children.items() if c.status is ChildStatus.FAILED]
        return {"children": len(self.tree.children), "failed": failed}

    # -- messages --------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildFailure():
                self._on_failure_notice(message)
            case ChildExited():
                self._on_exit(message)
            case ChildRecovered(cell, generation):
                child = self._current(cell, generation)
                if child is not None:
                    child.failures = 0
                    cell.failures = 0
            case _RestartDue(token):
                self._restart_group(token)
            case Spawn(spec):
                return Outcome.of(lambda: self._spawn(spec))
            case StopChild(name):
                return Outcome.of(lambda: self._stop_child_by_name(name))
            case RestartChild(name):
                return Outcome.of(lambda: self._restart_child_by_name(name))
            case Inspect():
                return self._inspect()
            case _:
                return super().on_receive(message)
        return None

    # -- starting ----------------------------------------------------------
    def _cell_for(self, child: _Child) -> ActorCell:
        cell = child.cell
        if cell is not None and cell.state is not CellState.STOPPED and not cell.abandoned:
            return cell
        spec = child.spec
        parent = _ParentLink(self.actor_ref, self.system.clock)
        if isinstance(spec.actor, Supervisor):
            cell = cell_for_supervisor(self.system, spec.name, spec.actor, parent)
        else:
            actor_class, args, kwargs = spec.actor, spec.args, dict(spec.kwargs)
            cell = runtime.new_cell(
                self.system, spec.name, actor_class, lambda: actor_class(*args, **kwargs), parent
            )
        self.system.registry.register(cell)
        child.cell = cell
        return cell

    def _start_names(
        self, names: Sequence[str]
    ) -> tuple[list[str], list[tuple[_Child, BaseException]]]:
        """Start ``names`` by levels; stop at the first level with a failure."""
        children = self.tree.children
        wanted = self.tree.in_spec_order({n for n in names if n in children})
        # Only the names' own levels: dependencies outside them count as started.
        levels = graph.levels([children[n].spec for n in wanted])
        started: list[str] = []
        for index, level in enumerate(levels):
            waiting: list[tuple[_Child, StartAttempt, float]] = []
            for spec in level:
                child = self.tree.children[spec.name]
                cell = self._cell_for(child)
                attempt = StartAttempt()
                child.status = ChildStatus.STARTING
                if cell.thread is None:
                    # A new cell: its thread finds the start waiting and
                    # need not go to sleep and be woken for it.
                    cell.control(Start(attempt))
                    cell.ensure_thread()
                else:
                    cell.ensure_thread()
                    cell.control(Start(attempt))
                waiting.append((child, attempt, monotonic() + spec.start_timeout))
            if index + 1 < len(levels):
                # Creating cells and threads is most of a start's own cost: do
                # it for the next level while this one runs its on_start. (A
                # taken name or no thread to spare is reported by that level's
                # own start, after this level has been awaited.)
                try:
                    for spec in levels[index + 1]:
                        self._cell_for(self.tree.children[spec.name]).ensure_thread()
                except (ValueError, RuntimeError):
                    pass
            failures: list[tuple[_Child, BaseException]] = []
            for child, first_attempt, first_deadline in waiting:
                name = child.spec.name
                attempt, deadline = first_attempt, first_deadline
                if not self._torn_down(child, first_attempt):
                    # It overran its shutdown_timeout (the old cell is
                    # abandoned and skips the start): start on a new cell.
                    attempt = StartAttempt()
                    cell = self._cell_for(child)
                    cell.control(Start(attempt))
                    cell.ensure_thread()
                    deadline = monotonic() + child.spec.start_timeout
                if not attempt.wait(max(0.0, deadline - monotonic())):
                    assert child.cell is not None
                    child.cell.request_stop()
                    timeout = child.spec.start_timeout
                    failures.append((child, TimeoutError(f"start timed out after {timeout:g}s")))
                elif attempt.error is not None:
                    failures.append((child, attempt.error))
                else:
                    child.status = ChildStatus.RUNNING
                    child.started_at = self.system.clock.now()
                    started.append(name)
                    self.system.events.publish(ChildStarted(name))
                    self.log.info("child_started", child=name)
            for child, _ in failures:
                child.status = ChildStatus.FAILED
            if failures:
                return started, failures
        return started, []

    def _torn_down(self, child: _Child, attempt: StartAttempt | None = None) -> bool:
        """Await the child's queued teardown, if any; False if it overran.

        With the ``attempt`` queued behind the teardown (a restart of one
        child), the attempt is awaited instead, until the teardown's
        deadline: the thread handles the two in order, so a finished
        attempt means a finished teardown, and the supervisor is woken
        once instead of twice (the start is then awaited to its own
        deadline as before).
        """
        pending = self._tearing_down.pop(child.spec.name, None)
        if pending is None or pending[0] is not child.cell:
            return True
        _, command, deadline = pending
        if attempt is not None and (
            attempt.done(max(0.0, deadline - monotonic())) or command.done.is_set()
        ):
            return True
        return self._finish_teardown(child, command, deadline)

    def _rollback(self, started: list[str], failed: list[str]) -> tuple[str, ...]:
        """Stop what a failed start started, in reverse start order.

        The children that failed were started last, so they go first (a
        child whose ``on_start`` returned after its ``start_timeout`` gets
        its ``on_stop``), then the started ones in reverse start order.
        """
        for name in failed:
            child = self.tree.children[name]
            self._teardown_child(child, final=False, reason="failed start")
        rolled: list[str] = []
        for name in reversed(started):
            child = self.tree.children[name]
            hooks = child.spec.rollback_on_failure
            self._teardown_child(child, final=False, hooks=hooks, reason="rollback")
            child.status = ChildStatus.STOPPED
            if hooks:
                rolled.append(name)
        return tuple(rolled)

    # -- stopping ----------------------------------------------------------
    def _start_order(self) -> list[str]:
        """Children in dependency order (stop in reverse): levels, then spec order."""
        return list(self.tree.order())

    def _teardown_child(
        self, child: _Child, *, final: bool, hooks: bool = True, reason: str = "stopped"
    ) -> bool:
        """Tear a child's incarnation down (final: end its thread); True if in time."""
        command = self._begin_teardown(child, final=final, hooks=hooks, reason=reason)
        if command is None:
            return True
        return self._finish_teardown(child, command, monotonic() + child.spec.stop_bound())

    def _begin_teardown(
        self, child: _Child, *, final: bool, hooks: bool = True, reason: str = "stopped"
    ) -> Teardown | None:
        """Ask a child's thread to tear down: the command to await, or None if done already."""
        cell = child.cell
        if cell is None or cell.state is CellState.STOPPED:
            return None
        command = cell.begin_terminate(final=final, hooks=hooks, reason=reason)
        if command is None and final:
            self.system.registry.unregister(cell)
        return command

    def _finish_teardown(self, child: _Child, command: Teardown, deadline: float) -> bool:
        """Await a teardown begun by :meth:`_begin_teardown` until ``deadline``; True if in time.

        Late: the cell is abandoned (its thread ends once the blocked code
        returns) and ``ChildStopTimedOut`` is published (``CellHandle.finish_terminate``).
        """
        cell = child.cell
        assert cell is not None
        in_time = cell.finish_terminate(
            command, max(0.0, deadline - monotonic()), limit=child.spec.stop_bound()
        )
        if not in_time:
            child.cell = None  # abandoned: a restart builds a new cell
        if command.final or not in_time:
            self.system.registry.unregister(cell)
        return in_time

    def _await_teardowns(self, asked: list[tuple[_Child, Teardown, float]]) -> None:
        """Await each teardown begun in ``asked`` until its deadline; empties ``asked``."""
        for child, command, deadline in asked:
            self._finish_teardown(child, command, deadline)
        asked.clear()

    def _stop_children(self, names: list[str], *, final: bool) -> None:
        """Stop ``names`` (given in reverse start order) one after the other.

        Except: a run of children of one start level whose actors have no
        stop hook (neither ``on_stop`` nor a supervisor's children), or
        whose class allows it (``Actor.stops_with_peers``: a source's
        workers; ``Supervisor.stops_with_peers``: the download sources), is
        stopped concurrently, each asked first, then each
        awaited until its own ``shutdown_timeout``. Nothing can tell in
        which order such children stopped, and stopping N of them then
        costs about one round trip, not N in a row (nor N bounds in a row
        when each overruns its bound). Every other child with a hook is
        still stopped alone, after everything later in the order is down.
        """
        tree = self.tree
        batch: list[_Child] = []
        for name in names:
            child = tree.children.get(name)
            if child is None:
                continue
            if batch and (
                not _quiet_stop(child.spec) or tree.level(name) != tree.level(batch[0].spec.name)
            ):
                self._stop_batch(batch, final=final)
                batch = []
            batch.append(child)
            if not _quiet_stop(child.spec):
                self._stop_batch(batch, final=final)
                batch = []
        if batch:
            self._stop_batch(batch, final=final)

    def _stop_batch(self, batch: list[_Child], *, final: bool) -> None:
        """Stop ``batch`` concurrently, at most ``_STOP_WINDOW`` at a time.

        Each child is asked, then awaited until its own ``shutdown_timeout``
        counted from when it was asked. The window keeps the cost per child
        flat however many there are: every child asked wakes its thread, and
        thousands of threads woken at once spend the time fighting over the
        GIL (each waiting thread wakes every switch interval to claim it).
        """
        alive = (ChildStatus.RUNNING, ChildStatus.STARTING, ChildStatus.RESTARTING)
        asked: deque[tuple[_Child, Teardown | None, float, bool]] = deque()
        for child in batch:
            if len(asked) >= _STOP_WINDOW:
                self._stopped(*asked.popleft(), final=final)
            # A child waiting for its restart is stopped for good here too.
            running = child.status in alive
            command = self._begin_teardown(child, final=final)
            asked.append((child, command, monotonic() + child.spec.stop_bound(), running))
        while asked:
            self._stopped(*asked.popleft(), final=final)

    def _stopped(
        self,
        child: _Child,
        command: Teardown | None,
        deadline: float,
        running: bool,
        *,
        final: bool,
    ) -> None:
        """Await one child of :meth:`_stop_batch` and record it stopped."""
        if command is not None:
            self._finish_teardown(child, command, deadline)
        if child.status is not ChildStatus.FAILED:
            child.status = ChildStatus.STOPPED
        if running and final:
            self.system.events.publish(ChildStopped(child.spec.name))

    def _stop_child_by_name(self, name: str) -> None:
        child = self.tree.children.get(name)
        if child is None:
            raise UnknownActorError(name, list(self.tree.children))
        alive = (ChildStatus.RUNNING, ChildStatus.STARTING, ChildStatus.RESTARTING)
        children = self.tree.children
        users = [
            n
            for n in self.tree.direct_dependents(name)
            if n in children and children[n].status in alive
        ]
        if users:
            msg = f"cannot stop {name!r}: {', '.join(users)} depend(s) on it; stop those first"
            raise ValueError(msg)
        self._cancel_pending(name)
        self._stop_children([name], final=True)
        self.tree.remove(name)

    # -- failures ----------------------------------------------------------
    def _current(self, cell: ActorCell, generation: int) -> _Child | None:
        child = self.tree.children.get(cell.name)
        if child is None or child.cell is not cell or cell.generation != generation:
            return None
        return child

    def _on_failure_notice(self, notice: ChildFailure) -> None:
        child = self._current(notice.cell, notice.generation)
        if child is None or child.status is not ChildStatus.RUNNING or notice.cell.stopped.is_set():
            # Stale, or ref.stop() closed the cell meanwhile (its exit follows).
            self.log.debug("stale_failure_ignored", child=notice.cell.name)
            return
        self._child_failed(
            child, notice.error, notice.exception, notice.hint, notice.limit, failed_at=notice.at
        )

    def _decide(self, exc: BaseException | None, hint: Any) -> Directive:
        if isinstance(hint, Directive):
            return hint
        if hint is not None:
            self.log.error("bad_directive", source="decide()", value=repr(hint))
        if self.spec.decider is not None and isinstance(exc, Exception):
            try:
                answer = self.spec.decider(exc)
            except Exception as decider_exc:  # noqa: BLE001 - fall back to the default rule
                self.log.error("decider_failed", error=describe_error(decider_exc))
                answer = None
            if isinstance(answer, Directive):
                return answer
            if answer is not None:
                self.log.error("bad_directive", source="decider", value=repr(answer))
        return default_decider(exc)

    def _child_failed(
        self,
        child: _Child,
        error: str,
        exc: BaseException | None,
        hint: Any,
        own_limit: int | None = None,
        *,
        failed_at: float | None = None,
    ) -> None:
        name = child.spec.name
        child.failures += 1
        if child.cell is not None:
            child.cell.failures = child.failures
        child.last_error = error
        self.system.events.publish(ChildFailed(name, error))
        self.log.warning(
            "child_failed",
            child=name,
            error=error,
            failures=child.failures,
            restarts=child.restarts,
            exc_info=exc,  # the host's handlers print the traceback
        )
        directive = self._decide(exc, hint)
        limits = [n for n in (child.spec.max_failures, own_limit) if n is not None]
        limit = min(limits) if limits else None
        if child.spec.restart is Restart.TEMPORARY and directive.kind is _Kind.RESTART:
            directive = Directive.STOP
        if limit is not None and child.failures >= limit and directive.kind is not _Kind.RESUME:
            directive = Directive.STOP
            error = f"{error} ({child.failures} consecutive failures, max_failures={limit})"
        if directive.kind is _Kind.RESUME:
            child.status = ChildStatus.RUNNING
            assert child.cell is not None
            cell = child.cell
            if cell.state is CellState.DEAD or cell.instance is None:
                # No instance left to resume (its thread died, or a restart
                # failed in on_start): start a fresh one at once.
                self._schedule_restart(child, 0.0)
            else:
                cell.control(ResumeMailbox())
        elif directive.kind is _Kind.STOP:
            self._give_up(child, error)
        elif directive.kind is _Kind.ESCALATE:
            self._escalate(f"child {name!r} failed: {error}")
        else:
            self._schedule_restart(child, directive.delay, failed_at)

    def _give_up(self, child: _Child, error: str) -> None:
        name = child.spec.name
        self._cancel_pending(name)
        self._teardown_child(child, final=True)
        child.status = ChildStatus.FAILED
        child.last_error = error
        self.system.events.publish(ChildGaveUp(name, error))
        self.system.events.publish(ChildStopped(name))
        self.log.error("child_gave_up", child=name, error=error)
        self._ended_by_itself(child)

    def _escalate(self, reason: str) -> None:
        self.system.events.publish(SupervisorEscalated(self.name, reason))
        self.log.error("supervisor_escalated", reason=reason)
        self._stop_children(list(reversed(self._start_order())), final=False)
        raise EscalatedError(self.name, reason)

    def _allow_restart(self) -> bool:
        now = self.system.clock.now()
        times = self._restart_times
        while times and times[0] <= now - self.spec.within:
            times.popleft()
        if len(times) >= self.spec.max_restarts:
            return False
        times.append(now)
        return True

    def _group(self, name: str) -> list[str]:
        """The strategy's restart group for ``name``, in start order."""
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [name]
        if strategy is Strategy.ONE_FOR_ALL:
            return list(self.tree.order())
        return self.tree.sort({name} | self.tree.dependents(name))

    def _schedule_restart(
        self, child: _Child, delay: float | None, failed_at: float | None = None
    ) -> None:
        """Restart ``child``'s group after ``delay``, counted from ``failed_at`` if given."""
        name = child.spec.name
        if not self._allow_restart():
            limit, window = self.spec.max_restarts, self.spec.within
            self._escalate(f"more than {limit} restarts within {window:g}s (last: {name!r})")
        backoff = child.spec.backoff or self.spec.backoff
        if delay is None:
            delay = backoff.delay(child.failures, self._rng)
        group = self._group(name)
        due = delay <= 0 or (failed_at is not None and failed_at + delay <= self.system.clock.now())
        # Restarting one child at once: its teardown and start are queued
        # together (its thread handles both in one go); the teardown is
        # still awaited, bounded by shutdown_timeout, before the start.
        overlap = due and group == [name]
        # Torn down in reverse start order, as a stop is (see _stop_children):
        # a run of children of one level that may stop together is asked
        # together, then awaited, before anything earlier in the order.
        together: list[tuple[_Child, Teardown, float]] = []
        for member in list(reversed(group)):
            other = self.tree.children[member]
            if member != name and other.status not in (
                ChildStatus.RUNNING,
                ChildStatus.STARTING,
            ):
                continue
            self._cancel_pending(member)
            if member != name and other.spec.restart is Restart.TEMPORARY:
                # Stopped by its sibling's restart, and never restarted (OTP).
                self._await_teardowns(together)
                group.remove(member)
                self._stop_for_good(other, reason="stopped by a group restart")
                continue
            if overlap:
                command = self._begin_teardown(other, final=False, reason="restart")
                if command is not None:
                    deadline = monotonic() + other.spec.stop_bound()
                    self._tearing_down[member] = (other.cell, command, deadline)
            else:
                quiet = _quiet_stop(other.spec)
                if together and (
                    not quiet
                    or len(together) >= _STOP_WINDOW
                    or self.tree.level(member) != self.tree.level(together[0][0].spec.name)
                ):
                    self._await_teardowns(together)
                command = self._begin_teardown(other, final=False, reason="restart")
                if command is not None:
                    together.append((other, command, monotonic() + other.spec.stop_bound()))
                if not quiet:
                    self._await_teardowns(together)
            other.status = ChildStatus.RESTARTING
        self._await_teardowns(together)
        token = next(self._tokens)
        self._pending[token] = group
        # The backoff counts from the failure, not from when it was handled.
        now = self.system.clock.now()
        wait = delay if failed_at is None else max(0.0, failed_at + delay - now)
        if wait > 0:
            # The timer exists before anyone hears of the restart, so a test
            # that waits for ChildRestarting can advance a manual clock safely.
            self.schedule(wait, _RestartDue(token))
        for member in group:
            if self.tree.children[member].status is ChildStatus.RESTARTING:
                self.system.events.publish(ChildRestarting(member, delay))
        self.log.info("child_restarting", child=name, delay=delay, group=group)
        if wait == 0:
            self._restart_group(token)
        if overlap:
            self._torn_down(child)  # awaited above, unless the restart did not happen

    def _cancel_pending(self, name: str) -> None:
        for token, group in list(self._pending.items()):
            if name in group:
                group.remove(name)
                if not group:
                    del self._pending[token]

    def _restart_group(self, token: int) -> None:
        group = self._pending.pop(token, None)
        if not group:
            return
        names = [n for n in group if n in self.tree.children]
        names = [n for n in names if self.tree.children[n].status is ChildStatus.RESTARTING]
        started, failures = self._start_names(names)
        for name in started:
            child = self.tree.children[name]
            child.restarts += 1
            if child.cell is not None:
                child.cell.restarts = child.restarts
            self.system.events.publish(ChildRestarted(name))
        leftover = [n for n in names if n not in started]
        for child, exc in failures:
            leftover.remove(child.spec.name)
            child.status = ChildStatus.RUNNING  # so the failure path treats it as current
            self._child_failed(child, describe_error(exc), exc, None)
        # Later levels that never got their turn (their dependency failed to
        # start) ride along with the dependency's next restart; if nothing
        # will restart them, start them now.
        pending = {n for group in self._pending.values() for n in group}
        orphans = [
            n
            for n in leftover
            if n in self.tree.children
            and self.tree.children[n].status is ChildStatus.RESTARTING
            and n not in pending
        ]
        if orphans:
            token = next(self._tokens)
            self._pending[token] = orphans
            self._restart_group(token)

    def _on_exit(self, notice: ChildExited) -> None:
        child = self._current(notice.cell, notice.generation)
        if child is None:
            return
        if notice.final:
            # ref.stop(): the cell closed itself for good; whatever the
            # restart type (and a pending restart), it stays stopped.
            self._cancel_pending(child.spec.name)
            self._stop_for_good(child, reason="stopped")
            return
        if child.status is not ChildStatus.RUNNING:
            return
        if child.spec.restart is Restart.PERMANENT:
            self._schedule_restart(child, 0.0)
            return
        self._stop_for_good(child, reason="stopped")
        self._ended_by_itself(child)

    def _stop_for_good(self, child: _Child, *, reason: str) -> None:
        """End a child's thread and report it stopped; a dynamic child is forgotten.

        A static child stays listed as stopped: ``restart_child`` starts it
        again. A dynamic one is removed, so its name may be spawned again.
        """
        name = child.spec.name
        self._teardown_child(child, final=True, reason=reason)
        if child.cell is not None:
            self.system.registry.unregister(child.cell)
        child.status = ChildStatus.STOPPED
        self.system.events.publish(ChildStopped(name))
        if child.dynamic and self.tree.children.get(name) is child:
            self.tree.remove(name)

    def _ended_by_itself(self, child: _Child) -> None:
        """A child ended by itself (stopped itself, gave up): apply auto_shutdown."""
        mode = self.spec.auto_shutdown
        if not child.spec.significant or mode is AutoShutdown.NEVER:
            return
        if mode is AutoShutdown.ALL_SIGNIFICANT:
            alive = (ChildStatus.RUNNING, ChildStatus.STARTING, ChildStatus.RESTARTING)
            if any(c.spec.significant and c.status in alive for c in self.tree.children.values()):
                return
        name = child.spec.name
        self.system.events.publish(SupervisorShutDown(self.name, name))
        self.log.info("supervisor_shut_down", child=name, auto_shutdown=mode.value)
        # A normal exit of this supervisor: its children are stopped in
        # reverse start order, and its parent applies its restart type.
        self.stop()

    def _restart_child_by_name(self, name: str) -> Any:
        """Start a stopped or failed child again (OTP ``restart_child``); its new ref."""
        child = self.tree.children.get(name)
        if child is None:
            raise UnknownActorError(name, list(self.tree.children))
        if child.status not in (ChildStatus.STOPPED, ChildStatus.FAILED):
            msg = (
                f"cannot restart {name!r}: it is {child.status.value} "
                "(restart_child starts a stopped or failed child)"
            )
            raise ValueError(msg)
        for dep in child.spec.depends_on:
            if self.tree.children[dep].status is not ChildStatus.RUNNING:
                msg = f"cannot restart {name!r}: its dependency {dep!r} is not running"
                raise ValueError(msg)
        self._cancel_pending(name)
        child.failures = 0
        _, failures = self._start_names([name])
        if failures:
            error = failures[0][1]
            self._teardown_child(child, final=True, reason="failed start")
            if child.cell is not None:
                self.system.registry.unregister(child.cell)
            child.status = ChildStatus.FAILED
            text = describe_error(error)
            child.last_error = text
            self.system.events.publish(StartupFailed(name, text, ()))
            if isinstance(error, StartupError):
                raise error
            raise StartupError(name, error) from error
        assert child.cell is not None
        return child.cell.ref

    # -- dynamic children ---------------------------------------------------
    def _spawn(self, spec: ChildSpec) -> Any:
        graph.validate([spec], existing=self.tree.children)
        if spec.significant and self.spec.auto_shutdown is AutoShutdown.NEVER:
            msg = (
                f"cannot spawn {spec.name!r}: a significant child needs a supervisor "
                "with auto_shutdown other than NEVER"
            )
            raise ValueError(msg)
        for dep in spec.depends_on:
            if self.tree.children[dep].status is not ChildStatus.RUNNING:
                msg = f"cannot spawn {spec.name!r}: its dependency {dep!r} is not running"
                raise ValueError(msg)
        self.system.registry.check_free(spec)
        child = _Child(spec, dynamic=True)
        self.tree.add(child)
        _, failures = self._start_names([spec.name])
        if failures:
            error = failures[0][1]
            self._teardown_child(child, final=True, reason="failed start")
            self.tree.remove(spec.name)
            text = describe_error(error)
            self.system.events.publish(StartupFailed(spec.name, text, ()))
            if isinstance(error, StartupError):
                raise error
            raise StartupError(spec.name, error) from error
        assert child.cell is not None
        return child.cell.ref

    # -- inspection ----------------------------------------------------------
    def _inspect(self) -> list[ChildInfo]:
        return [
            ChildInfo(
                name=name,
                status=(c := self.tree.children[name]).status,
                restarts=c.restarts,
                failures=c.failures,
                last_error=c.last_error,
                started_at=c.started_at,
                cell=c.cell,
                is_supervisor=c.spec.is_supervisor,
                description=c.spec.description,
            )
            for name in self._start_order()
        ]


def _quiet_stop(spec: ChildSpec) -> bool:
    """True if the child may be stopped together with its level-mates: its stop
    runs no code of its own (no stop hook, no children), or its class (its
    ``Supervisor``, for a subtree) says its stop does not depend on their
    order (``Actor.stops_with_peers``, ``Supervisor.stops_with_peers``)."""
    actor = spec.actor
    if isinstance(actor, Supervisor):
        return actor.stops_with_peers
    return actor.stops_with_peers or runtime.stops_quietly(actor)


class _ParentLink:
    """How a child's runtime reaches its supervisor: a tell to its mailbox."""

    __slots__ = ("_clock", "_ref")

    def __init__(self, ref: Any, clock: Clock) -> None:
        self._ref = ref
        self._clock = clock

    def notify(self, notice: object) -> None:
        """Runs on the child's thread: a failure is stamped with its clock time."""
        if type(notice) is ChildFailure and notice.at is None:
            notice = ChildFailure(
                notice.cell,
                notice.generation,
                notice.error,
                notice.exception,
                notice.hint,
                notice.limit,
                self._clock.now(),
            )
        inbox = self._ref.actor_inbox
        if not inbox.tell(notice):  # closed: a dead letter, as for any message
            inbox.put(Envelope(notice))
