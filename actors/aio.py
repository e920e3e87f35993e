"""asyncio bridges: ask, stream events, wait for downloads, start and stop.

The methods users call live on the objects they already have
(``await system.ask_async(...)``, ``system.events.stream(...)``,
``await system.downloads.wait_async(...)``, ``async with ActorSystem(...)``);
this module holds how they work. Nothing here blocks the event loop and
nothing starts a thread per pending call: a reply, an event or a download's
end wakes the loop through ``loop.call_soon_threadsafe`` (once per burst: see
``_wakeups``) from the thread
that produced it. ``start()``/``stop()`` of the system (which block by
design) run on a thread of their own for the time they take.

Threads: the coroutines run on the event loop. ``EventStream``'s delivery
runs on the event bus's thread and only appends to a bounded buffer under a
lock, waking the loop if a reader waits.

Failures: the same errors as the blocking calls (``TimeoutError`` naming
what was waited for, ``UnknownActorError``, ``pykka.ActorDeadError``, the
handler's exception). Cancelling the awaiting task withdraws the wait only:
the actor still handles the message (its reply is dropped), a download
still runs, a starting system is stopped again once its start ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from regisseur.actors._future import until_done
from regisseur.actors._messaging import cell_to_ask
from regisseur.actors._wakeups import expire_later, waker
from regisseur.actors.clock import check_duration
from regisseur.actors.events import check_event_types
from regisseur.actors.log import get_logger
from regisseur.messages import Event

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from regisseur.actors._future import LoopFuture
    from regisseur.actors.events import EventBus, Subscription
    from regisseur.actors.system import ActorSystem
    from regisseur.messages import DownloadRecord

__all__ = ["EventStream", "ask", "start", "stop", "wait_download"]

E = TypeVar("E", bound=Event)

_log = get_logger("regisseur.actors.aio")


# -- ask ---------------------------------------------------------------------------
async def ask(system: ActorSystem, name: str, message: Any, timeout: float | None) -> Any:
    """``system.ask`` for coroutines; see ``ActorSystem.ask_async``.

    The hot path of every awaited ask, kept flat: ``until_done``'s steps
    inline (one coroutine less per ask), a plain float timeout taken as it
    is (anything else goes through ``check_duration``).
    """
    if timeout is not None and not (type(timeout) is float and 0.0 <= timeout < math.inf):
        timeout = check_duration(timeout, "ask_async(timeout)")
    cell = cell_to_ask(system, name, message)  # ActorStoppedError: a pykka.ActorDeadError
    future = cast("LoopFuture[Any]", cell.ref.ask(message, block=False))  # Actor._create_future
    waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    undo = future.when_done(waker(waiter))  # the callback runs on the actor's thread
    if undo is None:  # pragma: no cover - the runtime's futures always can tell
        done = await until_done(future, timeout)
    else:
        expiry = expire_later(waiter, timeout) if timeout is not None else None
        try:
            done = await waiter
        finally:
            undo()
            if expiry is not None:
                expiry()
    if not done:
        msg = f"no reply from {name!r} within {timeout:g}s"
        raise TimeoutError(msg)
    return future.value_now()


# -- event streams ---------------------------------------------------------------------
class _Buffer:
    """The part of a stream the bus holds: a bounded deque and a wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, maxsize: int) -> None:
        self.loop = loop
        self.maxsize = maxsize
        self.lock = threading.Lock()
        self.events: deque[Any] = deque()
        self.dropped = 0
        self.closed = False
        self.waiter: Callable[[], None] | None = None  # wakes the reader's future

    def deliver(self, event: object) -> None:
        """Bus thread: keep ``event``, dropping the oldest one when full."""
        with self.lock:
            if self.closed:
                return
            if len(self.events) >= self.maxsize:
                self.events.popleft()
                self.dropped += 1
                first = self.dropped == 1
            else:
                first = False
            self.events.append(event)
            waiter, self.waiter = self.waiter, None
        if first:
            _log.warning("event_stream_overflow", maxsize=self.maxsize)
        if waiter is not None:
            waiter()

    def close(self) -> None:
        """Any thread: drop what is buffered; a waiting reader ends its iteration."""
        with self.lock:
            self.closed = True
            self.events.clear()
            waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter()


