"""``ActorSystem``: one embeddable, isolated runtime for supervised actors.

A system owns a clock, one timer thread, a registry of actor names and a
system supervisor, the kernel (``actors._kernel``), whose children are the
event bus, the database, the single-instance guard, the cluster node, the
event journal and, last, the user's root supervisor. Nothing is global: two
systems in one process share no state, no names and no threads.

This class is the facade; each job lives in a module of its own:
``_lifecycle`` (start/stop sequencing, state, settle), ``_registry`` (names
→ cells), ``_messaging`` (ref, tell, ask, dead letters), ``_children``
(spawn, stop/restart/count children), ``_resources``, ``_health``,
``_options``, ``_kernel`` (the kernel's specs), ``_cluster_link``.

Threads: the public methods may be called from any thread (usually the
application's). ``start()`` blocks until every child has started (or the
start failed and was rolled back); ``stop()`` blocks until every actor
thread of the system has ended (children that overrun their
``shutdown_timeout`` are reported and abandoned).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import pykka

from regisseur.actors import _children, _messaging
from regisseur.actors._cluster_link import ClusterLink
from regisseur.actors._health import system_health
from regisseur.actors._kernel import ROOT, is_kernel_child
from regisseur.actors._lifecycle import SystemLifecycle
from regisseur.actors._options import configure
from regisseur.actors._registry import Registry
from regisseur.actors._resources import Resources
from regisseur.actors._typed import proxy_actor_type
from regisseur.actors.clock import Clock, Timers, check_duration
from regisseur.actors.downloads.facade import Downloads, DownloadSettings
from regisseur.actors.events import EventBus
from regisseur.actors.log import get_logger
from regisseur.messages import HealthReport
from regisseur.messages.lifecycle import Lifecycle
from regisseur.supervision.directive import AutoShutdown, Strategy

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable
    from types import TracebackType

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from regisseur.actors._cell import Cell
    from regisseur.actors.cluster.facade import Cluster
    from regisseur.actors.cluster.settings import ClusterSettings
    from regisseur.actors.downloads.source import DownloadSource
    from regisseur.supervision.backoff import Backoff
    from regisseur.supervision.protocol import ChildCounts
    from regisseur.supervision.spec import ChildSpec

__all__ = ["ActorSystem"]

A = TypeVar("A", bound=pykka.Actor)
P = TypeVar("P", bound="pykka.ActorProxy[Any]")


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

    ``main_thread_signals=True`` starts every thread of the system with the
    signals sent to the whole process (SIGINT, SIGTERM, SIGHUP, ...)
    blocked, so that the kernel never hands one to them: the main thread
    takes it, and a main thread waiting in ``stop()``, an ``ask`` or a join
    wakes at once to run the handler. Off by default, since a process
    started from an actor's thread would inherit the blocked signals (see
    :mod:`regisseur.actors.signals`).
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
        main_thread_signals: bool = False,
    ) -> None:
        config = configure(
            name,
            children,
            clock=clock,
            database_url=database_url,
            single_instance=single_instance,
            lease_ttl=lease_ttl,
            download_sources=download_sources,
            downloads=downloads,
            cluster=cluster,
            node_id=node_id,
            backoff=backoff,
            main_thread_signals=main_thread_signals,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            auto_shutdown=auto_shutdown,
        )
        self.name = name
        self.clock: Clock = config.clock
        self.root_spec = config.root
        self.database = config.database
        self.lease_ttl = config.lease_ttl
        self.blocked_signals: frozenset[int] = config.blocked_signals
        """The signals every thread of the system blocks (``main_thread_signals``;
        see :mod:`regisseur.actors.signals`); empty by default."""
        self._resources = Resources(self.database)
        self.log = get_logger("regisseur.actors.system").bind(system=name)
        link = ClusterLink(self, config.cluster)
        self._lifecycle = SystemLifecycle(self, lease_name=config.lease_name, cluster=link)
        self.timers: Timers = self._lifecycle.timers
        """The system's timer thread (its clock's timers, backoff, ``schedule``)."""
        self._fork = self._lifecycle.fork
        self.registry = Registry(self._fork, self._lifecycle.activity.set, hidden=is_kernel_child)
        """The names of this system's actors (supervisors register their cells here)."""
        self.events = EventBus(self.check_not_forked)
        """The system's event bus (publish, subscribe, stream)."""
        self.cluster: Cluster | None = link.view()
        """This node's view of the cluster (``None`` unless in cluster mode)."""
        self.downloads = Downloads(self, config.downloads, config.sources)
        """Submit, watch, cancel and configure downloads (see ``Downloads``)."""

    # -- lifecycle (how: actors/_lifecycle.py) ----------------------------------
    def start(self) -> ActorSystem:
        """Start the event bus, timers and every child in dependency order.

        Raises ``StartupError`` (naming the child and the cause) if a child
        fails to start; everything already started is stopped first.
        """
        self._lifecycle.start()
        self.log.info("system_started", children=len(self.root_spec.children))
        return self

    def stop(self) -> None:
        """Stop every actor in reverse start order and end every thread.

        Idempotent. Children are each bounded by their ``shutdown_timeout``.
        In a process forked from the system's, there is nothing to stop: the
        system is only marked stopped.
        """
        if self._lifecycle.stop():
            self.log.info("system_stopped")

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
        return self._lifecycle.state is Lifecycle.RUNNING and self._fork.forked_from is None

    @property
    def state(self) -> Lifecycle:
        """Where the system is in its life: ``new``, ``starting``, ``running``,
        ``stopping`` (also once the root ended itself), ``stopped`` or ``failed``.

        A :class:`~regisseur.messages.lifecycle.Lifecycle` member, which
        compares equal to those strings."""
        return self._lifecycle.state

    def check_not_forked(self) -> None:
        """Raise ``SystemForkedError`` in a process forked from the system's (any thread)."""
        self._fork.check()

    # -- names and messages (how: actors/_registry.py, actors/_messaging.py) ------
    def names(self) -> list[str]:
        """Names of the actors currently registered (running or restarting)."""
        return self.registry.names(hidden=is_kernel_child)

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
        return _messaging.ref(self, name, actor_type)

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
        cell = self.registry.lookup(name, "tell(name)")
        if cell is None or not cell.mailbox.tell(message):  # closed: it stopped
            _messaging.dead_letter(self, name, message, "stopped")

    def ask(self, name: str, message: Any, *, timeout: float | None = 5.0) -> Any:
        """Send ``message`` to ``name`` and wait for the reply.

        Raises the handler's exception if it failed, ``WaitTimeoutError`` (a
        ``TimeoutError`` and a ``pykka.Timeout``, as ``ref.ask`` raises) after
        ``timeout`` real seconds (None waits forever), ``UnknownActorError``
        for an unknown name and ``ActorStoppedError`` for a stopped actor.
        """
        return _messaging.ask(self, name, message, timeout)

    def dead_letter(self, recipient: str, message: Any, reason: str) -> None:
        """Publish ``message`` as a ``DeadLetter`` and log a warning (any thread)."""
        _messaging.dead_letter(self, recipient, message, reason)

    # -- dynamic children (how: actors/_children.py) ------------------------------
    def spawn(self, spec: ChildSpec, *, supervisor: str | None = None) -> pykka.ActorRef[Any]:
        """Add ``spec`` as a child of the root (or of ``supervisor``) and start it.

        Returns its ref once ``on_start`` has returned. Raises ``ValueError``
        for a taken name or an unknown/stopped dependency, ``StartupError`` if
        it fails to start (nothing is left registered).
        """
        return _children.spawn(self, spec, supervisor)

    def stop_child(self, name: str) -> None:
        """Stop ``name`` for good and remove it from its supervisor.

        Also for a child that is already stopped or gave up (failed for
        good): it is removed, so a child of that name may be spawned again.
        Stopping a name already removed does nothing. Raises
        ``UnknownActorError`` for a name never known and ``ValueError``
        while running siblings depend on it.
        """
        _children.stop_child(self, name)

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
        return _children.restart_child(self, name)

    def count_children(self, supervisor: str | None = None) -> ChildCounts:
        """How many children the root (or ``supervisor``) has (OTP ``count_children``)."""
        return _children.count_children(self, supervisor)

    # -- testing and health ---------------------------------------------------------
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
        self._lifecycle.settle(timeout, except_thread=None)

    def threads(self) -> list[threading.Thread]:
        """Threads of this system that are still alive (for leak checks)."""
        found = [c.thread for c in self._lifecycle.cells() if c.thread is not None]
        return [t for t in found if t.is_alive()]

    def health(self) -> HealthReport:
        """A tree of immutable health reports, root first.

        The system's own actors come first (event bus, database,
        single-instance guard, cluster node, event journal), then the root's
        children. Each child's
        own ``health()`` is asked on its thread (bounded by one second; an
        actor or supervisor that does not answer is reported unhealthy).
        """
        forked = self._fork.error()
        if forked is not None:  # nothing runs here: see actors/_fork.py
            return HealthReport(
                name=ROOT, status=Lifecycle.FAILED, healthy=False, last_error=str(forked)
            )
        return system_health(self)

    @property
    def healthy(self) -> bool:
        """True when the system runs and every report in ``health()`` is healthy."""
        return self.health().healthy

    # -- resources (how: actors/_resources.py) -------------------------------------
    def resource(self, name: str) -> Any:
        """The value of the running resource stage ``name`` (see ``resource()``).

        Raises ``LookupError`` naming the running resources if it is not up.
        """
        return self._resources.get(name)

    def _session_for(self, cell: Cell) -> Session:
        return self._resources.session_for(cell)

    def _connection_for(self, cell: Cell) -> Connection:
        return self._resources.connection_for(cell)

    # -- asyncio (how: actors/aio.py) -----------------------------------------------
    async def ask_async(self, name: str, message: Any, *, timeout: float | None = 5.0) -> Any:
        """``ask()`` for coroutines: awaits the reply without blocking the loop.

        The reply wakes the loop (``call_soon_threadsafe``); no thread waits
        for it. Same errors as ``ask()``, ``TimeoutError`` included.
        Cancelling the awaiting task drops the reply; the actor still
        handles the message and carries on.
        """
        from regisseur.actors import aio  # only for programs that use asyncio

        return await aio.ask(self, name, message, timeout)

    async def __aenter__(self) -> ActorSystem:
        from regisseur.actors import aio

        return await aio.start(self)  # start() on a thread of its own, awaited

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from regisseur.actors import aio

        await aio.stop(self)

    def publish_sources(self) -> None:
        """Cluster mode: let the other nodes know this node's sources now (blocks)."""
        self._lifecycle.cluster.publish_sources()

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} {self._lifecycle.state}>"
