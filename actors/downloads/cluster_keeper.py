"""The state-keeper in cluster mode: one per node, over one shared table.

What changes against the single-node keeper (``KeeperActor``):

- ``submit`` stores the record queued and free (no owner) and announces
  it; any node with that source may claim it.
- A node claims free downloads for its own sources, at most as many as
  its ``concurrency`` has room for (and within a source's
  ``cluster_limit``), with row locks that skip rows other nodes hold: a
  download is started by exactly one node. Claims run when a commit freed
  room, when another node announced a submit or a release, when nodes
  were reaped, and every ``poll_interval`` as a safety net.
- Only downloads this node owns are kept in memory; every write is
  conditional on still owning the row (see ``cluster_store``). A write
  that finds the row cancelled elsewhere, or taken over after this node's
  lease lapsed, drops the local copy and cancels the local run.
- ``cancel`` works on any node: the row is cancelled in the database and
  the owner hears of it through LISTEN/NOTIFY (within a fraction of a
  second) and cancels its run.
- Every committed state change is announced; the other nodes publish it
  to their own subscribers, so ``wait`` and ``subscribe`` see every node's
  downloads (progress events stay on the node that runs the download).
- A clean stop gives the node's unfinished downloads back to the queue.
- Fencing: when the node's lease guard runs out (``NodeFenced``: the
  database was unreachable, or the process was frozen, for most of a
  lease) the keeper claims nothing and stops every running download of
  this node with the reason ``"fenced"``; a run that ends meanwhile writes
  nothing but a success it had published before the fence (conditional
  on still owning the row, like every write). Downloads that were only
  queued are dropped from memory (they stay this node's in the table).
  When the lease is renewed (``NodeUnfenced``) the keeper first stores
  what it still holds, then takes its rows back (those another node did
  not take over meanwhile) and runs them again. A download whose old run
  is still going is never claimed or taken back until that run ended.
- Reads (``status``, ``list``, notices) roll back after a failure; the
  keeper reports the database unhealthy until a statement succeeds again
  (probed every ``poll_interval``).

Threads: everything here runs on the keeper's own thread; notices arrive
as ``ClusterNote`` messages from the node's listener thread.

Failures: as the single-node keeper (a failed commit is retried every
``flush_interval``, the keeper unhealthy meanwhile); a failed claim is
logged and retried at the next poll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads import cluster_store, store
from regisseur.actors.downloads.errors import UnknownDownloadError
from regisseur.actors.downloads.keeper import KeeperActor
from regisseur.actors.errors import describe_error
from regisseur.messages.cluster import NodeFenced, NodeUnfenced
from regisseur.messages.downloads import (
    CancelDownload,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    QueueDownload,
)

if TYPE_CHECKING:
    from regisseur.actors.downloads.claim_view import ClaimView
    from regisseur.actors.events import Subscription

__all__ = ["KEEPER", "ClusterKeeperActor", "ClusterNote"]

KEEPER = p.KEEPER
"""The keeper's actor name: where the node's listener sends a :class:`ClusterNote`."""


@dataclass(frozen=True, slots=True)
class ClusterNote:
    """From the listener: a change announced by a node (None: look again)."""

    channel: str
    payload: str | None


@dataclass(frozen=True, slots=True)
class _Poll:
    """Timer: look for free downloads of this node's sources."""


