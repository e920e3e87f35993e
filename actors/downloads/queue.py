"""A source's queue actor: a FIFO of pending downloads, fed to its workers.

At most ``concurrency`` downloads of the source run at once (one per free
worker), and two starts are at least ``delay`` apart on the system clock;
the delay is kept with a timer, never by sleeping in the mailbox.

The starts of one burst of messages are told when the burst is over: the
keeper first (one ``ClaimMany``, or a ``ClaimDownload`` for a single start),
then each worker its ``Run``, so the keeper always hears of a start before
its result, and hears of several starts in one message.

Threads: runs on its own thread and only tells: workers, the keeper and its
supervisor (to add or retire workers when ``concurrency`` changes). At each
start it tells the keeper ``Attach`` and starts nothing until the answer
(``Attached``: its limits and the pending records, so a restarted queue
loses nothing) has come. It never waits for the keeper: the keeper and the
source share a supervisor, and a start blocked on a keeper that has just
failed would hold that supervisor up until the start timed out, again and
again under repeated faults.

Failures: a restart of the queue rebuilds its FIFO from the keeper; claims
are atomic in the keeper, so a download queued twice still runs once. What
reached the mailbox before the answer (queued for an earlier incarnation)
is covered by the answer and ignored.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from regisseur.actors.actor import Actor
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads.context import CancelToken
from regisseur.actors.errors import UnknownActorError
from regisseur.messages.downloads import ClaimDownload
from regisseur.supervision.protocol import Spawn, StopChild
from regisseur.supervision.spec import ChildSpec

if TYPE_CHECKING:
    from regisseur.actors.clock import TimerHandle
    from regisseur.actors.downloads.source import DownloadSource
    from regisseur.messages.downloads import DownloadRecord

__all__ = ["QueueActor", "worker_spec"]


def worker_spec(source: DownloadSource, index: int) -> ChildSpec:
    """The spec of the source's ``index``-th worker."""
    from regisseur.actors.downloads.worker import WorkerActor

    return ChildSpec(
        p.worker_name(source.name, index),
        WorkerActor,
        args=(source,),
        depends_on=(p.queue_name(source.name),),
        description=f"download worker {index} of source {source.name!r}",
    )


