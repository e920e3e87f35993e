"""The cell: what stays the same while an actor is restarted.

A cell owns one actor's name, mailbox, ``ActorRef`` and thread. Incarnations
of the user's ``Actor`` class come and go inside it: a restart tears the old
instance down and builds a new one *on the same thread, with the same
mailbox*, so the ``ActorRef`` and the name stay valid and queued messages
are kept, in order. If the thread itself dies (a killed thread), the
supervisor starts a fresh thread on the same cell.

Threads: :meth:`Cell._main` runs on the actor's own thread; everything else
may be called from the supervisor's thread or any other.
"""

from __future__ import annotations

import itertools
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import pykka
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr

from regisseur.actors._protocol import (
    ChildExited,
    ChildFailure,
    ChildRecovered,
    Kill,
    ResumeMailbox,
    Start,
    Teardown,
)
from regisseur.actors._proxy import CellProxy
from regisseur.actors._pykka import ActorStop as _ActorStop
from regisseur.actors._pykka import Envelope, get_attr_directly
from regisseur.actors.clock import TimerHandle, check_duration
from regisseur.actors.errors import ActorStoppedError, RegisseurError, describe_error
from regisseur.actors.log import get_logger
from regisseur.actors.mailbox import ControlMessage, Mailbox
from regisseur.actors.signals import signals_blocked
from regisseur.messages import ChildStopTimedOut
from regisseur.messages.lifecycle import Lifecycle

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from regisseur.actors._faults import CellFaults
    from regisseur.actors.actor import Actor
    from regisseur.actors.system import ActorSystem

__all__ = ["Cell", "CellState", "Parent", "current_cell"]

_log = get_logger("regisseur.actors.runtime")
_DYING_JOIN = 1.0  # seconds to wait for a killed thread to end before replacing it
_thread_ids = itertools.count(1)
_local = threading.local()


class Parent(Protocol):
    """Whoever supervises a cell: receives its notices (any thread)."""

    def notify(self, notice: object) -> None: ...


class Waker(Protocol):
    """Anything woken by a stop request or a kill (an ``Event`` is one)."""

    def set(self) -> None: ...


#: A cell's lifecycle: the shared enum (states: ``messages.lifecycle.CELL_STATES``).
CellState = Lifecycle


class _Killed(BaseException):
    """Raised on an actor's thread to end it without running any hook."""


def current_cell() -> Cell | None:
    """The cell whose actor is being built or run on this thread, if any."""
    cell: Cell | None = getattr(_local, "cell", None)
    return cell


class Ref(pykka.ActorRef[Any]):
    """A Pykka ``ActorRef`` bound to a cell rather than to one instance.

    ``tell``, ``ask``, ``stop`` and ``proxy()`` work as in Pykka and keep
    working across restarts.
    """

    def __init__(self, cell: Cell) -> None:  # no super(): there is no instance yet
        self._cell = cell
        self.actor_class = cell.actor_class
        self.actor_urn = cell.urn
        self.actor_inbox = cell.mailbox
        self.actor_stopped = cell.stopped
        self._actor_weakref = cell.current_instance  # type: ignore[assignment]
        self.current_instance: Callable[[], Actor | None] = cell.current_instance
        """The incarnation proxies talk to (the newest while one is built); any thread."""
        self._tell = cell.mailbox.tell

    def tell(self, message: Any) -> None:
        """As Pykka's ``tell``: queued, or ``ActorStoppedError`` once the actor stopped."""
        if not self._tell(message):  # closed: it stopped for good
            msg = f"{self} is stopped"
            raise ActorStoppedError(msg)

    @overload
    def ask(
        self, message: Any, *, block: Literal[False], timeout: float | None = None
    ) -> pykka.Future[Any]: ...

    @overload
    def ask(self, message: Any, *, block: Literal[True], timeout: float | None = None) -> Any: ...

    @overload
    def ask(
        self, message: Any, *, block: bool = True, timeout: float | None = None
    ) -> Any | pykka.Future[Any]: ...

    def ask(
        self, message: Any, *, block: bool = True, timeout: float | None = None
    ) -> Any | pykka.Future[Any]:
        """As Pykka's ``ask``; a stopped actor answers ``ActorStoppedError``."""
        future: pykka.Future[Any] = self.actor_class._create_future()
        if self.actor_stopped.is_set():
            error = ActorStoppedError(f"{self} is stopped")
            future.set_exception((type(error), error, None))
        else:
            self.actor_inbox.put(Envelope(message, reply_to=future))
        if block:
            return future.get(timeout=timeout)
        return future

    def proxy(self) -> CellProxy:
        """A Pykka proxy that keeps reaching the live instance across restarts."""
        if self.actor_stopped.is_set():
            msg = f"{self} is stopped"
            raise ActorStoppedError(msg)
        return CellProxy(actor_ref=self)

    @property
    def name(self) -> str:
        """The actor's name in its system."""
        return self._cell.name

    def __str__(self) -> str:
        return f"{self.actor_class.__name__} {self._cell.name!r} ({self.actor_urn})"


