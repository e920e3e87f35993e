"""A source's queue actor: hands the keeper's downloads to the source's workers.

The downloads wait on the source's ``RunBoard`` (see ``board``), which the
workers take from directly: a worker that finished a download takes the
next one without a message to this actor. This actor turns the keeper's
messages into board operations and wakes parked workers (``Take``); the
board keeps the FIFO, the claims, the delay and the concurrency limit.

Threads: runs on its own thread and only tells: workers, the keeper and its
supervisor (to add or retire workers when ``concurrency`` changes; a
worker above the limit asks this actor, never the supervisor, so every
stop and start of a worker is told from this thread, in order). At each
start it tells the keeper ``Attach`` (with the runs still on the board)
and puts nothing on the board until the answer (``Attached``: its limits
and the pending records, so a restarted queue loses nothing) has come.
It never waits for the keeper:
the keeper and the source share a supervisor, and a start blocked on a
keeper that has just failed would hold that supervisor up until the start
timed out, again and again under repeated faults.

Failures: a worker that failed or was killed (``ChildFailed``, which this
actor subscribes to) is taken off the board's parked workers and the
others are woken for what waits. A restart of the queue empties the
board's FIFO and rebuilds it from the keeper; claims are atomic in the
keeper, so a download queued twice still runs once. What reached the
mailbox before the answer (queued for an earlier incarnation) is covered
by the answer and ignored.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from regisseur.actors.actor import Actor
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads.board import worker_index
from regisseur.actors.errors import ActorStoppedError, UnknownActorError, describe_error
from regisseur.messages import ChildFailed
from regisseur.supervision.protocol import Spawn, StopChild
from regisseur.supervision.spec import ChildSpec

if TYPE_CHECKING:
    from regisseur.actors.downloads.board import RunBoard
    from regisseur.actors.downloads.source import DownloadSource
    from regisseur.actors.events import Subscription
    from regisseur.actors.system import ActorSystem
    from regisseur.messages.downloads import DownloadRecord

__all__ = ["QueueActor", "wake_workers", "worker_spec"]

_DRAIN_TIMEOUT = 2.0  # seconds the final stop waits for the keeper (see on_incarnation_end)


def worker_spec(source: DownloadSource, index: int, board: RunBoard) -> ChildSpec:
    """The spec of the source's ``index``-th worker, taking from ``board``."""
    from regisseur.actors.downloads.worker import WorkerActor

    return ChildSpec(
        p.worker_name(source.name, index),
        WorkerActor,
        args=(source, board),
        depends_on=(p.queue_name(source.name),),
        description=f"download worker {index} of source {source.name!r}",
    )


def wake_workers(system: ActorSystem, board: RunBoard, workers: list[str]) -> None:
    """Tell each of ``workers`` to take from ``board``; one that is gone is forgotten.

    Any thread (the queue's, or a worker's handing its wake-up on).
    """
    for worker in workers:
        try:
            system.tell(worker, p.TAKE)
        except UnknownActorError:  # retired meanwhile
            board.forget(worker)


def _earlier(records: tuple[DownloadRecord, ...], earlier: tuple[int, ...]) -> dict[str, int]:
    """The records' earlier claims that are not 0, by download id."""
    if not earlier:
        return {}
    return {r.id: e for r, e in zip(records, earlier, strict=True) if e}


