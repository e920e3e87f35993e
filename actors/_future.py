"""``LoopFuture``: the Pykka future every regisseur ask hands out.

A ``pykka.ThreadingFuture`` (a subclass, with a lighter one-shot reply
slot inside: see ``LoopFuture``) that can also say when it is done: whoever
awaits it from asyncio is woken through the event loop
(``loop.call_soon_threadsafe``) instead of blocking the loop in ``get()``,
as Pykka's own ``__await__`` does. ``map()``, ``join()`` and the rest
behave exactly as in Pykka; ``get(timeout=...)`` raises the library's
:class:`~regisseur.actors.errors.WaitTimeoutError` when the wait runs out,
so ``ref.ask``, proxy futures and ``system.ask`` raise one timeout class
(still a ``pykka.Timeout`` and a ``TimeoutError``); a ``pykka.Timeout``
raised by the handler itself is passed on unchanged. The runtime creates these futures through
Pykka's ``_create_future`` hook (``Actor._create_future``), so
``system.ref(name).ask(msg, block=False)`` and every proxy call return one.

Threads: the value is set on the replying actor's thread, which then runs
the completion callbacks (each only schedules a wake-up on a loop: no
thread waits per pending future). ``__await__`` runs on the loop.

Failures: a callback that raises is logged and the others still run. A
future whose value comes from a get hook set by hand (not through
``map``/``filter``/``reduce``/``join``) cannot say when it is done;
awaiting it runs ``get()`` in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pykka

from regisseur.actors._wakeups import expire_later, waker
from regisseur.actors.errors import WaitTimeoutError, describe_error
from regisseur.actors.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from regisseur.actors._pykka import OptExcInfo

__all__ = ["LoopFuture", "until_done"]

T = TypeVar("T")
J = TypeVar("J")
M = TypeVar("M")
R = TypeVar("R")

_log = get_logger("regisseur.actors.aio")


class _Callbacks:
    """The callbacks waiting for one future, made by its first ``when_done``.

    A lock of their own, not the one blocking ``get()`` callers wait on:
    the loop and the replying thread meet on it only briefly. A
    future nobody awaits (a plain blocking ask) never makes one.
    """

    __slots__ = ("lock", "pending")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[Callable[[], None]] | None = []  # None once run


class LoopFuture(pykka.ThreadingFuture[T]):
    """A Pykka future with completion callbacks; awaiting it never blocks the loop.

    A one-shot reply slot, lighter than Pykka's own: no condition per
    future. The result is one tuple stored once (``(value, exc_info)``); a
    waiter that finds it missing makes the future's lock (created locked,
    shared by every waiter) and blocks on it, and the setter releases it.
    A reply that arrives before anyone waits (the common case for an actor
    that answers quickly) costs no lock at all. Setting twice raises
    ``queue.Full``, as Pykka's future does; a get hook's value is computed
    by the first ``get`` that succeeds and kept.
    """

    # Class-level defaults, set on an instance only when used: a plain
    # blocking ask pays nothing for them.
    _reply: tuple[Any, OptExcInfo | None] | None = None  # (value, exc_info), set once
    _get_hook: Callable[[float | None], T] | None = None
    _box: _Callbacks | None = None  # by the first when_done
    _sources: tuple[pykka.Future[Any], ...] | None = None  # a derived future's sources

    def __init__(self) -> None:  # neither Pykka's condition nor its hook cache
        pass

    # -- setting the value (the replying thread) ------------------------------
    def set(self, value: Any | None = None) -> None:
        self._store((value, None))

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        self._store((None, exc_info if exc_info is not None else sys.exc_info()))

    def _store(self, result: tuple[Any, OptExcInfo | None]) -> None:
        """Set the result once (``queue.Full`` the second time), wake waiters and callbacks."""
        # setdefault is atomic: of two setters racing, exactly one wins.
        if self._get_hook is not None or self.__dict__.setdefault("_reply", result) is not result:
            raise queue.Full
        lock: threading.Lock | None = self.__dict__.get("_lock")
        if lock is not None:  # read after the result was stored: see _wait
            lock.release()
        if self._box is not None:  # read after the value was set: see when_done
            self._run_callbacks()

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        if self._reply is not None or self.__dict__.setdefault("_get_hook", func) is not func:
            raise queue.Full
        lock: threading.Lock | None = self.__dict__.get("_lock")
        if lock is not None:
            lock.release()

    def _run_callbacks(self) -> None:
        box = self._box
        if box is None:  # nobody waits through a callback (read after the value was set)
            return
        with box.lock:
            callbacks, box.pending = box.pending, None
        for callback in callbacks or ():
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - one waiter must not starve the others
                _log.error("future_callback_failed", error=describe_error(exc), exc_info=exc)

    # -- completion (any thread) -----------------------------------------------
    def when_done(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback()`` once the value is there (at once if it is).

        Returns a function that withdraws the callback (a no-op once it
        ran), or None if this future cannot tell when it is done (a get hook
        set by hand). The callback runs on the thread that sets the value.
        """
        if self._sources is not None:
            return _when_all_done(self._sources, callback)
        if self._get_hook is not None:
            return None
        box: _Callbacks = self.__dict__.setdefault("_box", _Callbacks())
        with box.lock:
            pending = box.pending
            if pending is not None:
                pending.append(callback)
        if pending is None:  # already run: the value is there
            callback()
            return _nothing
        if self._reply is not None:
            # Set meanwhile: its setter may have looked for callbacks before
            # the box existed. Whoever empties the box first runs them.
            self._run_callbacks()
        return functools.partial(_discard, box, callback)

    # -- waiting (any caller's thread) ---------------------------------------------
    def get(self, *, timeout: float | None = None) -> T:
        result = self._reply
        if result is None:
            hook = self._get_hook
            if hook is None:
                result = self._wait(timeout)
            if result is None:  # a get hook (map, join, ref.stop ...): its value, kept
                return self._hook_value(timeout)
        exc_info = result[1]
        if exc_info is None:
            value: T = result[0]
            return value
        exc_type, exc_value, exc_traceback = exc_info
        if exc_value is None:
            assert exc_type is not None
            exc_value = exc_type()
        if exc_value.__traceback__ is not exc_traceback:
            raise exc_value.with_traceback(exc_traceback)
        raise exc_value

    def _wait(self, timeout: float | None) -> tuple[Any, OptExcInfo | None] | None:
        """Block until a result or a get hook is there; None for a hook.

        Raises :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        lock: threading.Lock | None = self.__dict__.get("_lock")
        if lock is None:
            fresh = threading.Lock()
            fresh.acquire()
            lock = self.__dict__.setdefault("_lock", fresh)  # every waiter shares one
        deadline = None if timeout is None else time.monotonic() + timeout
        # Checked after the lock was published: a setter that stored the
        # result before seeing the lock is caught here; one after releases it.
        while (result := self._reply) is None and self._get_hook is None:
            if deadline is None:
                lock.acquire()
            elif not lock.acquire(True, max(0.0, deadline - time.monotonic())):
                if self._reply is not None or self._get_hook is not None:
                    continue  # set just as the wait ran out
                assert timeout is not None
                msg = f"no reply within {timeout:g}s"
                raise WaitTimeoutError(msg)
            lock.release()  # let the next waiter through
        return result

    def _hook_value(self, timeout: float | None) -> T:
        """The get hook's value, computed by the first ``get`` that succeeds, then kept."""
        if "_hook_result" in self.__dict__:
            kept: T = self.__dict__["_hook_result"]
            return kept
        assert self._get_hook is not None
        try:
            value = self._get_hook(timeout)
        except pykka.Timeout as exc:
            if isinstance(exc, WaitTimeoutError):
                raise
            msg = f"no reply within {timeout:g}s" if timeout is not None else "no reply"
            raise WaitTimeoutError(msg) from exc
        self.__dict__["_hook_result"] = value
        return value

    # -- asyncio (the loop's thread) -----------------------------------------------
    def __await__(self) -> Generator[Any, None, T]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (another framework): as Pykka does
            yield
            return self.get()
        yield from until_done(self, None).__await__()
        return self.value_now()

    def value_now(self) -> T:
        """The value of a future that is done, as ``get()`` gives it, without waiting.

        Reads the stored result without taking Pykka's condition (it is
        never changed once set); an exception, a get hook's value or a
        future not done yet go through ``get(timeout=0)``.
        """
        result = self._reply
        if result is None or result[1] is not None:
            value: T = self.get(timeout=0)
            return value
        return cast("T", result[0])

    __iter__ = __await__

    # -- derived futures keep their sources, so they can be awaited too ------------
    def _derived(self, future: pykka.Future[Any], *sources: pykka.Future[Any]) -> Any:
        if isinstance(future, LoopFuture):
            future._sources = (self, *sources)
        return future

    def map(self, func: Callable[[T], M]) -> pykka.Future[M]:
        return cast("pykka.Future[M]", self._derived(super().map(func)))

    def filter(
        self: LoopFuture[Iterable[J]], func: Callable[[J], bool]
    ) -> pykka.Future[Iterable[J]]:
        return cast("pykka.Future[Iterable[J]]", self._derived(super().filter(func)))

    def reduce(
        self: LoopFuture[Iterable[J]], func: Callable[[R, J], R], *args: R
    ) -> pykka.Future[R]:
        return cast("pykka.Future[R]", self._derived(super().reduce(func, *args)))

    def join(self, *futures: pykka.Future[Any]) -> pykka.Future[Iterable[Any]]:
        joined = super().join(*futures)
        return cast("pykka.Future[Iterable[Any]]", self._derived(joined, *futures))

    def __repr__(self) -> str:
        return "<regisseur.LoopFuture>"


