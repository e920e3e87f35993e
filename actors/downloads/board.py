"""A source's run board: the downloads waiting for a worker, shared by its workers.

The board is the workers' shared mailbox (the balancing pool of Akka, the
work queue of a thread pool): the source's queue actor puts the downloads
the keeper hands it on the board, and a worker that finished a download
takes the next one straight from it, without a round trip through the
queue actor. A worker that finds nothing to take parks; a put wakes as
many parked workers as there are downloads to take (the queue actor tells
each a ``Take``). While downloads wait, no worker sleeps between two of
them and no other thread is woken for the hand-off.

The board also keeps the source's limits:

* ``concurrency``: a worker whose index is above it takes nothing more
  (it asks to be retired); each worker runs one download at a time, and
  no download starts while ``concurrency`` runs go on (after the limit was
  lowered, the runs above it end first: "effective at once" holds for
  starts, running downloads are not interrupted).
* ``delay``: two starts are at least ``delay`` apart on the system clock.
  A worker that comes too early is told how long to wait; one worker at a
  time waits (on a timer of its own), the others park.

Threads: every method takes the board's lock for a few dictionary and
deque operations and never blocks otherwise; callers are the queue actor's
thread and the workers' threads. A run's ``CancelToken`` is cancelled
outside the lock (it calls its wakers).

Failures: the board holds no resource. A queue restart empties its FIFO
(``reset``); the keeper's answer to the new queue's ``Attach`` fills it
again. The queue hears of a worker's death (``ChildFailed``) and takes the
dead worker off the parked ones (``lost``), so the downloads it was woken
for, or was waiting out the delay for, go to the other workers meanwhile.

A run is on the board from ``take`` until its worker's ``done``, which
the worker's thread calls however the run ends (a result, a failure, a
release, the thread dying): a worker killed mid-run reports and leaves
first. A worker whose run did not end when it was asked to stop (an impl
that never sees a cancel) is abandoned by its supervisor and its thread
runs on; its successor (same name) starts beside it. That run stays on
the board as an *orphan* until its ``done``: it no longer counts against
the limit (its successor has the slot), a new claim of its download
waits for it (never two runs of one download at once), and a withdraw
still reaches its token. ``running()`` lists the runs on the board with
their claims: a new queue's ``Attach`` tells the keeper which downloads
an earlier incarnation's run is still fetching (see ``KeeperActor``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from regisseur.actors.downloads.claim_view import ClaimView
    from regisseur.actors.downloads.context import CancelToken
    from regisseur.messages.downloads import DownloadRecord

__all__ = ["RETIRE", "RunBoard", "Taken", "worker_index"]


@dataclass(frozen=True, slots=True)
class Taken:
    """A download a worker took: run it with ``token`` under ``claim``.

    ``wake``: a parked worker to wake (tell it ``Take``), because more
    downloads wait than workers are awake to take them. ``earlier``: the
    highest claim of the download an earlier keeper recorded (0: none).
    """

    record: DownloadRecord
    token: CancelToken
    claim: int
    wake: str | None
    earlier: int = 0


class _Retire:
    """What ``take`` returns to a worker above the concurrency limit."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RETIRE"


RETIRE = _Retire()


def worker_index(worker: str) -> int:
    """The index of a worker named ``source:NAME.worker-INDEX``."""
    return int(worker.rsplit("-", 1)[1])