class EventStream(Generic[E]):
    """Events of some types as an async iterator with a bounded buffer.

    Made by ``system.events.stream(*types, maxsize=1000)``; subscribes when
    iteration starts (or on ``async with``), unsubscribes on ``close()``,
    on leaving the ``async with`` block, or when the stream is freed after
    an ``async for`` that did not use ``async with``.

    Overflow policy: drop the oldest. The bus never waits for a slow reader
    (it serves every subscriber of the system); when ``maxsize`` events are
    buffered, the oldest is dropped and ``dropped`` counts it (a warning is
    logged at the first drop). Read ``dropped`` to know whether you missed
    any; for a state you must not miss, ask for it (e.g.
    ``downloads.status(id)``) after a gap.
    """

    def __init__(self, bus: EventBus, types: tuple[type[E], ...], maxsize: int) -> None:
        self._bus = bus
        self._types = types
        self._maxsize = maxsize
        self._buffer: _Buffer | None = None
        self._subscription: Subscription | None = None

    @property
    def dropped(self) -> int:
        """Events dropped so far because the buffer was full."""
        return self._buffer.dropped if self._buffer is not None else 0

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran (or the block or loop it served ended)."""
        return self._buffer is not None and self._buffer.closed

    def _open(self) -> _Buffer:
        if self._buffer is None:
            self._buffer = _Buffer(asyncio.get_running_loop(), self._maxsize)
            self._subscription = self._bus.subscribe(self._buffer.deliver, *self._types)
        return self._buffer

    def close(self) -> None:
        """Unsubscribe and end the iteration (idempotent, any thread)."""
        if self._subscription is not None:
            self._subscription.cancel()
        if self._buffer is None:  # closed before it was ever read
            self._buffer = _Buffer(None, self._maxsize)
        self._buffer.close()

    async def __aenter__(self) -> EventStream[E]:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> EventStream[E]:
        self._open()
        return self

    async def __anext__(self) -> E:
        buffer = self._open()
        while True:
            with buffer.lock:
                if buffer.events:
                    event: E = buffer.events.popleft()
                    return event
                if buffer.closed:
                    raise StopAsyncIteration
                assert buffer.loop is not None  # only a stream never opened has none
                waiter: asyncio.Future[bool] = buffer.loop.create_future()
                wake = buffer.waiter = waker(waiter)
            try:
                await waiter
            finally:
                with buffer.lock:
                    if buffer.waiter is wake:
                        buffer.waiter = None

    def __del__(self) -> None:
        # An ``async for`` without ``async with``: unsubscribe when freed.
        subscription = self._subscription
        if subscription is not None and subscription.active:
            subscription.cancel()


def check_stream_types(types: tuple[object, ...], maxsize: object) -> None:
    """Raise ``TypeError``/``ValueError`` naming what ``stream()`` cannot take."""
    if not types:
        msg = "stream() needs at least one event type, e.g. stream(ChildFailed)"
        raise TypeError(msg)
    check_event_types(types, "stream()")
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        msg = f"stream(maxsize) must be an int >= 1, got {maxsize!r}"
        raise ValueError(msg)


# -- downloads ------------------------------------------------------------------------
async def wait_download(
    system: ActorSystem,
    download_id: str,
    timeout: float | None,
    status: Callable[[], Awaitable[DownloadRecord | None]],
    missing: Callable[[], Awaitable[Exception]],
    *,
    held_here: Callable[[], Awaitable[bool]] | None = None,
    poll: float = 0.2,
) -> DownloadRecord:
    """``downloads.wait`` for coroutines; see ``Downloads.wait_async``.

    ``status()`` gives the download's record; when it has none, the error
    ``missing()`` gives is raised (forgotten with its final state, or unknown).
    While ``held_here()`` is False (another process holds the download: its
    end sends no event here) the record is looked at every ``poll`` seconds;
    ``held_here`` is asked again each time (it takes over a download whose
    owner died).
    """
    from regisseur.messages import DownloadStateChanged

    if timeout is not None:
        timeout = check_duration(timeout, "wait_async(timeout)")
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[DownloadRecord] = loop.create_future()

    def deliver(record: DownloadRecord) -> None:
        if not ended.done():
            ended.set_result(record)

    def watch(event: object) -> None:  # the bus thread
        if (
            isinstance(event, DownloadStateChanged)
            and event.record.id == download_id
            and event.record.terminal
        ):
            try:
                loop.call_soon_threadsafe(deliver, event.record)
            except RuntimeError:  # the loop was closed: nobody waits any more
                _log.debug("download_wait_abandoned", download_id=download_id)

    def timed_out(record: DownloadRecord) -> TimeoutError:
        msg = (
            f"download {download_id!r} did not end within {timeout:g}s "
            f"(state: {record.state.value})"
        )
        return TimeoutError(msg)

    with system.events.subscribe(watch, DownloadStateChanged):
        record = await status()
        if record is None:
            raise await missing()
        if record.terminal:
            return record
        deadline = None if timeout is None else loop.time() + timeout
        while held_here is not None and not await held_here():
            now = await status() or record
            if now.terminal:
                return now
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise timed_out(now)
            with contextlib.suppress(asyncio.TimeoutError):
                pause = poll if left is None else min(poll, left)
                return await asyncio.wait_for(asyncio.shield(ended), pause)
            record = now
        left = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await asyncio.wait_for(ended, left)
        except asyncio.TimeoutError:
            raise timed_out(record) from None


# -- start and stop ---------------------------------------------------------------------
async def start(system: ActorSystem) -> ActorSystem:
    """``system.start()`` on a thread of its own, awaited.

    Cancelled while the start runs: the start is let finish on its thread,
    what it started is stopped again, and then the cancellation goes on.
    """
    abandoned = threading.Event()

    def run() -> None:
        system.start()
        if abandoned.is_set():
            system.stop()

    started = _on_thread(run, f"start-{system.name}")
    try:
        await asyncio.shield(started)
    except asyncio.CancelledError:
        abandoned.set()
        await asyncio.wait([started])  # its outcome is the start's business now
        if system.running:  # it ended before it could see the cancellation
            await asyncio.shield(_on_thread(system.stop, f"stop-{system.name}"))
        raise
    return system


async def stop(system: ActorSystem) -> None:
    """``system.stop()`` on a thread of its own, awaited (the stop goes on if cancelled)."""
    await asyncio.shield(_on_thread(system.stop, f"stop-{system.name}"))


def _on_thread(func: Callable[[], None], name: str) -> asyncio.Future[None]:
    """Run ``func`` on a new thread; the returned future is set when it returns.

    A thread of its own rather than the loop's default executor: that pool
    may be full of the application's blocking calls. Runs on the loop.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish(error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(None)

    def main() -> None:
        error: BaseException | None = None
        try:
            func()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
        try:
            loop.call_soon_threadsafe(finish, error)
        except RuntimeError:  # the loop was closed meanwhile
            _log.warning("system_call_abandoned", call=name, error=repr(error))

    threading.Thread(target=main, name=f"regisseur:{name}", daemon=True).start()
    return done
