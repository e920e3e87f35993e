"""The kernel: the system's own infrastructure as an ordinary supervisor.

The event bus, the database, the single-instance guard (lease), the cluster
node and the event journal run as children of one system supervisor, the
*kernel*, with
``depends_on`` between them. Start order, rollback of a failed start,
restarts with backoff, restart intensity and the health tree then cover
them exactly as they cover the user's actors:

* ``regisseur.events``: the event bus, started first and stopped last (after
  it delivered what was published before the stop). Every other child
  depends on it; a failed start's rollback and an escalation leave it
  running, so their events still reach subscribers. Restarted alone (with
  :data:`BUS_BACKOFF`) if it fails; see ``actors.events``;
* ``regisseur.database``: opens the engine on start (a start failure is the
  system's ``StartupError`` naming ``database``), reports a trivial query in
  its health, disposes of the engine on the final stop;
* ``regisseur.lease`` (``single_instance``): takes the lease on start,
  renews it; a renewal that fails (the database is down) is a failure like
  any other: restarted with backoff, keeping its row, until the database
  answers again. Lost to another holder: stopped for good (``ChildGaveUp``);
* ``regisseur.node`` (cluster mode): this node's membership;
* ``regisseur.journal``: supervision events kept in the database;
* ``root``: the user's root supervisor, started last. It is never
  restarted: its failure fails the system, its exit (``auto_shutdown``)
  ends the system's work (see :class:`KernelActor`).

Threads: the functions here run on the thread that starts the system or
asks for its health; the actors on their own threads.

Failures: more than :data:`MAX_RESTARTS` restarts within :data:`WITHIN`
seconds fail the kernel, which fails the system (as a root failure does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors._protocol import ChildExited, ChildFailure
from regisseur.actors.actor import Actor
from regisseur.actors.events import BUS, BusActor
from regisseur.actors.journal import JournalActor
from regisseur.supervision.backoff import Backoff
from regisseur.supervision.directive import Directive
from regisseur.supervision.errors import StartupError
from regisseur.supervision.protocol import ChildStatus
from regisseur.supervision.spec import ChildSpec
from regisseur.supervision.supervisor import Supervisor, SupervisorActor

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors._cell import Cell
    from regisseur.actors.cluster.settings import ClusterSettings
    from regisseur.actors.database import Database
    from regisseur.actors.events import EventBus
    from regisseur.actors.system import ActorSystem
    from regisseur.messages import HealthReport

__all__ = [
    "BUS",
    "DATABASE",
    "JOURNAL",
    "KERNEL",
    "LEASE",
    "NODE_ACTOR",
    "ROOT",
    "DatabaseActor",
    "Guardian",
    "KernelActor",
    "is_kernel_child",
    "kernel_reports",
    "kernel_spec",
    "public_startup_error",
]

KERNEL = "regisseur.kernel"
ROOT = "root"
DATABASE = "regisseur.database"
LEASE = "regisseur.lease"
JOURNAL = "regisseur.journal"
NODE_ACTOR = "regisseur.node"  # cluster.node.NODE_ACTOR (that module loads in cluster mode only)

#: Restart intensity of the kernel: a database outage restarts the lease
#: about once per backoff maximum; only a tight loop exhausts this.
MAX_RESTARTS = 20
WITHIN = 60.0
#: Backoff of the infrastructure children (the lease caps it at a third of
#: its time to live, so a renewal is tried before the lease can expire).
BACKOFF = Backoff(initial=1.0, multiplier=2.0, maximum=15.0)
#: Backoff of the event bus: events wait while it restarts, so keep it short.
BUS_BACKOFF = Backoff(initial=0.1, multiplier=2.0, maximum=5.0)
_NO_LIMIT = 365 * 86400.0

#: The names users see for the kernel's children (health, ``StartupError``).
_PUBLIC = {
    BUS: "event bus",
    DATABASE: "database",
    LEASE: "single-instance guard",
    NODE_ACTOR: "cluster node",
    JOURNAL: "event journal",
}


class DatabaseActor(Actor):
    """Owns the system's engine: opened on start, disposed of on the final stop."""

    logger_name = "regisseur.actors.database"

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database

    def on_start(self) -> None:
        self.database.open()
        self.log.info("database_opened", url=self.database.url)

    def health(self) -> dict[str, Any]:
        """Whether a trivial query works now (runs on this actor's thread)."""
        return {"healthy": self.database.check(), "url": self.database.url}

    def on_incarnation_end(self, *, final: bool) -> None:
        if final:  # a restart keeps the engine (and its pool) for the next instance
            self.database.close()