class QueueActor(Actor):
    """The FIFO and the limits of one download source."""

    def __init__(self, source: DownloadSource) -> None:
        super().__init__()
        self._source = source
        self._concurrency = source.concurrency
        self._delay = source.delay
        self._queue: deque[DownloadRecord] = deque()
        self._queued: set[str] = set()
        self._free: deque[str] = deque()
        self._busy: dict[str, str] = {}  # worker -> download id
        self._tokens: dict[str, CancelToken] = {}  # download id -> token
        self._claims: dict[str, int] = {}  # queued download id -> its run's fencing token
        # download id -> (record, front, claim) to queue once its running run ended
        self._later: dict[str, tuple[DownloadRecord, bool, int]] = {}
        self._next_start = float("-inf")
        self._pump_timer: TimerHandle | None = None
        self._started_count = 0
        self._token = uuid.uuid4().hex  # this incarnation's Attach
        self._attached = False
        # Starts made during this burst: told (claims first) when it is over.
        self._starts: list[tuple[ClaimDownload, p.Run]] = []

    def on_start(self) -> None:
        self.system.tell(p.KEEPER, p.Attach(self._source.name, self._token))

    def on_mailbox_drained(self) -> None:
        """The burst is over: tell the keeper its starts in one message, then the workers."""
        self._send_starts()

    def on_stop(self) -> None:
        self._send_starts()  # a stop overtakes the drain: the workers get them anyway

    def _on_attached(self, message: p.Attached) -> None:
        if message.token != self._token:
            return  # the answer to an earlier incarnation's Attach
        self._attached = True
        self._apply_config(message.config)
        claims = message.claims or (0,) * len(message.records)
        for record, claim in zip(message.records, claims, strict=True):
            self._enqueue(record, front=False, claim=claim)

    def health(self) -> dict[str, Any]:
        return {
            "queued": len(self._queue),
            "running": len(self._busy),
            "concurrency": self._concurrency,
            "delay": self._delay,
            "started": self._started_count,
            "attached": self._attached,
        }

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (p.WorkerIdle, p.WorkerReady)):  # once per download: first
            self._worker_free(message)
        elif isinstance(message, (p.Enqueue, p.EnqueueMany, p.Withdraw)):
            if not self._attached:
                return None  # sent before the keeper's answer, which covers it
            if isinstance(message, p.Enqueue):
                self._enqueue(message.record, front=message.front, claim=message.claim)
            elif isinstance(message, p.EnqueueMany):
                for record, claim in zip(message.records, message.claims, strict=True):
                    self._enqueue(record, front=False, claim=claim)
            else:
                self._withdraw(message.id, message.reason)
        elif isinstance(message, p.Attached):
            self._on_attached(message)
        elif isinstance(message, p.Pump):
            self._pump_timer = None
        elif isinstance(message, p.SourceConfig):
            self._apply_config(message)
        elif isinstance(message, p.Configure):
            self._apply_config(
                p.SourceConfig(
                    message.concurrency if message.concurrency is not None else self._concurrency,
                    message.delay if message.delay is not None else self._delay,
                )
            )
        else:
            return super().on_receive(message)
        self._pump()
        return None

    # -- the queue -------------------------------------------------------------
    def _enqueue(self, record: DownloadRecord, *, front: bool, claim: int = 0) -> None:
        if record.id in self._queued:
            # Queued already (a repeat after a restart): the newest claim wins.
            self._claims[record.id] = max(claim, self._claims.get(record.id, 0))
            return
        if record.id in self._tokens:
            # A new claim of a download whose earlier run has not told us it
            # ended yet (the keeper heard first): it starts once that run
            # ended, never beside it, and is never dropped.
            self._later[record.id] = (record, front, claim)
            return
        self._claims[record.id] = claim
        self._queued.add(record.id)
        if front:
            self._queue.appendleft(record)
        else:
            self._queue.append(record)

    def _withdraw(self, download_id: str, reason: str) -> None:
        self._later.pop(download_id, None)
        if download_id in self._queued:
            self._queued.discard(download_id)
            self._claims.pop(download_id, None)
            self._queue = deque(r for r in self._queue if r.id != download_id)
            return
        token = self._tokens.get(download_id)
        if token is not None:
            token.cancel(reason)

    def _pump(self) -> None:
        """Start queued downloads on free workers, keeping the delay."""
        queue, free = self._queue, self._free
        if not (queue and free):
            return
        now_of = self.system.clock.now
        # Cluster mode: the token also reads as cancelled once the node's
        # lease guard ran out (a process waking from a freeze).
        cluster = self.system.cluster
        while queue and free:
            now = now_of()
            if now < self._next_start:
                if self._pump_timer is None:
                    self._pump_timer = self.schedule(self._next_start - now, p.Pump())
                return
            record = queue.popleft()
            self._queued.discard(record.id)
            claim = self._claims.pop(record.id, 0)
            worker = free.popleft()
            token = CancelToken() if cluster is None else cluster.new_token()
            self._tokens[record.id] = token
            self._busy[worker] = record.id
            self._next_start = now + self._delay
            self._started_count += 1
            self._starts.append(
                (ClaimDownload(record.id, worker, claim), p.Run(record, token, claim))
            )

    def _send_starts(self) -> None:
        """Tell the keeper the burst's starts (one message), then each worker its run.

        The keeper hears of a start before the worker can report a result:
        both go through the keeper's mailbox in this order. A worker retired
        meanwhile gets nothing: its download goes back to the keeper.
        """
        if not self._starts:
            return
        starts, self._starts = self._starts, []
        if len(starts) == 1:
            self.system.tell(p.KEEPER, starts[0][0])
        else:
            self.system.tell(p.KEEPER, p.ClaimMany(tuple(claim for claim, _run in starts)))
        for claim, run in starts:
            try:
                self.system.tell(claim.worker, run)
            except UnknownActorError:  # retired meanwhile: put it back
                self.system.tell(p.KEEPER, p.Released(claim.id, claim.worker, run.claim))
                self._busy.pop(claim.worker, None)
                self._tokens.pop(claim.id, None)
                self._next_start = self.system.clock.now()

    # -- workers -----------------------------------------------------------------
    def _worker_free(self, message: p.WorkerReady | p.WorkerIdle) -> None:
        worker = message.worker
        download_id = self._busy.pop(worker, None)
        if download_id is not None:
            self._tokens.pop(download_id, None)
            later = self._later.pop(download_id, None)
            if later is not None:
                record, front, claim = later
                self._enqueue(record, front=front, claim=claim)
        if worker in self._free:
            return
        # Before the keeper's answer the limit is not known yet: the answer
        # retires what is beyond it (see _apply_config).
        if self._attached and self._index(worker) > self._concurrency:
            self._tell_supervisor(StopChild(worker))
            return
        self._free.append(worker)

    def _apply_config(self, config: p.SourceConfig) -> None:
        self._delay = config.delay
        grown = config.concurrency > self._concurrency
        self._concurrency = config.concurrency
        if grown:
            known = set(self._free) | set(self._busy)
            for index in range(1, self._concurrency + 1):
                name = p.worker_name(self._source.name, index)
                if name not in known and self.system.registry.find(name) is None:
                    self._tell_supervisor(Spawn(worker_spec(self._source, index)))
        for worker in [w for w in self._free if self._index(w) > self._concurrency]:
            self._free.remove(worker)
            self._tell_supervisor(StopChild(worker))
        if self._next_start > self.system.clock.now() + self._delay:
            self._next_start = self.system.clock.now() + self._delay
            if self._pump_timer is not None:
                self._pump_timer.cancel()
                self._pump_timer = None

    def _index(self, worker: str) -> int:
        return int(worker.rsplit("-", 1)[1])

    def _tell_supervisor(self, message: object) -> None:
        """Ask the source's supervisor to add or retire a worker (no waiting)."""
        try:
            self.system.tell(p.source_supervisor(self._source.name), message)
        except UnknownActorError:
            pass
