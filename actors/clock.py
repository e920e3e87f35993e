"""Clocks and the timer heap: the only module that reads ``time``.

A :class:`Clock` tells the time and drives a system's :class:`Timers`:

* :class:`RealClock` reads ``time.monotonic`` and drives the heap from one
  timer thread per system (never one thread per timer).
* :class:`ManualClock` is frozen until a test calls :meth:`ManualClock.advance`;
  it first lets every system it drives settle, then fires due timers in the
  calling thread, in deadline order (ties in the order they were scheduled),
  letting the systems settle after each deadline, so a test is deterministic.

Everything else in regisseur asks its system's clock for the time; real-time
bounds on blocking calls (``ask(timeout=)``, ``settle``, start and shutdown
timeouts) use :func:`monotonic` from here.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Clock",
    "ClockWaiter",
    "ManualClock",
    "RealClock",
    "TimerHandle",
    "Timers",
    "check_duration",
    "monotonic",
    "wall_time",
]


def wall_time() -> float:
    """Seconds since the epoch, for leases shared between processes."""
    return time.time()


def monotonic() -> float:
    """Real monotonic seconds, for bounding blocking waits (not for logic)."""
    return time.monotonic()


#: The longest a thread blocks in one wait (a lock cannot wait longer).
MAX_WAIT = min(threading.TIMEOUT_MAX, 365 * 86400.0)


def bounded_wait(seconds: float | None) -> float | None:
    """``seconds`` capped at what one blocking wait accepts (None stays None)."""
    return None if seconds is None else min(seconds, MAX_WAIT)


def check_duration(value: object, what: str, *, allow_zero: bool = True) -> float:
    """Return ``value`` as a float number of seconds, or raise a clear error.

    Raises ``TypeError`` for a non-number (``bool`` included) and ``ValueError``
    for NaN, infinity, a negative value, or zero when ``allow_zero`` is false.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{what} must be a number of seconds, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    try:
        seconds = float(value)
    except OverflowError:
        msg = f"{what} must be a finite number of seconds, got an int of {len(str(value))} digits"
        raise ValueError(msg) from None
    if math.isnan(seconds) or math.isinf(seconds):
        msg = f"{what} must be a finite number of seconds, got {value!r}"
        raise ValueError(msg)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        msg = f"{what} must be {bound} seconds, got {value!r}"
        raise ValueError(msg)
    return seconds