class RunBoard:
    """The downloads of one source waiting for a worker, and those running."""

    def __init__(self, concurrency: int, delay: float) -> None:
        self._lock = threading.Lock()
        self._limit = concurrency
        self._delay = delay
        self._open = False  # the queue has the keeper's answer: limits and pending records
        self._pending: deque[DownloadRecord] = deque()
        self._claims: dict[str, int] = {}  # pending download id -> its run's fencing token
        self._earlier: dict[str, int] = {}  # pending download id -> Taken.earlier (if not 0)
        # download id -> (record, front, claim, earlier), to queue once its running run ended
        self._later: dict[str, tuple[DownloadRecord, bool, int, int]] = {}
        self._tokens: dict[str, CancelToken] = {}  # running download id -> token
        self._run_claims: dict[str, int] = {}  # running download id -> its run's claim
        self._busy: dict[str, str] = {}  # worker -> the download id it runs
        # running download id -> its worker, whose incarnation that runs it was
        # abandoned (its successor started): not counted against the limit
        self._orphans: dict[str, str] = {}
        self._parked: dict[str, None] = {}  # idle workers, oldest first (an ordered set)
        self._waiter: str | None = None  # the worker waiting out the delay on a timer
        self._next_start = float("-inf")
        self._started = 0
        # The keeper's claim view, from its answer (None: runs ask the keeper).
        # Replaced whole by the queue's thread; read by the workers.
        self.claim_view: ClaimView | None = None

    # -- the queue actor's side ---------------------------------------------------
    def reset(self) -> None:
        """Forget what waits (a new queue incarnation refills it from the keeper)."""
        with self._lock:
            self._open = False
            self._pending.clear()
            self._claims.clear()
            self._earlier.clear()
            self._later.clear()
            self._waiter = None
            self._next_start = float("-inf")

    def open(
        self,
        concurrency: int,
        delay: float,
        now: float,
        records: Iterable[tuple[DownloadRecord, int]],
        claim_view: ClaimView | None = None,
        *,
        earlier: Mapping[str, int] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Take the keeper's answer: the limits, the pending records in order, the claim view.

        ``earlier``: the records' earlier claims (see ``Taken``), where not 0.
        Returns the parked workers to wake and those to retire (above the limit).
        """
        earlier = earlier or {}
        with self._lock:
            self._open = True
            self.claim_view = claim_view
            retire = self._configure(concurrency, delay, now)
            for record, claim in records:
                self._enqueue(record, front=False, claim=claim, earlier=earlier.get(record.id, 0))
            return self._wakes(), retire

    def configure(self, concurrency: int, delay: float, now: float) -> tuple[list[str], list[str]]:
        """New limits. Returns the workers to wake and the parked ones to retire."""
        with self._lock:
            retire = self._configure(concurrency, delay, now)
            return self._wakes(), retire

    def put(
        self, record: DownloadRecord, *, front: bool = False, claim: int = 0, earlier: int = 0
    ) -> list[str]:
        """Queue one download (``front``: it was interrupted). Returns workers to wake."""
        with self._lock:
            if not self._open:
                return []  # sent before the keeper's answer, which covers it
            self._enqueue(record, front=front, claim=claim, earlier=earlier)
            return self._wakes()

    def put_many(
        self,
        records: Iterable[tuple[DownloadRecord, int]],
        earlier: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Queue new downloads at the back, in order. Returns workers to wake."""
        earlier = earlier or {}
        with self._lock:
            if not self._open:
                return []
            for record, claim in records:
                self._enqueue(record, front=False, claim=claim, earlier=earlier.get(record.id, 0))
            return self._wakes()

    def withdraw(self, download_id: str, reason: str) -> None:
        """Drop a waiting download, or cancel its run with ``reason``."""
        with self._lock:
            if not self._open:
                return
            self._later.pop(download_id, None)
            self._earlier.pop(download_id, None)
            if self._claims.pop(download_id, None) is not None:
                self._pending = deque(r for r in self._pending if r.id != download_id)
                return
            token = self._tokens.get(download_id)
        if token is not None:
            token.cancel(reason)

    def running(self) -> tuple[tuple[str, int], ...]:
        """The runs on the board now, as ``(download id, claim)``, orphans included."""
        with self._lock:
            return tuple(self._run_claims.items())

    def workers(self) -> set[str]:
        """The workers the board knows (parked or running)."""
        with self._lock:
            return set(self._parked) | set(self._busy)

    def forget(self, worker: str) -> None:
        """A worker the queue could not wake (it is gone): no longer parked."""
        with self._lock:
            self._parked.pop(worker, None)

    def lost(self, worker: str) -> list[str]:
        """``worker`` failed or was killed: it takes nothing until its restart.

        It no longer counts as parked or as the one waiting out the delay
        (a killed thread runs no ``leave``). Returns the workers to wake:
        others, for the downloads it would have taken, and the worker
        itself (its successor, if already parked, takes again; a dead one
        gets the ``Take`` after its restart, or never, which loses nothing).
        """
        with self._lock:
            self._parked.pop(worker, None)
            if self._waiter == worker:
                self._waiter = None
            wakes = self._wakes()
            return [*wakes, worker] if worker not in wakes else wakes

    @property
    def limit(self) -> int:
        """The concurrency limit now (one read: no lock needed)."""
        return self._limit

    @property
    def delay(self) -> float:
        """The delay between starts now (one read: no lock needed)."""
        return self._delay

    def snapshot(self) -> dict[str, Any]:
        """The numbers the queue's health shows."""
        with self._lock:
            return {
                "queued": len(self._pending),
                "running": len(self._busy),
                "orphans": len(self._orphans),  # runs of abandoned workers, not counted
                "concurrency": self._limit,
                "delay": self._delay,
                "started": self._started,
                "attached": self._open,
            }

    # -- the workers' side -----------------------------------------------------------------
    def join(self, worker: str) -> None:
        """A worker (re)started. A run its predecessor still has going (the
        predecessor was abandoned) becomes an orphan: see the module docstring."""
        with self._lock:
            self._parked.pop(worker, None)
            if self._waiter == worker:
                self._waiter = None
            download_id = self._busy.pop(worker, None)
            if download_id is not None:
                self._orphans[download_id] = worker

    def take(
        self, worker: str, now: float, new_token: Callable[[], CancelToken]
    ) -> Taken | float | _Retire | None:
        """The next download for ``worker``, or why there is none.

        Returns a ``Taken``; or the seconds to wait before asking again (the
        delay; the worker schedules its own ``Take``); or ``RETIRE`` (the
        worker is above the concurrency limit); or None: the worker is
        parked until a put wakes it.
        """
        with self._lock:
            return self._take(worker, now, new_token)

    def done(self, worker: str, download_id: str) -> list[str]:
        """``worker`` ended its run of ``download_id`` (whatever the outcome).

        Returns the workers to wake: none for a worker that goes on taking
        (it takes what its run held back itself); for an orphan, whose
        thread takes nothing more, the parked ones that can take it.
        """
        with self._lock:
            return self._done(worker, download_id)

    def done_and_take(
        self, worker: str, download_id: str, now: float, new_token: Callable[[], CancelToken]
    ) -> tuple[list[str], Taken | float | _Retire | None]:
        """``done`` then ``take`` under one hold of the lock (a worker going on
        to its next download). Returns what each returns; an orphan (see
        ``join``) takes nothing: None, and it is not parked either."""
        with self._lock:
            orphan = self._orphans.get(download_id) == worker
            wakes = self._done(worker, download_id)
            return wakes, None if orphan else self._take(worker, now, new_token)

    def leave(self, worker: str) -> str | None:
        """``worker`` stops: no longer parked. Returns a worker to wake in its place.

        The worker wakes that one only when it alone goes (retired above
        the limit): when its source stops, the others stop too.
        """
        with self._lock:
            self._parked.pop(worker, None)
            if self._waiter == worker:
                self._waiter = None
            # It may have been woken for a download it will now not take,
            # or its run kept another from starting (above a lowered limit).
            if self._open and self._pending and self._parked and self._free() > 0:
                wake = next(iter(self._parked))
                del self._parked[wake]
                return wake
            return None

    # -- under the lock -------------------------------------------------------------------
    def _take(
        self, worker: str, now: float, new_token: Callable[[], CancelToken]
    ) -> Taken | float | _Retire | None:
        self._parked.pop(worker, None)
        if self._waiter == worker:
            self._waiter = None
        if self._open and worker_index(worker) > self._limit:
            return RETIRE
        if not (self._open and self._pending) or len(self._busy) >= self._limit:
            # Nothing to take, or the limit is reached (it was lowered
            # while more ran): a run that ends wakes a parked worker.
            self._parked[worker] = None
            return None
        if now < self._next_start:
            if self._waiter is None:
                self._waiter = worker
                return self._next_start - now
            self._parked[worker] = None
            return None
        record = self._pending.popleft()
        claim = self._claims.pop(record.id)
        earlier = self._earlier.pop(record.id, 0)
        token = new_token()
        self._tokens[record.id] = token
        self._run_claims[record.id] = claim
        self._busy[worker] = record.id
        self._next_start = now + self._delay
        self._started += 1
        wake = None
        if self._pending and self._parked and self._waiter is None and self._free() > 0:
            wake = next(iter(self._parked))
            del self._parked[wake]
        return Taken(record, token, claim, wake, earlier)

    def _done(self, worker: str, download_id: str) -> list[str]:
        orphan = self._orphans.pop(download_id, None) == worker
        if not orphan and self._busy.get(worker) == download_id:
            del self._busy[worker]
        self._tokens.pop(download_id, None)
        self._run_claims.pop(download_id, None)
        released = self._release_later(download_id)
        return self._wakes() if orphan and released else []

    def _enqueue(self, record: DownloadRecord, *, front: bool, claim: int, earlier: int) -> None:
        download_id = record.id
        if download_id in self._claims:
            # Queued already (a repeat after a restart): the newest claim wins.
            if claim > self._claims[download_id]:
                self._claims[download_id] = claim
                self._keep_earlier(download_id, earlier)
            return
        if download_id in self._tokens:
            # A new claim of a download whose earlier run has not ended yet
            # (the keeper heard first): it waits for that run, never runs
            # beside it, and is never dropped.
            self._later[download_id] = (record, front, claim, earlier)
            return
        self._claims[download_id] = claim
        self._keep_earlier(download_id, earlier)
        if front:
            self._pending.appendleft(record)
        else:
            self._pending.append(record)

    def _keep_earlier(self, download_id: str, earlier: int) -> None:
        if earlier:
            self._earlier[download_id] = earlier
        else:
            self._earlier.pop(download_id, None)

    def _release_later(self, download_id: str) -> bool:
        """Queue the claim that waited for ``download_id``'s run; True if there was one."""
        later = self._later.pop(download_id, None)
        if later is None:
            return False
        record, front, claim, earlier = later
        self._enqueue(record, front=front, claim=claim, earlier=earlier)
        return True

    def _wakes(self) -> list[str]:
        """Unpark as many workers as there are downloads for them (one with a delay)."""
        if not (self._open and self._pending and self._parked) or self._waiter is not None:
            return []
        count = min(len(self._pending), len(self._parked), self._free())
        if self._delay > 0:
            count = min(count, 1)
        wakes: list[str] = []
        for worker in list(self._parked):
            if len(wakes) == count:
                break
            if worker_index(worker) <= self._limit:
                del self._parked[worker]
                wakes.append(worker)
        return wakes

    def _free(self) -> int:
        """How many more runs the limit allows now."""
        return self._limit - len(self._busy)

    def _configure(self, concurrency: int, delay: float, now: float) -> list[str]:
        self._limit = concurrency
        self._delay = delay
        if self._next_start > now + delay:
            self._next_start = now + delay
            if self._waiter is not None:  # its timer is for the old delay: wake it now
                self._parked[self._waiter] = None
                self._waiter = None
        retire = [w for w in self._parked if worker_index(w) > concurrency]
        for worker in retire:
            del self._parked[worker]
        return retire