class Cell:
    """Runtime of one named actor; see the module docstring."""

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        actor_class: type[Actor],
        factory: Callable[[], Actor],
        parent: Parent,
    ) -> None:
        self.system = system
        self.name = name
        self.actor_class = actor_class
        self.factory = factory
        self.parent = parent
        self.urn = uuid.uuid4().urn
        self.mailbox = Mailbox()
        self.stopped = threading.Event()  # set only when stopped for good
        self.stop_requested = threading.Event()
        self.ref = Ref(self)
        self.instance: Actor | None = None
        self.newest: Actor | None = None  # the incarnation built last (see current_instance)
        self.state = CellState.NEW
        self.generation = 0
        self.thread: threading.Thread | None = None
        self.faults: CellFaults | None = None
        self.abandoned = False
        self._started = False  # on_start of the current instance returned
        self._watch_success = False
        self._timers: set[TimerHandle] = set()
        self._waiters: set[Waker] = set()
        self._killed = False
        self._ended = False  # the thread died (or is dying): it takes no more messages
        self.log = _log.bind(actor=name)
        self.on_close: Callable[[], None] | None = None
        self.store: dict[str, Any] = {}  # survives restarts; actor thread only
        self.failures = 0  # consecutive failures, kept by the supervisor
        self.restarts = 0  # restarts so far, kept by the supervisor
        self.session: Session | None = None  # self.db
        self.connection: Connection | None = None  # self.connection

    # -- any thread --------------------------------------------------------
    def current_instance(self) -> Actor | None:
        """The incarnation proxies talk to (any thread).

        The live one; while one is being built (its ``__init__`` may make a
        proxy to itself) or restarted, the newest one; None once stopped.
        """
        instance = self.instance
        return instance if instance is not None else self.newest

    def ensure_thread(self) -> None:
        """Start the cell's thread unless a live one will take its messages.

        A thread that was killed (or died) is on its way out: wait briefly
        for it to end, then start a fresh one. Any thread, also the dying
        thread itself (a live thread that is its own caller and has not
        ended keeps the messages).
        """
        thread = self.thread
        if thread is not None and thread.is_alive():
            if thread is threading.current_thread():
                if not self._ended:
                    return
            elif self._killed or self._ended:
                thread.join(_DYING_JOIN)
                if thread.is_alive():  # still in the user's code; its death answers
                    return  # what is queued by then (see _answer_commands)
            else:
                return
        self._killed = False
        self._ended = False
        thread = threading.Thread(
            target=self._main,
            name=f"regisseur:{self.system.name}/{self.name}#{next(_thread_ids)}",
            daemon=True,
        )
        self.thread = thread
        with signals_blocked(self.system.blocked_signals):  # inherited: see actors.signals
            thread.start()

    def control(self, message: ControlMessage) -> None:
        """Queue a control message; it overtakes user messages.

        If the thread died, it takes no more messages: a ``Start`` gets a
        fresh thread, and for anything else the dying thread is awaited
        (briefly), so a caller that next checks ``thread.is_alive()`` does
        not wait for it to answer.
        """
        self.mailbox.put(Envelope(message))
        if self._ended and not isinstance(message, Kill):
            if isinstance(message, Start):
                self.ensure_thread()
            elif (thread := self.thread) is not None and thread is not threading.current_thread():
                thread.join(_DYING_JOIN)

    def request_stop(self) -> None:
        """Make ``stopping`` true and wake ``sleep()`` and injected hangs."""
        self.stop_requested.set()
        self._wake_waiters()

    def terminate(
        self, *, final: bool, reason: str, timeout: float | None, hooks: bool = True
    ) -> bool:
        """The one stop protocol; True if the incarnation ended within ``timeout``.

        Every terminate path (a supervisor stopping, restarting or rolling
        back a child, a supervisor's cell closing, the system stopping) comes
        here: 1. a stop request (``stopping`` turns true, ``sleep()`` and
        injected hangs wake up); 2. a ``Teardown`` command, which overtakes
        queued messages (``final``: the thread ends and the cell closes); 3. a
        wait bounded by ``timeout`` real seconds (None: unbounded); 4. past
        it, the cell is *abandoned*: nobody uses it again, its thread ends as
        soon as the blocked code returns, and the overrun is reported
        (``ChildStopTimedOut`` event and an error log line). A cell whose
        thread is gone is closed at once (``final``). Any thread but the
        cell's own.
        """
        command = self.begin_terminate(final=final, reason=reason, hooks=hooks)
        if command is None:
            return True
        return self.finish_terminate(command, timeout)

    def begin_terminate(self, *, final: bool, reason: str, hooks: bool = True) -> Teardown | None:
        """Steps 1 and 2 of :meth:`terminate`: the command to await, or None if done.

        Lets a caller ask several cells first and await them after, so that
        stopping N of them costs about one round trip (the supervisor does
        so for children without stop hooks). Any thread but the cell's own.
        """
        if self.state is CellState.STOPPED:
            return None
        self.request_stop()
        command = Teardown(final=final, hooks=hooks, reason=reason)
        self.control(command)
        thread = self.thread
        if thread is None or not thread.is_alive():
            if final and not self.stopped.is_set():
                self._close(reason)
            return None
        return command

    def finish_terminate(
        self, command: Teardown, timeout: float | None, *, limit: float | None = None
    ) -> bool:
        """Steps 3 and 4 of :meth:`terminate` for a command of :meth:`begin_terminate`.

        ``timeout``: the real seconds left to wait; ``limit``: the shutdown
        timeout to report on an overrun (``timeout`` when not given).
        """
        if command.done.wait(timeout):
            if command.final:
                # Its thread sets ``done`` as its last act: once that thread
                # has ended too, a stopped system leaves no thread behind.
                self._join_final()
            return True
        self.abandoned = True
        if not command.final:
            # Once the blocked code returns, its thread ends instead of
            # waiting forever for a start that will never come.
            self.control(Teardown(final=True, hooks=False, reason="abandoned"))
        reported = limit if limit is not None else (timeout if timeout is not None else 0.0)
        self.system.events.publish(ChildStopTimedOut(self.name, reported))
        self.log.error("child_stop_timed_out", child=self.name, timeout=reported)
        return False

    def _join_final(self) -> None:
        """Wait (bounded) for the thread that did a final teardown to end."""
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_DYING_JOIN)

    def kill(self) -> None:
        """End the thread without hooks, as if it had been killed."""
        self._killed = True
        self.control(Kill())
        self._wake_waiters()

    @property
    def awaits_success(self) -> bool:
        """True while a restarted or resumed actor has not yet handled a message
        successfully (its supervisor resets its failure count when one returns)."""
        return self._watch_success

    def add_waker(self, waker: Waker) -> None:
        """Have ``waker.set()`` called on the next stop request or kill (any thread)."""
        self._waiters.add(waker)
        if self.stop_requested.is_set() or self._killed:
            waker.set()

    def discard_waker(self, waker: Waker) -> None:
        """Undo :meth:`add_waker`."""
        self._waiters.discard(waker)

    def _wake_waiters(self) -> None:
        for waiter in list(self._waiters):
            waiter.set()

    def idle(self) -> bool:
        """True when the actor has nothing it can do right now."""
        if self.abandoned or self.state is CellState.STOPPED:
            return True
        thread = self.thread
        if thread is None or not thread.is_alive():
            return not self.mailbox.runnable() or self.state is CellState.DEAD
        return self.mailbox.idle()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it did."""
        thread = self.thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- timers and sleeping (the actor's thread) ---------------------------
    def schedule(self, delay: float, message: Any, *, every: bool = False) -> TimerHandle:
        """Tell ``message`` to this actor later; cancelled on stop/restart."""
        timers = self.system.timers
        generation = self.generation
        mailbox = self.mailbox
        handles = self._timers
        holder: list[TimerHandle] = []

        def fire() -> None:
            if not every and holder:
                handles.discard(holder[0])
            if self.generation == generation and not mailbox.closed:
                mailbox.put(Envelope(message))

        handle = timers.call_every(delay, fire) if every else timers.call_later(delay, fire)
        holder.append(handle)
        handles.add(handle)
        return handle

    def sleep(self, seconds: float) -> bool:
        """Sleep on the system clock; False if woken early by a stop request."""
        seconds = check_duration(seconds, "sleep(seconds)")
        if self.stop_requested.is_set() or self._killed:
            return False
        waiter = self.system.timers.waiter(seconds)  # settle counts it as idle
        self._waiters.add(waiter)
        try:
            if not (self.stop_requested.is_set() or self._killed):
                waiter.wait()
        finally:
            waiter.cancel()
            self._waiters.discard(waiter)
        if self._killed:
            raise _Killed
        return not self.stop_requested.is_set()

    # -- the actor's thread -------------------------------------------------
    def _main(self) -> None:
        _local.cell = self
        try:
            self._loop()
        except _Killed as exc:
            self._died(_death_text(exc))
        except BaseException as exc:
            self.log.critical("actor_thread_died", error=describe_error(exc), exc_info=exc)
            self._died(_death_text(exc))
        finally:
            _local.cell = None

    def _loop(self) -> None:
        mailbox = self.mailbox
        get = mailbox.get
        control, user = mailbox.lanes()
        take = user.popleft
        control_types = (ControlMessage, _ActorStop)
        drained_by: Actor | None = None  # handled a burst still owed on_mailbox_drained
        while True:
            # The hot path: a user item ready and no control waiting is
            # taken without the checks a blocking get() needs; a tell is
            # queued bare, an ask as its envelope (see mailbox).
            envelope: Envelope[Any] | None
            if user and not control and not mailbox.held:
                item = take()
                if type(item) is Envelope:
                    envelope, message = item, item.message
                else:
                    envelope, message = None, item
            else:
                if drained_by is not None:  # the burst is over: nothing ready
                    drained_by = self._mailbox_drained(drained_by)
                envelope = get()
                message = envelope.message
                if isinstance(message, control_types):
                    if self._on_control(envelope):
                        return
                    continue
            instance = self.instance
            try:
                if self.faults is not None:
                    self.faults.before_message(self, message)
                kind = type(message)
                if kind in _PROXY_MESSAGES or instance is None:
                    result = _dispatch(instance, message)
                else:
                    result = instance.on_receive(message)
            except Exception:  # noqa: BLE001 - every failure goes to the supervisor
                self._on_failure(envelope or Envelope(message), sys.exc_info())
                continue
            except BaseException as exc:
                self._lost_in_hand(envelope or Envelope(message), exc)
                raise
            if envelope is not None and envelope.reply_to is not None:
                envelope.reply_to.set(result)
            drained_by = instance
            if self._watch_success:
                self._watch_success = False
                self.parent.notify(ChildRecovered(self, self.generation))

    def _mailbox_drained(self, instance: Actor) -> Actor | None:
        """Call ``instance.on_mailbox_drained()`` if its burst is over.

        Returns the instance still owed the call: one that failed (until a
        resume) or has more to run first; None once called, or when it was
        torn down (the burst went with it). A failing hook is a failure
        like a failing message.
        """
        if not instance._drains_mailbox or instance is not self.instance:
            return None
        if self.state is not CellState.RUNNING or self.mailbox.runnable():
            return instance
        try:
            instance.on_mailbox_drained()
        except Exception:  # noqa: BLE001 - every failure goes to the supervisor
            self._on_failure(Envelope("<mailbox drained>"), sys.exc_info())
        return None

    def _on_control(self, envelope: Envelope[Any]) -> bool:
        """Handle a control message; True when the thread must end."""
        message = envelope.message
        if isinstance(message, Start):
            self._start(message)
        elif isinstance(message, Teardown):
            self._teardown(hooks=message.hooks, final=message.final)
            if message.final:
                self._close(message.reason)
                message.done.set()
                return True
            message.done.set()
        elif isinstance(message, ResumeMailbox):
            if self.state is CellState.FAILED and self.instance is not None:
                self.state = CellState.RUNNING
                # As after a restart: the next success ends the run of
                # consecutive failures (backoff and max_failures count it).
                self._watch_success = True
                self.mailbox.release()
                try:
                    self.instance._after_resume()
                except Exception:  # noqa: BLE001 - treated like a failing message
                    self._on_failure(Envelope("<after resume>"), sys.exc_info())
        elif isinstance(message, Kill):
            # A kill that already ended an earlier thread (during a hang or
            # sleep) leaves its Kill behind; the new thread must ignore it.
            if self._killed:
                raise _Killed
        elif isinstance(message, _ActorStop):
            generation = self.generation
            if envelope.reply_to is None:
                # self.stop(): the actor ends this incarnation itself (a
                # normal exit); the supervisor applies the restart type.
                self._teardown(hooks=True)
                self.parent.notify(ChildExited(self, generation))
                return False
            # ref.stop(), as in Pykka: stopped for good, never restarted.
            # The cell is closed (is_alive() false, later messages refused)
            # before the caller hears back, and the supervisor hears of it
            # before any request the caller makes next.
            self._teardown(hooks=True, final=True)
            self._close("stopped")
            self.parent.notify(ChildExited(self, generation, final=True))
            envelope.reply_to.set(None)
            return True
        return False

    def _start(self, command: Start) -> None:
        attempt = command.attempt
        if self.abandoned:
            # Its supervisor gave up on this cell (a teardown overran) and
            # starts the child on a new one; nothing runs here any more.
            attempt.fail(ActorStoppedError(f"{self.name!r} was abandoned"))
            return
        if self.instance is not None:
            self._teardown(hooks=True)
        self.generation += 1
        self.state = CellState.STARTING
        self.stop_requested.clear()
        _local.cell = self
        try:
            if self.faults is not None:
                self.faults.before_start(self)
            instance = self.factory()
            self.instance = instance
            instance.on_start()
            self._started = True
            healthy, detail = _check_health(instance)
            if not healthy:
                msg = f"{self.name} is not healthy after on_start: {detail}"
                raise UnhealthyError(msg)
        except Exception as exc:  # noqa: BLE001 - a failed start goes to the supervisor
            self._teardown(hooks=self._started)
            self.state = CellState.FAILED
            attempt.fail(exc)
            return
        if attempt.succeed():
            self.state = CellState.RUNNING
            self._watch_success = self.generation > 1
            self.mailbox.release()
            try:
                instance._after_start()
            except Exception:  # noqa: BLE001 - treated like a failing message
                self._on_failure(Envelope("<after start>"), sys.exc_info())
        else:  # the supervisor gave up waiting; it will decide what next
            self.state = CellState.FAILED

    def _teardown(self, *, hooks: bool, final: bool = False) -> None:
        """End the current incarnation, keeping the thread and mailbox."""
        self.mailbox.hold()
        for handle in list(self._timers):
            handle.cancel()
        self._timers.clear()
        instance, self.instance = self.instance, None
        started, self._started = self._started, False
        if instance is not None:
            try:
                instance._end_incarnation(run_hooks=hooks and started, final=final)
            except Exception as exc:
                self.log.error("on_stop_failed", error=describe_error(exc), exc_info=exc)
        self._close_session()  # after on_stop, which may still write through them
        if self.state is not CellState.STOPPED:
            self.state = CellState.IDLE

    def _close_session(self, *, rollback: bool = False) -> None:
        """Roll back (a handler failed) or close the actor's ``db`` and ``connection``."""
        if not self._end_handle(self.session, rollback=rollback):
            self.session = None
        if not self._end_handle(self.connection, rollback=rollback):
            self.connection = None

    def _end_handle(self, handle: Session | Connection | None, *, rollback: bool) -> bool:
        """Roll ``handle`` back or close it; True if it may still be used."""
        if handle is None:
            return False
        try:
            if rollback:
                handle.rollback()
                return True
            handle.close()
        except Exception as exc:  # noqa: BLE001 - a broken connection must not stop the actor
            self.log.error("session_cleanup_failed", error=describe_error(exc))
        return False

    def _close(self, reason: str) -> None:
        if self.on_close is not None:
            try:
                self.on_close()
            except Exception as exc:
                self.log.error("close_failed", error=describe_error(exc), exc_info=exc)
        self.log.debug("actor_stopped", reason=reason)
        self.state = CellState.STOPPED
        self.newest = None
        self.stopped.set()
        self.mailbox.close(self._dead_envelope)

    def _dead_envelope(self, envelope: Envelope[Any]) -> None:
        message = envelope.message
        if isinstance(message, Teardown):
            message.done.set()
            return
        if isinstance(message, Start):
            message.attempt.fail(ActorStoppedError(f"{self.name!r} is stopped"))
            return
        if envelope.reply_to is not None:
            if isinstance(message, _ActorStop):
                envelope.reply_to.set(None)
                return
            error = ActorStoppedError(f"actor {self.name!r} stopped before handling the message")
            envelope.reply_to.set_exception((type(error), error, None))
        if isinstance(message, ControlMessage | _ActorStop):
            return
        self.system.dead_letter(self.name, message, "stopped")

    def _on_failure(self, envelope: Envelope[Any], exc_info: Any) -> None:
        exc: Exception = exc_info[1]
        error = describe_error(exc)
        if envelope.reply_to is not None:
            envelope.reply_to.set_exception(exc_info)
        self.system.dead_letter(self.name, envelope.message, f"failed: {error}")
        self._close_session(rollback=True)
        instance = self.instance
        hint = None
        limit = None
        if instance is not None:
            limit = instance._failure_limit()
            try:
                instance.on_failure(*exc_info)
            except Exception as hook_exc:  # noqa: BLE001 - logged, failure still reported
                self.log.error("on_failure_failed", error=describe_error(hook_exc))
            try:
                hint = instance.decide(exc)
            except Exception as hook_exc:  # noqa: BLE001 - fall back to the supervisor's rule
                self.log.error("decide_failed", error=describe_error(hook_exc))
        self.mailbox.hold()
        self.state = CellState.FAILED
        self._watch_success = False
        self.parent.notify(ChildFailure(self, self.generation, error, exc, hint, limit))

    def _lost_in_hand(self, envelope: Envelope[Any], exc: BaseException) -> None:
        """The thread dies with ``envelope`` in hand: make it a dead letter.

        Killed during a hang or ``sleep``, or a ``BaseException`` escaped the
        handler: like a failing message it is published as a dead letter, and
        an ``ask`` caller gets an error instead of waiting forever.
        """
        error = _death_text(exc)
        if envelope.reply_to is not None:
            dead = ActorStoppedError(f"actor {self.name!r} died handling the message: {error}")
            envelope.reply_to.set_exception((type(dead), dead, None))
        self.system.dead_letter(self.name, envelope.message, f"failed: {error}")

    def _died(self, error: str) -> None:
        for handle in list(self._timers):
            handle.cancel()
        self._timers.clear()
        self.mailbox.hold()
        self._ended = True  # from here on, control() does not count on this thread
        self.instance = None
        self._started = False
        self.session = None  # its connection is abandoned with the thread
        self.connection = None
        if self.state is CellState.STOPPED:
            return
        self.state = CellState.DEAD
        if self._answer_commands(error):
            return
        self.parent.notify(ChildFailure(self, self.generation, error, None, None))

    def _answer_commands(self, error: str) -> bool:
        """Answer the commands queued for this dying thread; True if it closed.

        Whoever waits for a teardown or a start must not wait for a thread
        that is gone: a teardown is done (no incarnation is left; a final one
        closes the cell), a start fails with the cause of death (the
        supervisor then restarts the child on a fresh thread). A kill or a
        resume is moot; anything else waits for the next thread.
        """
        mailbox = self.mailbox
        keep: list[Envelope[Any]] = []
        final: Teardown | None = None
        while mailbox.runnable():  # held: only control messages are runnable
            envelope = mailbox.get()
            message = envelope.message
            if isinstance(message, Teardown):
                if message.final:
                    final = message
                else:
                    message.done.set()
            elif isinstance(message, Start):
                dead = ActorStoppedError(f"{self.name!r} could not start: {error}")
                message.attempt.fail(dead)
            elif not isinstance(message, Kill | ResumeMailbox):
                keep.append(envelope)
        for envelope in keep:
            mailbox.put(envelope)
        if final is None:
            return False
        self._close(final.reason)
        final.done.set()
        return True

    def __repr__(self) -> str:
        return f"<Cell {self.name!r} {self.state.value} gen={self.generation}>"