class KernelActor(SupervisorActor):
    """The system supervisor: an ordinary supervisor, but for the user's root.

    The root's failure (its restart intensity exceeded) fails the system and
    its exit ends the system's work, as the root of a tree does; the system
    hears of both here. Runs on the kernel's thread.
    """

    def _cell_for(self, child: Any) -> Cell:
        cell = super()._cell_for(child)
        name = child.spec.name
        if name == ROOT:
            self.system._lifecycle.root = cell
        elif name == BUS:
            self.system.events.attach(cell)  # a new cell after an abandoned one too
        return cell

    def _rollback(self, started: list[str], failed: list[str]) -> tuple[str, ...]:
        # The bus stays up: the failed start's events still reach subscribers
        # (the system's stop ends it, after it delivered them).
        return super()._rollback([n for n in started if n != BUS], failed)

    def _stop_children(self, names: list[str], *, final: bool) -> None:
        """Stop ``names`` one by one; the bus drains first and stops only for good.

        A final stop (the system stops) lets the bus hand on what it holds
        before the journal stops and before the bus itself stops, so events
        published before the stop are delivered. A stop that is not final
        (an escalation, a failed start) leaves the bus running.
        """
        if not final:
            super()._stop_children([n for n in names if n != BUS], final=False)
            return
        lifecycle = self.system._lifecycle
        for name in names:
            if name in (JOURNAL, BUS):
                lifecycle.drain(self._running_cells(BUS, JOURNAL))
            child = self.tree.children.get(name)
            if name == BUS and child is not None:
                # Its ChildStopped could reach nobody: the bus is gone.
                self._teardown_child(child, final=True, reason="system stopped")
                child.status = ChildStatus.STOPPED
                continue
            super()._stop_children([name], final=True)

    def _running_cells(self, *names: str) -> list[Cell]:
        children = self.tree.children
        cells = [children[n].cell for n in names if n in children]
        return [c for c in cells if c is not None and not c.stopped.is_set()]

    def _on_failure_notice(self, notice: ChildFailure) -> None:
        if notice.cell is self.system._lifecycle.root:
            self.system._lifecycle.root_failed(notice.error)
            return
        super()._on_failure_notice(notice)

    def _on_exit(self, notice: ChildExited) -> None:
        if notice.cell is self.system._lifecycle.root:
            self.system._lifecycle.root_exited()
            return
        super()._on_exit(notice)


def _decide(exc: Exception) -> Directive | None:
    """Another live holder of the lease or node id: no restart will help."""
    from regisseur.actors.lease import InstanceHeldError  # a failure: loaded by then, or cheap

    if isinstance(exc, InstanceHeldError) or type(exc).__name__ == "NodeIdInUseError":
        return Directive.STOP
    return None


def kernel_spec(
    root: Supervisor,
    *,
    bus: EventBus,
    system_name: str,
    database: Database | None,
    lease_name: str | None,
    lease_ttl: float,
    cluster: ClusterSettings | None,
    node_args: Callable[[], tuple[Any, ...]],
) -> Supervisor:
    """The kernel's spec: the bus, the infrastructure for these options, then ``root``."""
    children = [ChildSpec(BUS, BusActor, args=(bus.kept,), backoff=BUS_BACKOFF)]
    children += _infrastructure(system_name, database, lease_name, lease_ttl, cluster, node_args)
    after = (children[-1].name,)
    # The root is bounded by its own children's start timeouts.
    children.append(ChildSpec(ROOT, root, depends_on=after, start_timeout=_NO_LIMIT))
    return Supervisor(children, max_restarts=MAX_RESTARTS, within=WITHIN, decider=_decide)


