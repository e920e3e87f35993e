"""``ActorSystem``: one embeddable, isolated runtime for supervised actors.

A system owns a clock, one timer thread, an event bus, a registry of actor
names and a system supervisor, the kernel (``actors._kernel``), whose
children are the database, the single-instance guard, the cluster node, the
event journal and, last, the user's root supervisor. Nothing is global: two
systems in one process share no state, no names and no threads.

This class is the facade: the health tree lives in ``actors._health``, the
option checks in ``actors._options``, ``settle`` in ``actors._settle``, the
kernel's specs and the guardian in ``actors._kernel``, and the supervisors'
requests in ``supervision.protocol``.

Threads: the public methods may be called from any thread (usually the
application's). ``start()`` blocks until every child has started (or the
start failed and was rolled back); ``stop()`` blocks until every actor
thread of the system has ended (children that overrun their
``shutdown_timeout`` are reported and abandoned).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import pykka

from regisseur.actors import aio
from regisseur.actors._cell import Cell, CellState, Parent
from regisseur.actors._fork import ForkGuard
from regisseur.actors._health import system_health
from regisseur.actors._kernel import (
    JOURNAL,
    KERNEL,
    NODE_ACTOR,
    ROOT,
    Guardian,
    KernelActor,
    dispatch_cluster_note,
    is_kernel_child,
    kernel_spec,
    public_startup_error,
)
from regisseur.actors._options import (
    check_cluster,
    check_download_settings,
    check_sources,
    lease_name,
    root_tree,
)
from regisseur.actors._protocol import (
    Start,
    StartAttempt,
    Teardown,
)
from regisseur.actors._settle import Activity, settle_cells, wait_idle
from regisseur.actors._typed import check_actor_type, proxy_actor_type
from regisseur.actors.clock import Clock, RealClock, Timers, bounded_wait, check_duration
from regisseur.actors.cluster.settings import ClusterSettings, check_cluster_url
from regisseur.actors.database import Database
from regisseur.actors.downloads.facade import Downloads, DownloadSettings
from regisseur.actors.errors import (
    ActorStoppedError,
    UnknownActorError,
    WaitTimeoutError,
    describe_error,
)
from regisseur.actors.events import EventBus, _BusActor
from regisseur.actors.log import get_logger, redact_text, safe_repr
from regisseur.messages import DeadLetter, HealthReport, SystemFailed
from regisseur.supervision.backoff import Backoff
from regisseur.supervision.directive import AutoShutdown, Strategy
from regisseur.supervision.errors import StartupError
from regisseur.supervision.protocol import (
    ChildCounts,
    ChildInfo,
    Inspect,
    Outcome,
    RestartChild,
    Spawn,
    StopChild,
)
from regisseur.supervision.spec import ChildSpec, check_name
from regisseur.supervision.supervisor import Supervisor, cell_for_supervisor

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from regisseur.actors.cluster.facade import Cluster
    from regisseur.actors.downloads.source import DownloadSource

__all__ = ["ActorSystem"]

A = TypeVar("A", bound=pykka.Actor)
P = TypeVar("P", bound="pykka.ActorProxy[Any]")

_DRAIN_TIMEOUT = 1.0
_NODE_TIMEOUT = 10.0


class ActorSystem:
    """A running tree of supervised actors; a context manager.

    ``children`` are the root supervisor's ``ChildSpec``s; ``strategy``,
    ``max_restarts``, ``within``, ``backoff`` and ``auto_shutdown`` configure
    the root supervisor (when the root shuts itself down, the system's work
    is done: ``running`` turns false; ``stop()`` ends its threads).
    ``clock`` defaults to a real clock; pass a ``ManualClock`` in tests to
    drive every timer (ticks, backoff, delays) by hand.

    ``database_url`` names the SQLAlchemy database the system owns (the
    default is a SQLite file in the working directory; ``None`` runs without
    a database). ``single_instance=True`` (or a lease name) refuses to start
    while another live system holds the same database; ``lease_ttl`` is how
    long a crashed holder keeps it.
    """

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        clock: Clock | None = None,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff | None = None,
        database_url: str | None = "sqlite:///regisseur.db",
        single_instance: bool | str = False,
        lease_ttl: float = 30.0,
        name: str = "regisseur",
        download_sources: Iterable[DownloadSource] = (),
        downloads: DownloadSettings | None = None,
        cluster: bool | ClusterSettings = False,
        node_id: str | None = None,
    ) -> None:
        check_name(name, "ActorSystem name")
        if clock is not None and not isinstance(clock, Clock):
            msg = f"clock must be an actors.Clock (RealClock or ManualClock), got {clock!r}"
            raise TypeError(msg)
        self.name = name
        self.clock: Clock = clock if clock is not None else RealClock()
        settings = check_download_settings(downloads)
        sources = check_sources(download_sources)
        cluster_settings = check_cluster(cluster, node_id)
        if cluster_settings is not None:
            database_url = check_cluster_url(database_url)
        self.root_spec = root_tree(
            children,
            Supervisor,
            sources=sources,
            settings=settings,
            cluster=cluster_settings,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff if backoff is not None else Backoff(),
            auto_shutdown=auto_shutdown,
        )
        self.database = Database(database_url) if database_url is not None else None
        self._lease_name = lease_name(single_instance, name, has_database=self.database is not None)
        self.lease_ttl = check_duration(lease_ttl, "lease_ttl", allow_zero=False)
        self._cluster_settings = cluster_settings
        # The system supervisor of the infrastructure (see actors._kernel).
        self._kernel: Cell | None = None
        # How this node's own download notices start (the listener skips them).
        self._own_notice_prefix = ""
        self.cluster: Cluster | None = None
        """This node's view of the cluster (``None`` unless in cluster mode)."""
        if cluster_settings is not None:
            from regisseur.actors.cluster.facade import Cluster
            from regisseur.actors.downloads.cluster_store import change_notice_prefix

            self._own_notice_prefix = change_notice_prefix(cluster_settings.node_id)
        self._resources: dict[str, Any] = {}
        self.log = get_logger("regisseur.actors.system").bind(system=name)
        self._lock = threading.RLock()
        self._activity = Activity()
        self.timers = Timers(
            self.clock,
            name=f"{name}/timers",
            on_error=self._timer_failed,
            quiesce=self._quiesce,
            on_wait=self._activity.set,
        )
        self._cells: dict[str, Cell] = {}
        # Names no longer registered -> how to reach the supervisor that had
        # them (stop_child / restart_child of a stopped or failed child).
        self._gone: dict[str, Parent] = {}
        self._state = "new"
        self._failure: str | None = None
        self._guardian = Guardian(self)
        self._fork = ForkGuard(name, lambda: self._state in ("starting", "running", "stopping"))
        self._bus_cell = Cell(self, "regisseur.events", _BusActor, _BusActor, self._guardian)
        self.events = EventBus(self._bus_cell)
        self._root: Cell | None = None
        if cluster_settings is not None:
            self.cluster = Cluster(self, cluster_settings)
        self.downloads = Downloads(self, settings, sources)
        """Submit, watch, cancel and configure downloads (see ``Downloads``)."""

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> ActorSystem:
        """Start the event bus, timers and every child in dependency order.

        Raises ``StartupError`` (naming the child and the cause) if a child
        fails to start; everything already started is stopped first.
        """
        self._fork.check()
        with self._lock:
            if self._state != "new":
                msg = f"system {self.name!r} was already started (state: {self._state})"
                raise RuntimeError(msg)
            self._state = "starting"
        self._fork.arm()
        self.timers.start()
        self._start_cell(self._bus_cell)
        self._start_kernel()
        with self._lock:
            if self._state == "starting":
                self._state = "running"
        self.log.info("system_started", children=len(self.root_spec.children))
        return self

    def _start_kernel(self) -> None:
        """Start the system supervisor: infrastructure, then the root (rolled back on failure)."""
        spec = kernel_spec(
            self.root_spec,
            system_name=self.name,
            database=self.database,
            lease_name=self._lease_name,
            lease_ttl=self.lease_ttl,
            cluster=self._cluster_settings,
            node_args=lambda: (
                self._cluster_settings,
                self.downloads._local_sources,
                self._cluster_note,
            ),
        )
        self._kernel = cell_for_supervisor(self, KERNEL, spec, self._guardian, KernelActor)
        try:
            self._start_cell(self._kernel)
        except StartupError as exc:
            self._shutdown()
            public = public_startup_error(exc)
            raise public from public.__cause__
        except Exception as exc:
            self._shutdown()
            raise StartupError(KERNEL, exc) from exc

    def _publish_sources(self) -> None:
        """Cluster mode: let the other nodes know this node's sources now."""
        cell = self._find(NODE_ACTOR)
        if cell is not None:
            from regisseur.actors.cluster.node import PublishSources

            cell.ref.ask(PublishSources(), timeout=_NODE_TIMEOUT)

    def _cluster_note(self, channel: str, payload: str | None) -> None:
        """From the listener thread: pass a cluster notice on (tells only)."""
        dispatch_cluster_note(self, self._own_notice_prefix, channel, payload)

    def _start_cell(self, cell: Cell) -> None:
        cell.mailbox.on_sleep = self._activity.set
        attempt = StartAttempt()
        cell.ensure_thread()
        cell.control(Start(attempt))
        attempt.wait(None)  # bounded by every child's start_timeout
        if attempt.error is not None:
            raise attempt.error

    def stop(self) -> None:
        """Stop every actor in reverse start order and end every thread.

        Idempotent. Children are each bounded by their ``shutdown_timeout``.
        In a process forked from the system's, there is nothing to stop: the
        system is only marked stopped.
        """
        if self._fork.forked_from is not None:
            self._state = "stopped"
            self.log.warning("system_stopped_after_fork", parent_pid=self._fork.forked_from)
            return
        with self._lock:
            if self._state in ("stopped", "new"):
                self._state = "stopped"
                return
            self._state = "stopping"
        self._shutdown()
        self.log.info("system_stopped")

    def _shutdown(self) -> None:
        root = self._root
        if root is not None and root.state is not CellState.STOPPED:
            self._final_stop(root)
        if self._kernel is not None:
            journal = self._find(JOURNAL)
            if journal is not None:
                # Let the bus hand the shutdown's events to the journal first.
                self._wait_idle([self._bus_cell, journal], _DRAIN_TIMEOUT)
            self._final_stop(self._kernel)
        if self.database is not None:
            self.database.close()
        # A stop overtakes queued messages: deliver the last events first.
        self._wait_idle([self._bus_cell], _DRAIN_TIMEOUT)
        self._final_stop(self._bus_cell)
        self.timers.close()
        with self._lock:
            self._state = "stopped" if self._failure is None else "failed"

    def _final_stop(self, cell: Cell) -> None:
        """Stop one of the system's own cells for good and end its thread.

        Unbounded: a supervisor bounds each child by its ``shutdown_timeout``.
        """
        cell.terminate(final=True, reason="system stopped", timeout=None)
        cell.join()

    def __enter__(self) -> ActorSystem:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()`` or a root failure."""
        return self._state == "running" and self._fork.forked_from is None

    # -- registry ------------------------------------------------------------
    def _register(self, cell: Cell) -> None:
        cell.mailbox.on_sleep = self._activity.set
        with self._lock:
            current = self._cells.get(cell.name)
            if current is not None and current is not cell and not current.stopped.is_set():
                msg = f"an actor named {cell.name!r} is already running in this system"
                raise ValueError(msg)
            self._cells[cell.name] = cell
            self._gone.pop(cell.name, None)

    def _unregister(self, cell: Cell) -> None:
        with self._lock:
            if self._cells.get(cell.name) is cell:
                del self._cells[cell.name]
                self._gone[cell.name] = cell.parent

    def _check_free(self, spec: ChildSpec) -> None:
        names = [spec.name]
        if isinstance(spec.actor, Supervisor):
            names += spec.actor.names()
        with self._lock:
            taken = [n for n in names if n in self._cells]
        if taken:
            msg = f"actor name(s) already in use: {', '.join(map(repr, taken))}"
            raise ValueError(msg)

    def _lookup(self, name: str) -> Cell | None:
        """The cell named ``name``; None if it stopped; raises if never known."""
        if self._fork.forked_from is not None:
            self._fork.check()
        if type(name) is str:
            cell = self._cells.get(name)  # the hot path: a dict read is atomic
            if cell is not None:
                return cell
        check_name(name)
        with self._lock:
            cell = self._cells.get(name)
            if cell is None and name not in self._gone:
                raise UnknownActorError(name, list(self._cells))
        return cell

    def _find(self, name: str) -> Cell | None:
        """The live cell named ``name``, or None (never raises)."""
        cell = self._cells.get(name) if isinstance(name, str) else None
        if cell is None or cell.stopped.is_set():
            return None
        return cell

    def names(self) -> list[str]:
        """Names of the actors currently registered (running or restarting)."""
        with self._lock:
            return sorted(n for n in self._cells if not is_kernel_child(n))

    # -- messaging -----------------------------------------------------------
    @overload
    def ref(self, name: str) -> pykka.ActorRef[Any]: ...
    @overload
    def ref(self, name: str, actor_type: type[A]) -> pykka.ActorRef[A]: ...
    def ref(self, name: str, actor_type: type[A] | None = None) -> pykka.ActorRef[Any]:
        """The ``ActorRef`` of ``name``; it stays valid across restarts.

        ``system.ref("counter", Counter)`` is typed ``ActorRef[Counter]``
        (its ``proxy()`` an ``ActorProxy[Counter]``) and raises ``TypeError``
        unless ``name`` runs a ``Counter`` (or a subclass). Raises
        ``UnknownActorError`` for a name never registered and
        ``ActorStoppedError`` (a ``pykka.ActorDeadError``) for an actor that
        has stopped. Any thread.
        """
        cell = self._lookup(name)
        if cell is None or cell.stopped.is_set():
            msg = f"actor {name!r} is stopped"
            raise ActorStoppedError(msg)
        if actor_type is not None:
            check_actor_type(name, cell.actor_class, actor_type, "ref(actor_type)")
        return cell.ref

    def proxy(self, name: str, proxy_type: type[P]) -> P:
        """A Pykka proxy of ``name``, typed as ``proxy_type``.

        ``proxy_type`` declares the actor's typed members with Pykka's
        typing helpers::

            class CounterProxy(ActorMemberMixin, pykka.ActorProxy[Counter]):
                add = proxy_method(Counter.add)      # add(n) -> Future[int]
                total = proxy_field(Counter.total)   # Future[int]

        so ``system.proxy("counter", CounterProxy).add("x")`` is a type
        error. Raises ``TypeError`` unless ``name`` runs that actor class
        (the returned object is Pykka's proxy; ``proxy_type`` only types
        it), and the errors of :meth:`ref`. Any thread.
        """
        actor_type = proxy_actor_type(proxy_type)
        ref = self.ref(name, actor_type)
        return cast("P", ref.proxy())

    def tell(self, name: str, message: Any) -> None:
        """Send ``message`` to ``name`` without waiting (any thread).

        A stopped actor's messages become ``DeadLetter`` events; an unknown
        name raises ``UnknownActorError``.
        """
        cell = self._lookup(name)
        if cell is None or not cell.mailbox.tell(message):
            self.dead_letter(name, message, "stopped")

    def ask(self, name: str, message: Any, *, timeout: float | None = 5.0) -> Any:
        """Send ``message`` to ``name`` and wait for the reply.

        Raises the handler's exception if it failed, ``WaitTimeoutError`` (a
        ``TimeoutError`` and a ``pykka.Timeout``, as ``ref.ask`` raises) after
        ``timeout`` real seconds (None waits forever), ``UnknownActorError``
        for an unknown name and ``ActorStoppedError`` for a stopped actor.
        """
        if timeout is not None:
            timeout = check_duration(timeout, "ask(timeout)")
        cell = self._cell_to_ask(name, message)
        try:
            return cell.ref.ask(message, timeout=bounded_wait(timeout))
        except pykka.Timeout:
            msg = f"no reply from {name!r} within {timeout:g}s"
            raise WaitTimeoutError(msg) from None

    def _cell_to_ask(self, name: str, message: Any) -> Cell:
        """The live cell of ``name`` for an ask (sync or async), or the error.

        ``UnknownActorError`` for a name never registered; a stopped actor
        makes ``message`` a dead letter and raises ``ActorStoppedError``.
        """
        cell = self._lookup(name)
        if cell is None or cell.stopped.is_set():
            self.dead_letter(name, message, "stopped")
            msg = f"actor {name!r} is stopped"
            raise ActorStoppedError(msg)
        return cell

    def dead_letter(self, recipient: str, message: Any, reason: str) -> None:
        """Publish ``message`` as a ``DeadLetter`` and log a warning (any thread)."""
        self.log.warning(
            "dead_letter",
            recipient=recipient,
            message_type=type(message).__name__,
            # Redact the whole text first: a cut inside a secret would hide
            # it from the redaction. repr() of a hostile message may raise.
            message=redact_text(safe_repr(message))[:200],
            reason=reason,
        )
        if not self._bus_cell.mailbox.closed:
            self.events.publish(DeadLetter(recipient, message, reason))

    # -- dynamic children -----------------------------------------------------
    def _supervisor_cell(self, name: str | None) -> Cell:
        self._fork.check()
        if self._state != "running":
            msg = f"system {self.name!r} is not running (state: {self._state})"
            raise RuntimeError(msg)
        if name is None:
            assert self._root is not None
            return self._root
        cell = self._lookup(name)
        if cell is None or cell.stopped.is_set():
            msg = f"supervisor {name!r} is stopped"
            raise ActorStoppedError(msg)
        if not isinstance(cell.instance, _supervisor_actor_class()):
            msg = f"{name!r} is not a supervisor"
            raise TypeError(msg)
        return cell

    def spawn(self, spec: ChildSpec, *, supervisor: str | None = None) -> pykka.ActorRef[Any]:
        """Add ``spec`` as a child of the root (or of ``supervisor``) and start it.

        Returns its ref once ``on_start`` has returned. Raises ``ValueError``
        for a taken name or an unknown/stopped dependency, ``StartupError`` if
        it fails to start (nothing is left registered).
        """
        if not isinstance(spec, ChildSpec):
            msg = f"spawn() needs a ChildSpec, got {type(spec).__name__}"
            raise TypeError(msg)
        cell = self._supervisor_cell(supervisor)
        outcome: Outcome = cell.ref.ask(Spawn(spec), block=True)
        ref: pykka.ActorRef[Any] = outcome.unwrap()
        return ref

    def stop_child(self, name: str) -> None:
        """Stop ``name`` for good and remove it from its supervisor.

        Also for a child that is already stopped or gave up (failed for
        good): it is removed, so a child of that name may be spawned again.
        Stopping a name already removed does nothing. Raises
        ``UnknownActorError`` for a name never known and ``ValueError``
        while running siblings depend on it.
        """
        _refuse_kernel_child(name, "stop_child")
        supervisor = self._supervisor_of(name)
        try:
            outcome: Outcome = supervisor.ask(StopChild(name), block=True)
            outcome.unwrap()
        except (UnknownActorError, pykka.ActorDeadError):
            with self._lock:
                if name not in self._gone:
                    raise
            return  # already removed (or its supervisor is gone): nothing to stop

    def restart_child(self, name: str) -> pykka.ActorRef[Any]:
        """Start the stopped or failed child ``name`` again (OTP ``restart_child``).

        For a child that stopped (``ref.stop()``, or it stopped itself and
        is not restarted) or gave up; its spec stays with its supervisor
        until ``stop_child``. A fresh instance starts on a new cell: refs
        to the stopped one stay dead; the new ref is returned. Raises
        ``UnknownActorError`` for a name its supervisor does not have (never
        known, removed, or a dynamic child that stopped), ``ValueError``
        for a running child or a dependency that is not running, and
        ``StartupError`` if it fails to start (it stays failed).
        """
        if self._state != "running":
            msg = f"system {self.name!r} is not running (state: {self._state})"
            raise RuntimeError(msg)
        _refuse_kernel_child(name, "restart_child")
        supervisor = self._supervisor_of(name)
        outcome: Outcome = supervisor.ask(RestartChild(name), block=True)
        ref: pykka.ActorRef[Any] = outcome.unwrap()
        return ref

    def count_children(self, supervisor: str | None = None) -> ChildCounts:
        """How many children the root (or ``supervisor``) has (OTP ``count_children``)."""
        cell = self._supervisor_cell(supervisor)
        infos: list[ChildInfo] = cell.ref.ask(Inspect(), block=True)
        return ChildCounts.of(infos)

    def _supervisor_of(self, name: str) -> pykka.ActorRef[Any]:
        """The ref of the supervisor that has (or had) the child ``name``."""
        cell = self._lookup(name)
        with self._lock:
            parent = cell.parent if cell is not None else self._gone.get(name)
        ref = getattr(parent, "_ref", None)
        if ref is None:
            msg = f"{name!r} is not a supervised child"
            raise ValueError(msg)
        return ref  # type: ignore[no-any-return]

    # -- testing and health -------------------------------------------------
    def settle(self, timeout: float = 5.0) -> None:
        """Return once no actor has anything it can do right now.

        That is: every mailbox is empty or held (waiting for a restart timer),
        and no handler is running, except in a wait on the system clock
        (``sleep``, an injected hang, a download's retry wait). Raises
        ``WaitTimeoutError`` (a ``TimeoutError``) naming the busy actors if
        that does not happen within ``timeout`` real seconds. Use it after
        ``tell`` instead of sleeping (``ManualClock.advance`` settles by itself).
        """
        timeout = check_duration(timeout, "settle(timeout)")
        self._settle(timeout, except_thread=None)

    def _quiesce(self, timeout: float) -> None:
        """The clock's hook: settle, not waiting for the calling actor (if any)."""
        self._settle(timeout, except_thread=threading.current_thread())

    def _settle(self, timeout: float, except_thread: threading.Thread | None) -> None:
        settle_cells(self._all_cells, self.timers, self._activity, timeout, except_thread)

    def _wait_idle(self, cells: list[Cell], timeout: float) -> bool:
        """Wait (bounded) until ``cells`` have handled what they hold; True if so."""
        return wait_idle(cells, self._activity, timeout)

    def _all_cells(self) -> list[Cell]:
        with self._lock:
            cells = list(self._cells.values())
        extra = [self._bus_cell, self._kernel]
        return [c for c in extra if c is not None] + cells

    # -- database and resources ------------------------------------------------
    def _session_for(self, cell: Cell) -> Session:
        database = self._database_for(cell, "self.db")
        if cell.session is None:
            cell.session = database.session()
        return cell.session

    def _connection_for(self, cell: Cell) -> Connection:
        database = self._database_for(cell, "self.connection")
        if cell.connection is None:
            cell.connection = database.engine.connect()
        return cell.connection

    def _database_for(self, cell: Cell, what: str) -> Database:
        """The database, if ``cell``'s own thread may use it as ``what``."""
        if self.database is None:
            msg = f"actor {cell.name!r} used {what} but the system has no database_url"
            raise RuntimeError(msg)
        if cell.thread is not threading.current_thread():
            msg = f"{what} of {cell.name!r} may only be used on that actor's own thread"
            raise RuntimeError(msg)
        return self.database

    def resource(self, name: str) -> Any:
        """The value of the running resource stage ``name`` (see ``resource()``).

        Raises ``LookupError`` naming the running resources if it is not up.
        """
        with self._lock:
            if name in self._resources:
                return self._resources[name]
            known = ", ".join(sorted(self._resources)) or "none"
        msg = f"resource {name!r} is not running (running resources: {known})"
        raise LookupError(msg)

    def _publish_resource(self, name: str, value: Any) -> None:
        with self._lock:
            self._resources[name] = value

    def _withdraw_resource(self, name: str) -> None:
        with self._lock:
            self._resources.pop(name, None)

    def threads(self) -> list[threading.Thread]:
        """Threads of this system that are still alive (for leak checks)."""
        found = [c.thread for c in self._all_cells() if c.thread is not None]
        return [t for t in found if t.is_alive()]

    def health(self) -> HealthReport:
        """A tree of immutable health reports, root first.

        The system's own actors come first (database, single-instance guard,
        cluster node, event journal), then the root's children. Each child's
        own ``health()`` is asked on its thread (bounded by one second; an
        actor or supervisor that does not answer is reported unhealthy).
        """
        forked = self._fork.error()
        if forked is not None:  # nothing runs here: see actors/_fork.py
            return HealthReport(name=ROOT, status="failed", healthy=False, last_error=str(forked))
        return system_health(self)

    @property
    def healthy(self) -> bool:
        """True when the system runs and every report in ``health()`` is healthy."""
        return self.health().healthy

    # -- asyncio (how: actors/aio.py) --------------------------------------------
    async def ask_async(self, name: str, message: Any, *, timeout: float | None = 5.0) -> Any:
        """``ask()`` for coroutines: awaits the reply without blocking the loop.

        The reply wakes the loop (``call_soon_threadsafe``); no thread waits
        for it. Same errors as ``ask()``, ``TimeoutError`` included.
        Cancelling the awaiting task drops the reply; the actor still
        handles the message and carries on.
        """
        return await aio.ask(self, name, message, timeout)

    async def __aenter__(self) -> ActorSystem:
        return await aio.start(self)  # start() on a thread of its own, awaited

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await aio.stop(self)

    # -- failures of the system's own actors ------------------------------------
    def _root_failed(self, error: str) -> None:
        with self._lock:
            self._failure = error
            if self._state in ("running", "starting"):
                self._state = "failed"
        self.log.critical("system_failed", error=error)
        self.events.publish(SystemFailed(error))
        if self._root is not None:
            self._root.control(Teardown(final=True, reason="root supervisor failed"))

    def _root_exited(self) -> None:
        """The root supervisor ended itself (``auto_shutdown``, or ``ref.stop()``).

        The system's work is done: ``running`` turns false and ``health()``
        reports it stopped. ``stop()`` (or leaving the ``with`` block) still
        ends the system's own threads. Runs on the root's thread.
        """
        with self._lock:
            if self._state in ("running", "starting"):
                self._state = "stopping"
        self.log.info("system_work_done")
        if self._root is not None:
            self._root.control(Teardown(final=True, reason="root supervisor ended"))

    def _timer_failed(self, exc: BaseException) -> None:
        self.log.error("timer_callback_failed", error=describe_error(exc), exc_info=exc)

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} {self._state}>"


def _refuse_kernel_child(name: object, what: str) -> None:
    """The system's own actors are not the caller's to stop or restart."""
    if isinstance(name, str) and is_kernel_child(name):
        msg = f"{what}({name!r}): it is one of the system's own actors (stop the system instead)"
        raise ValueError(msg)


def _supervisor_actor_class() -> type:
    from regisseur.supervision.supervisor import SupervisorActor

    return SupervisorActor