def _nothing() -> None:
    return None


def _discard(box: _Callbacks, callback: Callable[[], None]) -> None:
    if box.pending is None:  # run: the list is gone, nothing to withdraw
        return
    with box.lock:
        callbacks = box.pending
        if callbacks is not None and callback in callbacks:
            callbacks.remove(callback)


def _when_all_done(
    sources: tuple[pykka.Future[Any], ...], callback: Callable[[], None]
) -> Callable[[], None] | None:
    """``when_done`` over several futures: ``callback`` once all of them are done."""
    if not all(isinstance(s, LoopFuture) for s in sources):
        return None
    lock = threading.Lock()
    pending = [len(sources)]

    def one_done() -> None:
        with lock:
            pending[0] -= 1
            last = pending[0] == 0
        if last:
            callback()

    undos: list[Callable[[], None]] = []
    for source in sources:
        undo = cast("LoopFuture[Any]", source).when_done(one_done)
        if undo is None:  # pragma: no cover - a source with a hand-made hook
            for earlier in undos:
                earlier()
            return None
        undos.append(undo)

    def undo_all() -> None:
        for undo in undos:
            undo()

    return undo_all


async def until_done(future: pykka.Future[Any], timeout: float | None) -> bool:
    """Wait on the running loop until ``future`` is done; False after ``timeout``.

    Never blocks the loop and starts no thread (except for a future that
    cannot say when it is done, see the module docstring). Cancelling the
    awaiting task withdraws the wake-up: the future and whoever sets it
    are not touched.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[bool] = loop.create_future()

    # Called on the replying actor's thread.
    undo = future.when_done(waker(waiter)) if isinstance(future, LoopFuture) else None
    if undo is None:
        return await _in_executor(loop, future, timeout)
    expiry = expire_later(waiter, timeout) if timeout is not None else None
    try:
        return await waiter
    finally:
        undo()
        if expiry is not None:
            expiry()


async def _in_executor(
    loop: asyncio.AbstractEventLoop, future: pykka.Future[Any], timeout: float | None
) -> bool:
    def wait() -> bool:
        try:
            future.get(timeout=timeout)
        except pykka.Timeout:
            return False
        except Exception:  # noqa: BLE001 - done, with an exception: get() raises it again
            return True
        return True

    return await loop.run_in_executor(None, wait)