def _infrastructure(  # noqa: PLR0917 - kernel_spec's own keywords, passed on
    system_name: str,
    database: Database | None,
    lease_name: str | None,
    lease_ttl: float,
    cluster: ClusterSettings | None,
    node_args: Callable[[], tuple[Any, ...]],
) -> list[ChildSpec]:
    if database is None:
        return []
    after: tuple[str, ...] = (BUS,)
    children = [
        ChildSpec(DATABASE, DatabaseActor, args=(database,), depends_on=after, backoff=BACKOFF)
    ]
    after = (DATABASE,)
    if lease_name is not None:  # single_instance: only then is the lease module loaded
        from regisseur.actors.lease import InstanceLease, LeaseActor, make_holder_id

        lease = InstanceLease(database, lease_name, make_holder_id(system_name), lease_ttl)
        most = min(BACKOFF.maximum, lease_ttl / 3)
        backoff = Backoff(initial=min(BACKOFF.initial, most), multiplier=2.0, maximum=most)
        children.append(
            ChildSpec(LEASE, LeaseActor, args=(lease,), depends_on=after, backoff=backoff)
        )
        after = (LEASE,)
    if cluster is not None:
        from regisseur.actors.cluster.node import NODE_ACTOR as NODE
        from regisseur.actors.cluster.node import NodeActor

        assert NODE == NODE_ACTOR
        children.append(
            ChildSpec(NODE_ACTOR, NodeActor, args=node_args(), depends_on=after, backoff=BACKOFF)
        )
        after = (NODE_ACTOR,)
    children.append(ChildSpec(JOURNAL, JournalActor, depends_on=after, backoff=BACKOFF))
    return children


def public_startup_error(error: StartupError) -> StartupError:
    """``error`` naming a kernel child as users know it (``database``, ...)."""
    public = _PUBLIC.get(error.child, error.child)
    rolled = tuple(n for n in error.rolled_back if not is_kernel_child(n))
    renamed = StartupError(public, error.cause, rolled)
    cause = error.cause if isinstance(error.cause, BaseException) else error.__cause__
    renamed.__cause__ = cause
    return renamed


def is_kernel_child(name: str) -> bool:
    """True for the names of the kernel's own children (the root among them)."""
    return name in _PUBLIC or name == ROOT


def kernel_reports(
    reports: tuple[HealthReport, ...], node_id: str | None, nodes: Callable[[], Any]
) -> tuple[HealthReport, ...]:
    """The kernel children's reports under their public names.

    The cluster node's report is named ``cluster node <id>`` and lists the
    live nodes (``nodes()``; an error there makes it unhealthy).
    """
    out = []
    for report in reports:
        public = _PUBLIC.get(report.name, report.name)
        shown = report
        if report.name == NODE_ACTOR:
            public = f"cluster node {node_id}"
            shown = _with_nodes(report, nodes)
        out.append(_renamed(shown, public))
    return tuple(out)


def _with_nodes(report: HealthReport, nodes: Callable[[], Any]) -> HealthReport:
    details = dict(report.details) if isinstance(report.details, dict) else {}
    healthy = report.healthy
    try:
        details["nodes"] = [n.node_id for n in nodes()]
    except Exception as exc:  # noqa: BLE001 - the database may be down
        from regisseur.actors.errors import describe_error

        details["nodes"] = f"unavailable: {describe_error(exc)}"
        details["healthy"] = healthy = False
    return _replace(report, details=details, healthy=healthy)


def _renamed(report: HealthReport, name: str) -> HealthReport:
    return _replace(report, name=name)


def _replace(report: HealthReport, **changes: Any) -> HealthReport:
    import dataclasses

    return dataclasses.replace(report, **changes)


class Guardian:
    """Parent of the kernel (the system supervisor).

    Runs on the kernel's thread. The kernel's failure (its restart
    intensity exceeded) or end fails the system.
    """

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    def notify(self, notice: object) -> None:
        system = self._system
        if isinstance(notice, (ChildFailure, ChildExited)):
            cell = notice.cell
            if cell is system._lifecycle.kernel:
                # The kernel gave up (restart intensity): the system fails.
                error = notice.error if isinstance(notice, ChildFailure) else "kernel stopped"
                system._lifecycle.root_failed(f"system supervisor failed: {error}")