class TimerHandle:
    """A scheduled callback; :meth:`cancel` it to stop it from firing.

    Cancelling is thread-safe and idempotent. A cancelled periodic timer does
    not fire again; a callback already running is not interrupted.
    """

    __slots__ = ("_seq", "callback", "cancelled", "deadline", "interval")

    def __init__(
        self,
        deadline: float,
        seq: int,
        callback: Callable[[], object],
        interval: float | None,
    ) -> None:
        self.deadline = deadline
        self._seq = seq
        self.callback = callback
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the timer from firing (again)."""
        self.cancelled = True

    @property
    def active(self) -> bool:
        """True while the timer may still fire."""
        return not self.cancelled

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.deadline, self._seq) < (other.deadline, other._seq)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "active"
        return f"<TimerHandle at {self.deadline:.3f} {state}>"


class ClockWaiter:
    """One thread blocked until a time on the clock, or until woken early.

    Made by :meth:`Timers.waiter`. While the owning thread is in :meth:`wait`
    it counts as waiting for the clock (see :meth:`Timers.waiting`): a
    system settles around it and :meth:`ManualClock.advance` does not wait
    for it. :meth:`set` wakes it (the timer, or a stop from any thread).
    """

    __slots__ = ("_event", "_handle", "_timers", "thread")

    def __init__(self, timers: Timers, seconds: float) -> None:
        self._timers = timers
        self._event = threading.Event()
        self.thread = threading.current_thread()
        self._handle = timers.call_later(seconds, self.set)

    def set(self) -> None:
        """Wake the waiting thread (any thread; idempotent)."""
        with self._timers.cond:  # busy again before it can run
            self._timers._waiting.pop(self, None)
            self._event.set()

    def is_set(self) -> bool:
        """True once woken."""
        return self._event.is_set()

    def wait(self) -> None:
        """Block the calling thread until woken; then drop the timer."""
        try:
            if self._timers._remember(self):
                self._event.wait()
        finally:
            self._timers._forget(self)
            self._handle.cancel()

    def cancel(self) -> None:
        """Drop the timer without waiting."""
        self._timers._forget(self)
        self._handle.cancel()


class Timers:
    """A heap of timers driven by a :class:`Clock`; one per actor system.

    Any thread may schedule or cancel. Callbacks run on the clock's driver:
    the system's timer thread for :class:`RealClock`, the thread calling
    :meth:`ManualClock.advance` for the manual clock. Callbacks must be quick
    (they tell messages); an exception from one is reported to ``on_error``
    and the other timers still fire.

    ``quiesce(timeout)`` (optional) returns once the heap's system has
    nothing it can do now, or raises ``TimeoutError`` after ``timeout`` real
    seconds; :meth:`ManualClock.advance` calls it before and after each
    deadline. ``on_wait`` is called when a thread starts waiting in a
    :class:`ClockWaiter` (the system wakes its ``settle`` with it).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "timers",
        on_error: Callable[[BaseException], None] | None = None,
        quiesce: Callable[[float], None] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.name = name
        self._heap: list[TimerHandle] = []
        self._seq = itertools.count()
        self.cond = threading.Condition(threading.Lock())
        self._on_error = on_error
        self._undrive: Callable[[], None] | None = None
        self.closed = False
        self._quiesce = quiesce
        self._on_wait = on_wait
        self._waiting: dict[ClockWaiter, threading.Thread] = {}

    def start(self) -> None:
        """Let the clock drive this heap (starts the timer thread if real)."""
        if self._undrive is None:
            self.closed = False
            self._undrive = self.clock.drive(self)

    def close(self) -> None:
        """Stop driving and drop every pending timer; joins the timer thread."""
        with self.cond:
            self.closed = True
            for handle in self._heap:
                handle.cancel()
            self._heap.clear()
            self.cond.notify_all()
        undrive, self._undrive = self._undrive, None
        if undrive is not None:
            undrive()

    def quiesce(self, timeout: float) -> None:
        """Return once the heap's system has nothing it can do now (the hook)."""
        if self._quiesce is not None and not self.closed:
            self._quiesce(timeout)

    def waiter(self, seconds: float) -> ClockWaiter:
        """A :class:`ClockWaiter` for the calling thread, woken ``seconds`` from now."""
        return ClockWaiter(self, check_duration(seconds, "wait(seconds)"))

    def waiting(self) -> set[threading.Thread]:
        """Threads blocked in :meth:`ClockWaiter.wait`: idle until a timer fires."""
        with self.cond:
            return set(self._waiting.values())

    def _remember(self, waiter: ClockWaiter) -> bool:
        """Count ``waiter``'s thread as waiting; False if it was woken already."""
        with self.cond:
            if waiter.is_set():
                return False
            self._waiting[waiter] = waiter.thread
        if self._on_wait is not None:
            self._on_wait()
        return True

    def _forget(self, waiter: ClockWaiter) -> None:
        with self.cond:
            self._waiting.pop(waiter, None)

    def call_at(self, deadline: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` once when the clock reaches ``deadline``."""
        return self._push(deadline, callback, None)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now."""
        delay = check_duration(delay, "delay")
        return self._push(self.clock.now() + delay, callback, None)

    def call_every(self, interval: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` every ``interval`` seconds, first after one interval.

        Fixed rate: the n-th run is due at ``start + n * interval``. If the
        driver falls more than a whole interval behind (a stalled machine),
        missed runs are skipped rather than fired in a burst.
        """
        interval = check_duration(interval, "interval", allow_zero=False)
        return self._push(self.clock.now() + interval, callback, interval)

    def _push(
        self, deadline: float, callback: Callable[[], object], interval: float | None
    ) -> TimerHandle:
        with self.cond:
            if self.closed:
                msg = f"{self.name} are closed: the system is stopped"
                raise RuntimeError(msg)
            handle = TimerHandle(deadline, next(self._seq), callback, interval)
            heapq.heappush(self._heap, handle)
            if self._heap[0] is handle:
                self.cond.notify_all()
            return handle

    def next_deadline(self) -> float | None:
        """The earliest deadline of a live timer, or None."""
        with self.cond:
            return self._next_deadline_locked()

    def _next_deadline_locked(self) -> float | None:
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        return heap[0].deadline if heap else None

    def fire_due(self, now: float) -> int:
        """Fire every timer due at ``now``, in deadline order; return how many."""
        fired = 0
        while True:
            with self.cond:
                deadline = self._next_deadline_locked()
                if deadline is None or deadline > now:
                    return fired
                handle = heapq.heappop(self._heap)
                if handle.interval is not None:
                    nxt = handle.deadline + handle.interval
                    if nxt <= now - handle.interval:
                        nxt = now + handle.interval
                    handle.deadline = nxt
                    handle._seq = next(self._seq)
                    heapq.heappush(self._heap, handle)
            fired += 1
            try:
                handle.callback()
            except Exception as exc:  # reported, never lost
                if self._on_error is None:
                    raise
                self._on_error(exc)

    def __len__(self) -> int:
        with self.cond:
            return sum(1 for h in self._heap if not h.cancelled)


class Clock(ABC):
    """What actors and supervisors ask for the time.

    ``now()`` returns seconds on an arbitrary monotonic scale (for timers,
    delays and durations); ``wall()`` seconds since the epoch (for what a
    person reads: when a record was made). ``drive(timers)`` makes the clock
    fire the heap's due timers and returns a function that stops doing so
    (and joins any thread it started).
    """

    @abstractmethod
    def now(self) -> float:
        """Current time in seconds (monotonic, arbitrary origin)."""

    def wall(self) -> float:
        """Seconds since the epoch (may step; never use it to time anything)."""
        return time.time()

    @abstractmethod
    def drive(self, timers: Timers) -> Callable[[], None]:
        """Start firing ``timers`` when they fall due; return the stopper."""


class RealClock(Clock):
    """Wall-clock time from ``time.monotonic``, one timer thread per heap."""

    def now(self) -> float:
        return time.monotonic()

    def drive(self, timers: Timers) -> Callable[[], None]:
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                with timers.cond:
                    if stop.is_set() or timers.closed:
                        return
                    deadline = timers._next_deadline_locked()
                    if deadline is None:
                        timers.cond.wait()
                        continue
                    delay = deadline - time.monotonic()
                    if delay > 0:
                        # Capped: a lock cannot wait beyond TIMEOUT_MAX, and a
                        # far timer must not kill the thread that runs the others.
                        timers.cond.wait(min(delay, 3600.0))
                        continue
                timers.fire_due(time.monotonic())

        thread = threading.Thread(target=run, name=f"regisseur:{timers.name}", daemon=True)
        thread.start()

        def undrive() -> None:
            stop.set()
            with timers.cond:
                timers.cond.notify_all()
            if thread is not threading.current_thread():
                thread.join()

        return undrive

    def __repr__(self) -> str:
        return "RealClock()"


class ManualClock(Clock):
    """Virtual time for tests: frozen until :meth:`advance` moves it forward.

    Unlike a real clock nothing happens by itself. ``advance(seconds)`` works
    like trio's autojump clock, step by step: it first lets every system it
    drives settle (each failure handled, each restart timer set), then moves
    to the earliest due deadline, fires the timers due then (in the calling
    thread, with ``now()`` equal to that deadline) and lets the systems
    settle again, so that whatever those timers caused (a run that schedules
    the next one, a restart after a backoff) happens before time moves on.
    It ends on the target time. So ``advance(30)`` runs a 10 s periodic job
    three times, and "crash it, ``advance(2)``, expect ``ChildRestarted``"
    needs no ``settle()`` in between.

    Time only moves forward (``ValueError`` otherwise). A system registers
    with the clock when it starts and unregisters when it stops. Settling
    is bounded by ``settle_timeout`` real seconds per step: an actor busy
    in its own code for longer (blocked on something else than the clock)
    makes ``advance`` raise ``TimeoutError`` naming it. A thread waiting on
    this clock (``Actor.sleep``, an injected hang, a download's retry wait)
    counts as idle. ``advance`` may be called from any thread, also an
    actor's (that actor is then not waited for), also while another
    ``advance`` is under way: steps are taken one deadline at a time, in
    order, and time ends at the later of the two targets. ``wall()`` starts
    at ``wall_start`` (the epoch by default) and moves with ``advance``.
    """

    def __init__(
        self, start: float = 0.0, *, wall_start: float = 0.0, settle_timeout: float = 5.0
    ) -> None:
        self._now = check_duration(start, "start")
        self._wall_offset = check_duration(wall_start, "wall_start") - self._now
        self.settle_timeout = check_duration(
            settle_timeout, "ManualClock(settle_timeout)", allow_zero=False
        )
        self._lock = threading.RLock()
        self._driven: list[Timers] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        """``wall_start`` plus the time advanced since: as frozen as ``now()``."""
        return self._wall_offset + self._now

    def drive(self, timers: Timers) -> Callable[[], None]:
        with self._lock:
            self._driven.append(timers)

        def undrive() -> None:
            with self._lock:
                if timers in self._driven:
                    self._driven.remove(timers)

        return undrive

    def advance(self, seconds: float) -> None:
        """Settle, then move time forward by ``seconds`` one deadline at a time.

        See the class docstring. Raises ``TimeoutError`` if a system does not
        settle within ``settle_timeout`` (time then stays at the last
        deadline reached).
        """
        seconds = check_duration(seconds, "ManualClock.advance(seconds)")
        with self._lock:
            target = self._now + seconds
        self._quiesce()
        # The settling between steps runs without the lock, so an actor may
        # advance the clock itself (a job that "takes" three seconds) while
        # a test's advance waits for it.
        while self._step(target):
            self._quiesce()

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without waiting for any system.

        Due timers fire in deadline order in the calling thread, but nothing
        is settled before or between them: for a test that keeps an actor
        busy on purpose (a download blocked on a socket the test controls),
        which ``advance`` would wait for. What the timers cause then runs
        concurrently; ``system.settle()`` waits for it.
        """
        seconds = check_duration(seconds, "ManualClock.jump(seconds)")
        with self._lock:
            target = self._now + seconds
        while self._step(target):
            pass

    def _step(self, target: float) -> bool:
        """Fire the timers of the earliest deadline up to ``target``; False at the end."""
        with self._lock:
            soonest: float | None = None
            for timers in self._driven:
                deadline = timers.next_deadline()
                if deadline is not None and deadline <= target:
                    soonest = deadline if soonest is None else min(soonest, deadline)
            if soonest is None:
                self._now = max(self._now, target)
                return False
            self._now = max(self._now, soonest)
            for timers in list(self._driven):
                timers.fire_due(self._now)
            return True

    def _quiesce(self) -> None:
        with self._lock:
            driven = list(self._driven)
        for timers in driven:
            timers.quiesce(self.settle_timeout)

    def next_deadline(self) -> float | None:
        """The earliest pending timer across driven heaps, or None."""
        with self._lock:
            deadlines = [d for t in self._driven if (d := t.next_deadline()) is not None]
            return min(deadlines) if deadlines else None

    def advance_to_next(self) -> float:
        """Advance exactly to the next pending timer; return the step (0 if none)."""
        with self._lock:
            deadline = self.next_deadline()
            if deadline is None:
                return 0.0
            step = max(0.0, deadline - self._now)
        self.advance(step)
        return step

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now})"