class QueueActor(Actor):
    """Feeds one download source's run board from the keeper."""

    def __init__(self, source: DownloadSource, board: RunBoard) -> None:
        super().__init__()
        self._source = source
        self._board = board
        self._concurrency = source.concurrency
        # Workers this queue asked the supervisor to stop: a Spawn of one of
        # them, told after that StopChild, starts it again once it stopped.
        self._retiring: set[str] = set()
        self._token = uuid.uuid4().hex  # this incarnation's Attach
        self._worker_prefix = p.worker_name(source.name, 0)[:-1]  # "source:NAME.worker-"

    def on_start(self) -> None:
        self._board.reset()
        # A killed worker runs no hook: its death comes as an event. The
        # subscription outlives a killed incarnation of this actor (no
        # on_stop ran): the next one keeps it instead of adding another.
        if "deaths" not in self.kept_state:
            self.kept_state["deaths"] = self.system.events.subscribe(self.actor_ref, ChildFailed)
        running = self._board.running()  # runs an abandoned worker still has going
        self.system.tell(p.KEEPER, p.Attach(self._source.name, self._token, running))

    def on_stop(self) -> None:
        subscription: Subscription | None = self.kept_state.pop("deaths", None)
        if subscription is not None:
            subscription.cancel()

    def on_incarnation_end(self, *, final: bool) -> None:
        """At the source's final stop: let the keeper handle its workers' last reports.

        The workers stopped before this actor (they depend on it); what
        they told the keeper last (a start, a result, a release) may still
        wait in its mailbox, and the keeper, stopped after the sources,
        would drop it (a stop overtakes queued messages): a download that
        ended would run again at the next start. An ask behind those
        reports returns once the keeper has handled and stored them;
        bounded by ``_DRAIN_TIMEOUT`` (a keeper that does not answer, being
        restarted, say, only costs that wait). Not at a restart: a queue
        restarted with the keeper must not wait for it.
        """
        if not final:
            return
        try:
            self.system.ask(p.KEEPER, p.ListSources(), timeout=_DRAIN_TIMEOUT)
        except (ActorStoppedError, UnknownActorError, TimeoutError) as exc:
            self.log.info("download_reports_not_confirmed", error=describe_error(exc))

    def health(self) -> dict[str, Any]:
        return self._board.snapshot()

    def on_receive(self, message: Any) -> Any:
        board = self._board
        if isinstance(message, p.EnqueueMany):
            pairs = zip(message.records, message.claims, strict=True)
            self._wake(board.put_many(pairs, _earlier(message.records, message.earlier)))
        elif isinstance(message, p.Enqueue):
            self._wake(
                board.put(
                    message.record,
                    front=message.front,
                    claim=message.claim,
                    earlier=message.earlier,
                )
            )
        elif isinstance(message, p.Withdraw):
            board.withdraw(message.id, message.reason)
        elif isinstance(message, p.Retire):
            self._on_retire(message.worker)
        elif isinstance(message, ChildFailed):
            if message.name.startswith(self._worker_prefix):
                self._wake(board.lost(message.name))
        elif isinstance(message, p.Attached):
            if message.token == self._token:  # else the answer to an earlier incarnation
                self._on_attached(message)
        elif isinstance(message, p.SourceConfig):
            self._apply_config(message.concurrency, message.delay)
        elif isinstance(message, p.Applied):
            return True  # the mailbox is FIFO: the keeper's limits before it are applied
        elif isinstance(message, p.Configure):
            self._apply_config(
                message.concurrency if message.concurrency is not None else board.limit,
                message.delay if message.delay is not None else board.delay,
            )
        else:
            return super().on_receive(message)
        return None

    def _on_attached(self, message: p.Attached) -> None:
        claims = message.claims or (0,) * len(message.records)
        config = message.config
        wake, retire = self._board.open(
            config.concurrency,
            config.delay,
            self.system.clock.now(),
            zip(message.records, claims, strict=True),
            message.view,
            earlier=_earlier(message.records, message.earlier),
        )
        self._grow(config.concurrency)
        self._retire(retire)
        self._wake(wake)

    def _apply_config(self, concurrency: int, delay: float) -> None:
        wake, retire = self._board.configure(concurrency, delay, self.system.clock.now())
        self._grow(concurrency)
        self._retire(retire)
        self._wake(wake)

    # -- workers -----------------------------------------------------------------
    def _wake(self, workers: list[str]) -> None:
        wake_workers(self.system, self._board, workers)

    def _grow(self, concurrency: int) -> None:
        """Start the workers up to ``concurrency`` that do not run yet.

        A worker this queue asked to stop is started again even if it is
        still registered: the supervisor handles that ``StopChild`` first
        (both come from this thread), so the ``Spawn`` finds its name free.
        """
        if concurrency <= self._concurrency:
            self._concurrency = concurrency
            return
        self._concurrency = concurrency
        known = self._board.workers()
        for index in range(1, concurrency + 1):
            name = p.worker_name(self._source.name, index)
            if name in self._retiring or (
                name not in known and self.system.registry.find(name) is None
            ):
                self._retiring.discard(name)
                self._tell_supervisor(Spawn(worker_spec(self._source, index, self._board)))

    def _retire(self, workers: list[str]) -> None:
        for worker in workers:
            self._retiring.add(worker)
            self._tell_supervisor(StopChild(worker))

    def _on_retire(self, worker: str) -> None:
        """A worker above the limit left the board: stop it, unless the limit grew since."""
        if worker_index(worker) > self._board.limit:
            self._retire([worker])
        else:
            self._wake([worker])

    def _tell_supervisor(self, message: object) -> None:
        """Ask the source's supervisor to add or retire a worker (no waiting)."""
        try:
            self.system.tell(p.source_supervisor(self._source.name), message)
        except UnknownActorError:
            pass
