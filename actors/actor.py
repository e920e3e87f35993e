"""``Actor``: the supervised Pykka actor users subclass.

Write an actor as with Pykka: subclass, take your own constructor arguments
(from ``ChildSpec.args``/``kwargs``), call ``super().__init__()`` with none,
and override ``on_start``, ``on_stop``, ``on_receive`` and optionally
``health``. Start it by naming it in a ``ChildSpec`` given to an
``ActorSystem`` (or ``system.spawn``), not with ``MyActor.start()``.

Threads: ``__init__``, the hooks and every handler run on the actor's own
thread, one message at a time. ``tell``/``ask``/proxies may be used from
anywhere.

Failures: an exception escaping ``on_start``, ``on_receive`` or a proxy call
drops the message (published as a ``DeadLetter``; an ``ask`` caller gets the
exception), holds the mailbox and asks the supervisor, which resumes,
restarts (a *new instance* built from the spec, ``on_start`` again, same
``ActorRef``), stops or escalates. ``on_stop`` runs before a restart and on
a stop; it is not run for an incarnation whose ``on_start`` failed.

For subclasses (protected API): :attr:`Actor.kept_state` survives restarts,
:meth:`Actor.on_mailbox_drained` runs when a burst of messages is done
(group commit), :meth:`Actor.on_incarnation_end` after every teardown
(``final`` when no restart follows), :attr:`Actor.actor_incarnation`
tells incarnations apart, and :meth:`Actor.wake_on_stop` lets blocking
code notice a stop request.
These are the whole contract between an actor and its runtime cell:
subclasses never touch ``self._cell``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from regisseur.actors._cell import current_cell
from regisseur.actors._future import LoopFuture
from regisseur.actors.log import get_logger
from regisseur.actors.mailbox import Mailbox

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from regisseur.actors._cell import Cell, Waker
    from regisseur.actors._pykka import ActorInbox
    from regisseur.actors.clock import TimerHandle
    from regisseur.actors.log import Logger
    from regisseur.actors.system import ActorSystem

__all__ = ["Actor"]


class _WakeOnStop:
    """The context of :meth:`Actor.wake_on_stop` (a class: a download worker
    enters one per download, and a generator-based one costs twice as much)."""

    __slots__ = ("_cell", "_waker")

    def __init__(self, cell: Cell, waker: Waker) -> None:
        self._cell = cell
        self._waker = waker

    def __enter__(self) -> None:
        self._cell.add_waker(self._waker)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._cell.discard_waker(self._waker)


class Actor(pykka.ThreadingActor):
    """A supervised Pykka actor; see the module docstring for the contract."""

    use_daemon_thread: ClassVar[bool] = True

    name: str
    """The actor's name in its system (from its ``ChildSpec``)."""
    system: ActorSystem
    """The system this actor runs in."""
    log: Logger
    """A logger bound to this actor's name (``self.log.info("event", k=v)``).

    Its stdlib logger is :attr:`logger_name`, else the module of the actor's
    class: your actors log under your package, the library's under
    ``regisseur.*``, so silencing one does not silence the other.
    """
    logger_name: ClassVar[str | None] = None
    """Set in a subclass to log under this name instead of the class's module."""
    stops_with_peers: ClassVar[bool] = False
    """Set in a subclass whose stop hooks may run at the same time as those of
    its siblings in the same start level (interchangeable workers): its
    supervisor then asks them to stop together and awaits them together, so
    N of them that overrun their ``shutdown_timeout`` cost one bound, not N
    in a row. Leave it False where the order of the stops matters."""
    _drains_mailbox: ClassVar[bool] = False  # overrides on_mailbox_drained (else no call)
    _pykka_init_only: ClassVar[bool] = True  # nothing but Pykka's __init__ follows ours

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._drains_mailbox = cls.on_mailbox_drained is not Actor.on_mailbox_drained
        cls._pykka_init_only = _next_init(cls) is pykka.Actor.__init__

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        cell = current_cell()
        if cell is None:
            msg = (
                f"{type(self).__name__} is a regisseur actor: start it through a system, "
                f"e.g. ActorSystem([ChildSpec('name', {type(self).__name__})]) or "
                f"system.spawn(ChildSpec(...)), not with {type(self).__name__}.start()"
            )
            raise TypeError(msg)
        if not self._pykka_init_only:
            # A mixin's __init__ sits between ours and Pykka's: run the chain.
            super().__init__()
        # Else Pykka's __init__ is skipped: it only builds a urn, a mailbox, a
        # stop event and a ref, and the cell provides all four (each restart
        # would otherwise build and drop them).
        self._cell: Cell = cell
        self.actor_urn = cell.urn
        self.actor_inbox = cell.mailbox
        self.actor_stopped = cell.stopped
        self._actor_ref = cell.ref
        self.name = cell.name
        self.system = cell.system
        self.log = _actor_logger(type(self), cell.name)
        self._incarnation = cell.generation
        cell.newest = self  # proxies made from here on (even in __init__) reach it

    # -- Pykka runtime extension points ------------------------------------
    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        # Awaitable without blocking the event loop, and timing out with the
        # library's WaitTimeoutError (see actors/_future.py).
        return LoopFuture()

    def _start_actor_loop(self) -> None:  # pragma: no cover - guarded in __init__
        msg = "regisseur actors are started by their supervisor"
        raise TypeError(msg)

    # -- hooks (override) ----------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        """Handle a plain message. The default publishes it as a dead letter."""
        self.system.dead_letter(self.name, message, "unhandled")

    def health(self) -> bool | Mapping[str, Any]:
        """Report health: a bool, or details with an optional ``"healthy"`` key.

        Checked after ``on_start`` (an unhealthy start fails it) and for
        ``system.health()``. Runs on the actor's thread. Default: healthy.
        """
        return True

    def busy_health(self) -> Mapping[str, Any] | None:
        """Health while the actor is in the middle of a message, or None.

        ``system.health()`` asks ``health()`` through the mailbox, so an actor
        busy in a long handler (a download worker in a download) would be
        reported unresponsive. An actor for which being busy is normal
        returns its details here instead; they are used without waiting.
        Runs on the thread that asked for the health: read plain attributes
        only, change nothing. Default: None (ask through the mailbox).
        """
        return None

    def decide(self, exc: Exception) -> Any:
        """Choose the supervisor directive for ``exc``; None defers to the supervisor.

        Runs on the actor's thread right after the failure. Return a
        ``supervision.Directive`` (or ``Directive.restart_after(seconds)``).
        """
        return None

    def on_mailbox_drained(self) -> None:
        """Hook: a burst of messages is done and none is waiting. Default: nothing.

        Called on the actor's thread after it handled one or more messages
        and its mailbox has nothing more it could deliver, before the thread
        waits for the next message: once per burst, however many messages
        the burst had (one after each message when they arrive one by one).
        Replies to the burst's asks were already sent. The place for group
        commit: stage writes in ``on_receive``, commit them all here. It is
        not called after a start with nothing handled yet, nor while the
        actor waits for its supervisor after a failure (it is called once
        the mailbox runs dry again after a resume), nor for the messages an
        earlier incarnation handled. A stop or a restart overtakes the burst:
        the hook is not called then, so commit what is still staged in
        ``on_stop`` too (the download keeper does both).

        Failures: an exception is handled like one from ``on_receive`` (a
        dead letter ``"<mailbox drained>"``, then the supervisor decides).
        """

    def on_incarnation_end(self, *, final: bool) -> None:
        """Hook: this instance is being torn down, after ``on_stop``. Default: nothing.

        Called on the actor's thread for every instance whose ``__init__``
        returned, also when ``on_stop`` is not run (its ``on_start`` failed,
        or a rollback without stop hooks) or raised; not when the thread
        was killed. ``final`` is true when this teardown is the actor's stop
        for good: no restart follows and :attr:`kept_state` is dropped, so
        this is where to give up what was kept across restarts (a lock, a
        connection). It is false for a restart, and for an instance whose
        ``on_start`` failed (torn down before its supervisor decides; if
        the supervisor then gives up, no instance is left to call).

        Failures: an exception is logged (``on_stop_failed``); the teardown
        goes on.
        """

    # -- protected API for subclasses (the actor's own thread) -------------
    @property
    def kept_state(self) -> dict[str, Any]:
        """A dict that every incarnation of this actor shares: it survives restarts.

        The instance built by a restart gets the very dict its predecessor
        filled (use ``setdefault`` in ``__init__`` to share a value with the
        next incarnation). It is dropped when the actor stops for good; a
        child started again after that (``restart_child``, ``spawn``) starts
        with an empty one, as does one whose supervisor had to abandon it
        (a teardown past its shutdown timeout). Belongs to this actor's
        thread: read and change it only there (it is not locked).
        """
        return self._cell.store

    @property
    def actor_incarnation(self) -> int:
        """Which incarnation this instance is: 1 for the first, then one more per start.

        Every start of a new instance in this actor's cell takes the next
        number (a restart, also one whose ``on_start`` failed, or a start
        after a teardown), so a message stamped with it (a timer's tick)
        can be recognised as one meant for an earlier incarnation. Fixed
        for the life of the instance; safe to read from any thread.
        """
        return self._incarnation

    def wake_on_stop(self, waker: Waker) -> _WakeOnStop:
        """While inside, call ``waker.set()`` when this actor is asked to stop or killed.

        For code that blocks in a handler for long (a download, a socket
        read) and has its own way to be interrupted (a cancel token, an
        ``Event``): the supervisor's stop, a restart's teardown and an
        injected kill then reach it. If a stop was already requested,
        ``set()`` is called at once, on this thread. Otherwise it is
        called on the thread that asks for the stop (a supervisor's, or any
        caller of ``stop_child``): it must be quick, must not block and must
        not raise (an exception would reach that caller). Leaving the block
        forgets the waker.
        """
        return _WakeOnStop(self._cell, waker)

    # -- helpers for the actor's own thread -------------------------------
    def schedule(self, delay: float, message: Any) -> TimerHandle:
        """Send ``message`` to this actor after ``delay`` seconds (system clock).

        Returns a handle with ``cancel()``. Pending timers are cancelled when
        the actor stops or restarts.
        """
        return self._cell.schedule(delay, message)

    def schedule_every(self, interval: float, message: Any) -> TimerHandle:
        """Send ``message`` to this actor every ``interval`` seconds (fixed rate)."""
        return self._cell.schedule(interval, message, every=True)

    @property
    def stopping(self) -> bool:
        """True once a stop (or restart teardown) of this actor was requested."""
        return self._cell.stop_requested.is_set()

    def mailbox_waiting(self) -> bool:
        """True if the actor should go back to its mailbox before more work of its own.

        For a handler that loops over work it finds by itself (a download
        worker taking run after run from its board): a message waits (a
        stop, an ask, a timer); the testing kit planned a fault for this
        actor's next message, which must fire where it would have without
        the loop; or the actor was restarted (or resumed) and this is its
        first handler since: its supervisor counts the failures in a row
        until a handler returns, so the first success must return to end
        that count (backoff and ``max_failures`` depend on it). Any thread
        may call it; the answer is a snapshot.
        """
        cell = self._cell
        if not cell.mailbox.empty() or cell.awaits_success:
            return True
        return cell.faults is not None and cell.faults.pending() > 0

    def sleep(self, seconds: float) -> bool:
        """Sleep on the system clock; returns False early if a stop is requested.

        Prefer ``schedule`` in handlers: a sleeping actor handles no message.
        """
        return self._cell.sleep(seconds)

    @property
    def db(self) -> Session:
        """A SQLAlchemy ``Session`` owned by this actor's thread.

        Opened lazily on first use, rolled back when a handler fails, closed
        when the actor stops or restarts. Raises ``RuntimeError`` if used from
        another thread or when the system has no database.
        """
        return self.system._session_for(self._cell)

    @property
    def connection(self) -> Connection:
        """A SQLAlchemy Core ``Connection`` owned by this actor's thread.

        For actors that write often with Core statements: a commit costs
        about half the CPU of one through ``db`` (no ORM unit of work, no
        pool checkout per transaction). Same life as ``db``: opened lazily,
        rolled back when a handler fails, closed when the actor stops or
        restarts (after ``on_stop``, which may still use it). Same errors.
        """
        return self.system._connection_for(self._cell)

    def resource(self, name: str) -> Any:
        """The value of the running resource stage ``name`` (see ``resource()``)."""
        return self.system.resource(name)

    @property
    def restarts(self) -> int:
        """How many times this actor has been restarted so far."""
        return self._cell.restarts

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last message handled successfully after a restart."""
        return self._cell.failures

    # -- runtime ---------------------------------------------------------
    def _after_start(self) -> None:
        """Runtime hook: called on the actor's thread once the start counted."""

    def _after_resume(self) -> None:
        """Runtime hook: called on the actor's thread when a RESUME directive
        keeps this instance after a failure (whatever the failure interrupted:
        an actor with a schedule plans its next step here)."""

    def _failure_limit(self) -> int | None:
        """Runtime hook: the actor's own max_failures (None: the spec's)."""
        return None

    def _end_incarnation(self, *, run_hooks: bool, final: bool) -> None:
        """Called by the runtime on the actor's thread when it is torn down."""
        try:
            if run_hooks:
                self.on_stop()
        finally:
            self.on_incarnation_end(final=final)

    def __str__(self) -> str:
        return f"{type(self).__name__} {getattr(self, 'name', '?')!r}"


def _actor_logger(actor_class: type[Actor], name: str) -> Logger:
    """The logger of one actor: ``logger_name`` or the class's module, bound to ``name``."""
    logger_name = actor_class.logger_name
    if logger_name is not None and (not isinstance(logger_name, str) or not logger_name):
        msg = f"{actor_class.__name__}.logger_name must be a non-empty str, got {logger_name!r}"
        raise TypeError(msg)
    return get_logger(logger_name or actor_class.__module__, actor=name)


def _next_init(cls: type) -> object:
    """The ``__init__`` that ``super().__init__()`` in ``Actor.__init__`` reaches for *cls*."""
    mro = cls.__mro__
    for klass in mro[mro.index(Actor) + 1 :]:
        if "__init__" in vars(klass):
            return vars(klass)["__init__"]
    return object.__init__