# What _dispatch handles itself; anything else goes to on_receive.
_PROXY_MESSAGES = frozenset({ProxyCall, ProxyGetAttr, ProxySetAttr})


def _death_text(exc: BaseException) -> str:
    """How a thread's death is described (``ChildFailed.error``, dead letters)."""
    if isinstance(exc, _Killed):
        return "thread killed"
    return f"thread died: {describe_error(exc)}"


class UnhealthyError(RegisseurError, RuntimeError):
    """An actor's ``health()`` reported unhealthy when it was checked."""


def _check_health(instance: Actor) -> tuple[bool, object]:
    report = instance.health()
    if isinstance(report, bool):
        return report, report
    if hasattr(report, "get"):
        return bool(report.get("healthy", True)), report
    msg = f"health() must return a bool or a mapping, got {type(report).__name__}"
    raise TypeError(msg)


def _dispatch(instance: Actor | None, message: Any) -> Any:
    if instance is None:  # pragma: no cover - the mailbox is held without one
        msg = "no live incarnation"
        raise RuntimeError(msg)
    kind = type(message)
    if kind is ProxyCall:
        return get_attr_directly(instance, message.attr_path)(*message.args, **message.kwargs)
    if kind is ProxyGetAttr:
        return get_attr_directly(instance, message.attr_path)
    if kind is ProxySetAttr:
        parent = get_attr_directly(instance, message.attr_path[:-1])
        return setattr(parent, message.attr_path[-1], message.value)
    return instance.on_receive(message)