class ClusterKeeperActor(KeeperActor):
    """Owns this node's downloads in a shared table; see the module docstring."""

    def __init__(
        self,
        initial_sources: tuple[p.AddSource, ...],
        history: int,
        flush_interval: float,
        node_id: str,
        poll_interval: float,
    ) -> None:
        super().__init__(initial_sources, history, flush_interval)
        self._node = node_id
        self._poll_interval = poll_interval
        # Submitted, stored free at the next commit (by id, in submit order).
        # Until then the submit exists only here: lookups, lists and
        # cancels read it from memory (see _lookup).
        self._inserts: dict[str, DownloadRecord] = {}
        self._claim_wanted: set[str] = set()
        self._lease_fenced = False
        self._stopping: set[str] = set()  # runs stopped by a fence, not ended yet
        self._take_back = False  # after a fence: take this node's rows back
        self._db_error: str | None = None  # the last failed statement, until one succeeds
        self._fence_subscription: Subscription | None = None
        # The fencing token of this node's claim of each download it holds
        # (the table's claim column); every write is conditional on it.
        self._tokens: dict[str, int] = {}
        # Ended downloads this node reopened (retry), until a notice of their
        # next end: a notice of the end before the reopening may still come.
        self._retried: set[str] = set()
        self.claimed = 0
        self.lost = 0
        self.fences = 0

    # -- lifecycle -------------------------------------------------------------
    def on_start(self) -> None:
        self._fence_subscription = self.system.events.subscribe(
            self.actor_ref, NodeFenced, NodeUnfenced
        )
        super().on_start()
        cluster = self.system.cluster
        if cluster is not None and cluster.lease.fenced:
            self._fence()  # fenced before this keeper (re)started

    def _load(self) -> None:
        """Take back what this node owned before a restart of the keeper.

        Each is claimed anew (a fresh token: a run of the keeper before the
        restart can write nothing more). Downloads of sources this node no
        longer has go back to the queue.
        """
        self._limit_idle_transactions()
        mine = cluster_store.take_back(self.connection, self._node)  # claimed anew
        foreign = [c.record.id for c in mine if c.record.source not in self._sources]
        if foreign:
            cluster_store.give_back(self.connection, foreign)
        self.connection.commit()
        for claimed in mine:
            if claimed.record.source in self._sources:
                self._hold(claimed)
        self._claim_wanted.update(self._sources)
        self.schedule_every(self._poll_interval, _Poll())  # cancelled by the runtime at stop
        self.log.info("downloads_loaded", node=self._node, owned=len(self._live))

    def on_stop(self) -> None:
        if self._fence_subscription is not None:
            self._fence_subscription.cancel()
        super().on_stop()
        if self._lease_fenced:
            return  # what it holds may be another node's by now: the lease decides
        try:
            sources = cluster_store.release_owned(self.connection, self._node)
            for source in sources:
                cluster_store.notify_change_of_source(self.connection, source, self._node)
            self.connection.commit()
        except SQLAlchemyError as exc:
            self._rollback()
            self.log.warning("downloads_release_failed", error=describe_error(exc))

    def health(self) -> dict[str, Any]:
        report = super().health()
        report.update(
            node=self._node,
            claimed=self.claimed,
            lost_to_other_nodes=self.lost,
            fenced=self._lease_fenced,
            times_fenced=self.fences,
            database="ok" if self._db_error is None else f"unreachable: {self._db_error}",
        )
        if self._db_error is not None:
            report["healthy"] = False
        return report

    # -- messages ----------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ClusterNote):
            self._note(message)
        elif isinstance(message, _Poll):
            self._claim_wanted.update(self._sources)
            if self._db_error is not None:
                self._probe()
        elif isinstance(message, p.CheckClaim):
            return self._may_publish(message)
        elif isinstance(message, NodeFenced):
            self._fence()
        elif isinstance(message, NodeUnfenced):
            self._unfence()
        else:
            return super().on_receive(message)
        return None

    def on_mailbox_drained(self) -> None:
        """After the keeper's group commit: take rows back, store submits, claim."""
        super().on_mailbox_drained()
        if self._take_back and not self._lease_fenced and not self.stopping:
            self._commit()
            if not self._unsaved:  # stored what it holds: the rows say the rest
                self._take_back_owned()
        # Submits are stored whatever the lease: a free row is nobody's work.
        if self._inserts or (self._claim_wanted and not self._lease_fenced):
            self._commit()
            if not self.stopping and not self._lease_fenced:
                self._claim()

    # -- the database's health ---------------------------------------------------------
    def _read_failed(self, exc: SQLAlchemyError) -> None:
        """A read failed: end its transaction so the next one starts clean."""
        self._rollback()
        self._db_failed(exc)

    def _db_failed(self, exc: Exception) -> None:
        if self._db_error is None:
            self.log.error("download_database_unreachable", error=describe_error(exc))
        self._db_error = describe_error(exc)

    def _db_ok(self) -> None:
        if self._db_error is not None:
            self.log.warning("download_database_reachable")
            self._db_error = None
            try:
                self._limit_idle_transactions()  # a new connection after the failure
            except SQLAlchemyError as exc:
                self._read_failed(exc)

    def _limit_idle_transactions(self) -> None:
        """Have the server end this keeper's transaction if it is left open for
        half a lease (this process frozen between a write and its commit): the
        row locks it holds would otherwise stop the other nodes from reaping
        this node and taking its downloads over until it wakes. Per session,
        so set again on each new connection; called between transactions."""
        cluster = self.system.cluster
        if cluster is None:
            return
        limit = max(100, int(cluster.settings.lease_ttl * 500))
        self.connection.execute(text(f"SET idle_in_transaction_session_timeout = {limit}"))
        self.connection.commit()

    def _probe(self) -> None:
        """Try the database (``SELECT 1``) while it is marked unreachable."""
        try:
            self.connection.execute(text("SELECT 1"))
            self.connection.rollback()
        except SQLAlchemyError as exc:
            self._read_failed(exc)
            return
        self._db_ok()

    def _find(self, download_id: str) -> DownloadRecord | None:
        try:
            record = super()._find(download_id)
        except SQLAlchemyError as exc:
            self._read_failed(exc)
            raise
        self._db_ok()
        return record

    def _lookup(self, download_id: str) -> DownloadRecord | None:
        # A submit whose row a failed commit left unstored is known here only.
        return self._inserts.get(download_id) or super()._lookup(download_id)

    def _list(self, message: p.ListRecords) -> list[DownloadRecord]:
        try:
            records = super()._list(message)
        except SQLAlchemyError as exc:
            self._read_failed(exc)
            raise
        self._db_ok()
        # Submits not stored yet (the commit before this read failed): the
        # newest records, so listed last.
        listed = {record.id for record in records}
        wanted = set(message.states) if message.states is not None else None
        records += [
            record
            for record in self._inserts.values()
            if record.id not in listed
            and (message.source is None or record.source == message.source)
            and (wanted is None or record.state in wanted)
        ]
        return records

    def _write_failed(
        self,
        exc: Exception,
        staged: dict[str, tuple[DownloadRecord, bool]],
        retried: dict[str, tuple[DownloadRecord, bool]],
    ) -> None:
        super()._write_failed(exc, staged, retried)
        self._db_failed(exc)

    # -- fencing ------------------------------------------------------------------------
    def _fence(self) -> None:
        """The node's lease guard ran out: stop acting as the owner of anything."""
        if self._lease_fenced:
            return
        self._lease_fenced = True
        self.fences += 1
        self._commit()  # what ended before the fence (conditional writes, retried)
        running = 0
        for download_id, record in list(self._live.items()):
            if download_id in self._runner:
                running += 1
                self._stopping.add(download_id)
                self._to_queue(record.source, p.Withdraw(download_id, reason="fenced"))
            else:
                self._forget(download_id)
        self.log.warning("downloads_fenced", node=self._node, stopped=running)

    def _unfence(self) -> None:
        cluster = self.system.cluster
        if not self._lease_fenced or (cluster is not None and cluster.lease.fenced):
            return
        self._lease_fenced = False
        self._take_back = True
        self._claim_wanted.update(self._sources)

    def _take_back_owned(self) -> None:
        """After a fence: run again the rows this node still owns (not running here)."""
        busy = sorted(self._live)
        try:
            taken = cluster_store.take_back(self.connection, self._node, busy)
            foreign = [c.record.id for c in taken if c.record.source not in self._sources]
            if foreign:  # sources this node no longer has: back to the queue
                cluster_store.give_back(self.connection, foreign)
            self.connection.commit()
        except SQLAlchemyError as exc:
            self._rollback()
            self._db_failed(exc)
            self.log.error("downloads_take_back_failed", error=describe_error(exc))
            return
        self._db_ok()
        self._take_back = False
        for claimed in taken:
            if claimed.record.source in self._sources:
                self._hold(claimed)
                self._to_queue(claimed.record.source, p.Enqueue(claimed.record))
        self.log.info("downloads_taken_back", node=self._node, count=len(taken))

    def _hold(self, claimed: cluster_store.Claimed) -> None:
        """Keep a download this node claimed (under the claim's token)."""
        record = claimed.record
        self._live[record.id] = record
        self._tokens[record.id] = claimed.claim
        # The runs of this node number on from the claims before it, as a
        # keeper on one database continues its stored epochs; those claims
        # are an earlier keeper's (another node's, or this node's before a
        # restart or a fence): a run above them may find a file one of them
        # published and never recorded (HttpSource takes that file, not a
        # copy). A first claim (token 1) has none.
        floor = claimed.claim - 1
        if floor > self._claims.get(record.id, 0):
            self._claims[record.id] = floor
        self._note_earlier(record.id, floor)
        if record.state is DownloadState.IN_PROGRESS:
            self._resumable.add(record.id)  # an earlier run started it: resume

    def _lease_valid(self) -> bool:
        cluster = self.system.cluster
        return cluster is None or cluster.lease.valid(self.system.clock.now())

    def _publish_view(self) -> ClaimView | None:
        """None: a run asks ``CheckClaim`` before publishing, which reads the row."""
        return None

    def _may_publish(self, message: p.CheckClaim) -> bool:
        """A run asks, right before it publishes its file, whether it still owns it.

        Yes only if its claim is this keeper's current one, the node's lease
        guard has not run out (else the node fences itself now), the run was
        not stopped by a fence, and the row, read now, is still this node's
        under the token of its claim (else the download is dropped here: it
        was taken over). When the database cannot answer, the guard decides:
        while it holds, no node can have reaped this one.
        """
        download_id = message.id
        if not self._fenced(download_id, message.claim, "publish"):
            return False
        if download_id in self._stopping:
            return False
        if not self._lease_valid():
            self._fence()
            return False
        self._commit()  # no read inside a transaction that holds staged writes
        try:
            row = cluster_store.current_claim(self.connection, download_id)
            self.connection.rollback()
        except SQLAlchemyError as exc:
            self._read_failed(exc)
            return self._lease_valid()
        self._db_ok()
        if row != (self._node, self._tokens.get(download_id), False):
            self.log.warning(
                "download_publish_refused",
                download=download_id,
                claim=message.claim,
                token=self._tokens.get(download_id),
                row=repr(row),
            )
            self._drop([download_id])
            return False
        return self._lease_valid()

    def _finish(self, download_id: str, state: DownloadState, **fields: Any) -> None:
        if download_id in self._stopping and state is not DownloadState.SUCCEEDED:
            # A run stopped by a fence: its end is not this node's to write.
            self._stopped(download_id)
            return
        self._stopping.discard(download_id)
        super()._finish(download_id, state, **fields)

    def _release(self, message: p.Released) -> None:
        if message.id not in self._stopping and not self._lease_valid():
            self._fence()  # the run saw the guard run out before this keeper did
        if message.id in self._stopping:
            self._stopped(message.id)
            return
        super()._release(message)

    def _stopped(self, download_id: str) -> None:
        """A run stopped by a fence ended: forget it; take it back once renewed."""
        self._stopping.discard(download_id)
        self._forget(download_id)
        self.log.info("download_run_fenced", download=download_id)
        if not self._lease_fenced:
            self._take_back = True

    # -- submit and cancel ------------------------------------------------------------
    def _queue(self, message: QueueDownload) -> None:
        record = self._submitted(message)
        if record is None:
            return
        self._inserts[record.id] = record
        self._ack_event(DownloadStateChanged(record, None))
        if record.source in self._sources:
            self._claim_wanted.add(record.source)

    def _keep_at_stop(self, message: QueueDownload) -> None:
        # A free row, as any submit here: whichever node claims it runs it.
        self._queue(message)

    def _retry(self, download_id: str) -> bool:
        """Reopen an ended download as a free row (see ``Downloads.retry``).

        Errored or Cancelled only; False if it has not ended, or if another
        node reopened it first (one conditional write, committed and
        announced before the answer). Like a submit, the row is then free:
        whichever node serves its source claims it (this one too), under a
        claim above every earlier run's. That node's source resumes what an
        earlier run kept where it can see it (``HttpSource``: a ``.part`` in
        its own download directory, or in one the nodes share); elsewhere
        the download starts over. The notice of the end it reopened may still
        be on its way here (read from the table, not from a notice): until
        a notice of its next end, an end notice of it is checked against the
        table (``_note``), as one of a download that runs here is.
        """
        if download_id in self._live or download_id in self._inserts:
            return False
        record = self._retryable(download_id)
        if record is None:
            return False
        reopened = self._reopened(record)
        self._commit()  # nothing staged in the transaction of this write
        try:
            done = cluster_store.reopen_free(self.connection, reopened, record.state)
            if done:
                notice = cluster_store.change_payload(
                    reopened, record.state, self._node, owner=None
                )
                cluster_store.notify_changes(self.connection, [notice])
            self.connection.commit()
        except SQLAlchemyError as exc:
            self._read_failed(exc)
            raise
        self._db_ok()
        self._done.pop(download_id, None)  # reopened, here or by another node: read anew
        if not done:
            return False
        self._retried.add(download_id)
        self._ack_event(DownloadStateChanged(reopened, record.state))
        if reopened.source in self._sources:
            self._claim_wanted.add(reopened.source)
        self.log.info("download_retried", download=download_id, was=record.state.value)
        return True

    def _take_over(self, download_id: str) -> str:
        """Refused: in cluster mode a node whose lease lapsed loses its rows
        to the node that serves their source (see ``claims``), by itself."""
        msg = (
            f"download {download_id!r}: take_over is not available in cluster mode; "
            "a dead node's downloads are taken over once its lease expires"
        )
        raise NotImplementedError(msg)

    def _cancel(self, message: CancelDownload) -> bool:
        if message.id in self._live:
            return super()._cancel(message)
        if message.id in self._inserts:
            return self._cancel_unstored(message)
        reason = None if message.reason == "cancelled" else message.reason
        try:
            before, after, owner = cluster_store.cancel_anywhere(
                self.connection, message.id, reason, self.system.clock.wall()
            )
            if after is not None and before is not None:
                payload = cluster_store.change_payload(after, before.state, self._node, owner=owner)
                cluster_store.notify_changes(self.connection, [payload])
            self.connection.commit()
        except SQLAlchemyError:
            self._rollback()
            raise
        if before is None:
            raise UnknownDownloadError(message.id)
        if after is None:
            return False
        self._remember(after)
        self.system.events.publish(DownloadStateChanged(after, before.state))
        return True

    def _cancel_unstored(self, message: CancelDownload) -> bool:
        """Cancel a submit a failed commit left unstored: its row is stored Cancelled.

        No node can have claimed it (it has no row yet), so the change is
        this keeper's alone; announced, like the submit, once it is stored.
        """
        record = self._inserts[message.id]
        ended = record.evolve(
            state=DownloadState.CANCELLED,
            error=None if message.reason == "cancelled" else message.reason,
            updated_at=self._wall(),
        )
        self._inserts[message.id] = ended
        self._remember(ended)
        self._ack_event(DownloadStateChanged(ended, record.state))
        self._commit()
        return True

    # -- claims ---------------------------------------------------------------------
    def _claim(self) -> None:
        """Claim free downloads for the wanted sources that have room.

        A node keeps up to one batch waiting besides what runs (twice its
        ``concurrency`` in all), so its workers never idle while it claims
        the next; a source with a ``cluster_limit`` claims only what can
        run now, so waiting downloads never hold a share of the limit.
        """
        wanted, self._claim_wanted = self._claim_wanted, set()
        taken: list[cluster_store.Claimed] = []
        here: dict[str, int] = {}
        for record in self._live.values():
            here[record.source] = here.get(record.source, 0) + 1
        wants: dict[str, int] = {}
        limited: dict[str, int] = {}
        for source in sorted(wanted):
            config = self._sources.get(source)
            if config is None:
                continue
            if config.cluster_limit is None:
                wants[source] = 2 * config.concurrency - here.get(source, 0)
            else:
                limited[source] = config.concurrency - here.get(source, 0)
        # A download whose earlier run here has not ended yet (stopped by a
        # fence) is not claimed again until it has: one run at a time.
        busy = sorted(self._live)
        try:
            taken += cluster_store.claim_many(self.connection, self._node, wants, busy)
            for source, room in limited.items():
                limit = self._sources[source].cluster_limit
                if room > 0 and limit is not None:
                    taken += cluster_store.claim(
                        self.connection, source, self._node, room, limit, busy=busy
                    )
            self.connection.commit()
        except SQLAlchemyError as exc:
            self._rollback()
            self._db_failed(exc)
            self.log.error("download_claim_failed", error=describe_error(exc))
            return
        self._db_ok()
        for claimed in taken:
            self.claimed += 1
            self._hold(claimed)
            self._to_queue(claimed.record.source, p.Enqueue(claimed.record))

    # -- writes ----------------------------------------------------------------------
    def _has_writes(self) -> bool:
        return bool(self._staged or self._unsaved or self._inserts)

    def _store_batch(self) -> bool:
        # The token is the claim column, set by the claiming statement: the
        # single-node keeper's per-start writes of it have no place here.
        self._claim_writes.clear()
        staged, self._staged = self._staged, {}
        retried, self._unsaved = self._unsaved, {}
        inserts, self._inserts = self._inserts, {}
        self._claim_writes.clear()  # the base keeper's claim column writes (not used here)
        writes = {**retried, **staged}
        try:
            cluster_store.insert_queued(self.connection, list(inserts.values()))
            lost = cluster_store.write_owned(
                self.connection,
                [record for record, _new in writes.values()],
                self._node,
                self._tokens,
            )
            gone = set(lost)
            changes = [
                e
                for e in self._events
                if isinstance(e, DownloadStateChanged) and e.record.id not in gone
            ]
            notices = [
                cluster_store.change_payload(
                    e.record,
                    e.previous,
                    self._node,
                    owner=None if e.record.terminal or e.previous is None else self._node,
                )
                for e in changes
            ]
            # Progress the change notices do not carry (a flush of progress
            # alone, or a report after the start in the same batch): the
            # other nodes' subscribers hear of it too, once per flush.
            announced = {e.record.id: e.record for e in changes}
            notices += [
                cluster_store.change_payload(
                    record, record.state, self._node, owner=self._node, progress=True
                )
                for record, _new in writes.values()
                if record.id not in gone
                and record.state is DownloadState.IN_PROGRESS
                and announced.get(record.id) != record
            ]
            cluster_store.notify_changes(self.connection, notices)
            self.connection.commit()
        except SQLAlchemyError as exc:
            self._inserts = {**inserts, **self._inserts}
            self._write_failed(exc, staged, retried)
            return False
        self._db_ok()
        if lost:
            self._drop(lost)
        for record, _new in writes.values():
            if record.terminal:
                self._tokens.pop(record.id, None)
                self._claim_wanted.add(record.source)
        return True

    def _drop(self, lost: list[str]) -> None:
        """Forget downloads whose rows another node changed; cancel their runs."""
        for download_id in lost:
            self.lost += 1
            self._stopping.discard(download_id)
            self._forget(download_id)
            self._done.pop(download_id, None)
            try:
                current = store.read_record(self.connection, download_id)
            except SQLAlchemyError as exc:
                self._read_failed(exc)
                current = None
            if current is not None and current.terminal:
                self._remember(current)
            self.log.warning(
                "download_lost_to_other_node",
                download=download_id,
                state=current.state.value if current is not None else None,
            )
        self.connection.rollback()

    def _forget(self, download_id: str) -> None:
        """Drop every local trace of a download this node no longer owns."""
        record = self._live.pop(download_id, None)
        self._current.pop(download_id, None)  # its run, if any, is stale from now on
        self._earlier.pop(download_id, None)
        self._inherited.pop(download_id, None)
        self._tokens.pop(download_id, None)
        self._resumable.discard(download_id)
        self._dirty.discard(download_id)
        self._staged.pop(download_id, None)
        self._unsaved.pop(download_id, None)
        self._unassign(download_id)
        self._events = [
            e
            for e in self._events
            if not (isinstance(e, DownloadStateChanged) and e.record.id == download_id)
        ]
        self._progress_events.pop(download_id, None)
        if record is not None:
            self._to_queue(record.source, p.Withdraw(download_id))
            self._claim_wanted.add(record.source)

    # -- notices from other nodes --------------------------------------------------------
    def _stored(self, download_id: str) -> DownloadRecord | None:
        """The download's row as stored now (None: no row, or the read failed)."""
        self._commit()
        try:
            record = store.read_record(self.connection, download_id)
            self.connection.rollback()
        except SQLAlchemyError as exc:
            self._read_failed(exc)
            self._claim_wanted.update(self._sources)
            return None
        return record

    def _note(self, note: ClusterNote) -> None:
        if note.payload is None or note.channel != cluster_store.CHANNEL:
            # A (re)connect or a change of nodes: free work may be waiting.
            self._claim_wanted.update(self._sources)
            return
        body = cluster_store.decode_change(note.payload)
        if body is None or body.get("node") == self._node:
            return
        source = body.get("source")
        if body.get("state") is None:  # a source's downloads were given back
            if source in self._sources:
                self._claim_wanted.add(source)
            return
        record = body.get("record")
        if not isinstance(record, DownloadRecord):
            self._commit()
            try:
                record = store.read_record(self.connection, body["id"])
                self.connection.rollback()
            except SQLAlchemyError as exc:
                self._read_failed(exc)
                self._claim_wanted.update(self._sources)
                return
            if record is None:
                return
        if body.get("progress"):
            if not record.terminal and record.id not in self._live:
                self.system.events.publish(DownloadProgressed(record))
            return
        if record.terminal and (record.id in self._live or record.id in self._retried):
            # An end of a download that runs here, or that this node reopened:
            # a cancel elsewhere, or the notice of the end before a reopening
            # (retry), come late. The table tells which (unreadable: taken
            # as the notice says).
            stored = self._stored(record.id)
            if stored is not None and stored.terminal:
                self._retried.discard(record.id)  # the reopened row has ended
            if stored is not None and (stored.state, stored.updated_at) != (
                record.state,
                record.updated_at,
            ):
                # Older than the row: the change after it is announced by
                # itself (or was this node's own, already published here).
                return
        try:
            previous = DownloadState(body["previous"]) if body.get("previous") else None
        except ValueError:
            previous = None
        mine = self._live.get(record.id)
        if mine is not None and record.terminal:
            self._forget(record.id)  # cancelled on another node: stop our run
        if record.terminal:
            self._remember(record)
        else:
            self._done.pop(record.id, None)  # an ended download another node retried
        if record.source in self._sources:
            # Any change of a source this node serves may mean free work it
            # could not see before: a submit, a release, rows another node's
            # claim had locked, room within the cluster limit. Claiming is
            # cheap and skipped when this node has no room.
            self._claim_wanted.add(record.source)
        self.system.events.publish(DownloadStateChanged(record, previous))
