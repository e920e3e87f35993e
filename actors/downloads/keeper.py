"""The state-keeper: the one actor that owns download records.

Every state change arrives here as an immutable message, one at a time, in
mailbox order; that order is the only lock. The keeper enforces the
transitions (Initializing → InProgress → Succeeded | Errored; Cancelled
from any non-terminal state; terminal states are final, so a late result
never overwrites Cancelled). The one way back is ``retry``: an Errored or
Cancelled download is reopened (Initializing) under its id and a new claim,
so its kept ``.part`` is resumed; its earlier run's late messages stay fenced.

Persistence (group commit): a change is applied in memory and its write
staged; the transaction (on the actor's Core ``connection``, cheaper per
commit than its ORM session; on SQLite each commit is synced to the disk,
see ``database.sync_every_commit``) is committed when the
mailbox has nothing more to deliver (``on_mailbox_drained``, or after
``_BATCH`` writes), and only then are the changes acknowledged: events
published, claims answered, queues told. An ask is answered after a
commit of everything before it and of what it changed itself. Progress
is coalesced: one write per record per ``flush_interval`` (written by the
flush timer, not by every commit: a download that ends within the
interval has its progress written only with its final state).

Memory: records that are not terminal stay in memory; of the terminal ones
only the ``history`` most recent do. Older ones are read back from the
database on demand; without a database only their final state is kept
(about a byte each, see ``_forgotten``), so ``wait`` can say how a
forgotten download ended. Reads (``status``, ``list``) answer from memory
for what memory holds and query the database (indexed by state and source)
only for the rest: they never rewrite the live records.

Ownership (fencing): every start of a download is a *claim* with an epoch
that only grows per download (allocated here when the keeper hands the
download to its queue, stored in the record's ``claim`` column when the run
starts). The run's progress, result and release carry that epoch; a
message from any other run (a stale one) is ignored and logged once, and a
worker checks that its run is still current before publishing a file: it
reads this keeper's :class:`~regisseur.actors.downloads.claim_view.ClaimView`
(handed to each queue in ``Attached``), or in cluster mode asks
:class:`~regisseur.actors.downloads._protocol.CheckClaim`. The checks are
the overridable methods ``_allocate_claim``, ``_claim_current`` and
``_publish_view`` (cluster mode checks them against the database).

Each run is also told the highest claim of its download that an *earlier*
keeper recorded (``DownloadContext.earlier_claim``): the claims loaded from
the database at start, and those that ran when an earlier incarnation of
this keeper ended. Only a run above such a claim may find a file that a
run this keeper never heard of published (HttpSource then takes that file
rather than a copy); a re-claim within this keeper knows every run before it.

A restart of the keeper restarts the sources too (their supervisor is
REST_FOR_ONE), and a run whose impl does not see its worker's stop is
abandoned by the supervisor and goes on (see ``board``). Its claim is
still the current one here (the claims survive a restart), so what it
reports is applied; all the new incarnation must avoid is starting another
run of the download meanwhile. As an OTP supervisor starts a child again
only once the old process has exited, it holds such a download back
(``_inherited``) while its queue's ``Attach`` says the run of that very
claim is still on the board, and lets the run's own report decide: a
success or failure ends the download, a release queues it again (a cancel
ends it as always, and the run's late result is ignored). Every run
reports before it leaves the board, so a run that left without a report
heard here (one lost with a crash of the keeper) is off the board at the
next ``Attach`` and its download is queued again; a download whose run
goes on is held exactly as long as it would be held without the restart.
The other choice, accepting the old claim's result while the new claim has
not started yet, leaves a race with that start (the new run is handed out
as soon as the source attaches) and fetches the body twice whenever the
old run is slower than the restart.

Threads: everything here runs on the keeper's own thread; the claim view
is read by the workers' threads (the keeper is its only writer).

Failures: a bad request (unknown source or id) is answered with an error
for the caller and changes nothing. A failed commit (a full disk, a locked
database) is rolled back and logged; the changes stay in memory, are
retried every ``flush_interval``, and are acknowledged (events published,
queues told) only once a retry has stored them; the keeper reports itself
unhealthy meanwhile (``unsaved_writes``; ``write_error``, the database's
reason, which a caller waiting for those events can show; and
``write_error_passes``, False for a refusal that lasts until a person acts,
such as a full disk, True for one that ends by itself, such as another
writer's lock or a server restarting). A connection opened anew (after a
lost one) that regisseur's checks of a records file refuse (its ``-wal``
swapped for a link: ``DatabaseError``, see ``sqlite_files``) is such a
lasting refusal too, never a crash. Asks are still
answered, from memory. A failed read
(``status`` of a record only the database has, ``list``) is rolled back
at once, so the next read reconnects, and the caller gets the error; the
keeper reports the database unhealthy (``database_error``) until it
answers again, checked at every health report.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import text

from regisseur.actors._db_refusals import DATABASE_ERRORS, passes_by_itself
from regisseur.actors.actor import Actor
from regisseur.actors.database import sync_every_commit
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads import store
from regisseur.actors.downloads._forgotten import ForgottenStates
from regisseur.actors.downloads._owners import (
    OwnerLock,
    describe_owner,
    lock_directory,
    make_owner_id,
    owner_alive,
)
from regisseur.actors.downloads.claim_view import ClaimView
from regisseur.actors.downloads.errors import (
    DownloadForgottenError,
    UnknownDownloadError,
    UnknownSourceError,
)
from regisseur.actors.errors import UnknownActorError, describe_error
from regisseur.messages.downloads import (
    CancelDownload,
    ClaimDownload,
    CompleteDownload,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    FailDownload,
    QueueDownload,
    ReportProgress,
    initial_record,
)
from regisseur.supervision.protocol import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from regisseur.actors.clock import TimerHandle

__all__ = ["KeeperActor"]

_T = TypeVar("_T")
_INTERRUPTED = "interrupted: the system stopped before the download ended"
_BATCH = 500  # most writes in one transaction
_RETRYABLE = frozenset({DownloadState.ERRORED, DownloadState.CANCELLED})


class _WriteFailure(NamedTuple):
    """Why the last commit failed, as one value (read from other threads)."""

    error: str  # the database's own words ("database or disk is full")
    passes: bool  # the refusal ends by itself (another writer's lock)
    unsaved: int  # records kept in memory for the retry


def _write_details(failure: _WriteFailure | None, unsaved: int) -> dict[str, Any]:
    """The write fields of the keeper's health details (None: nothing failed)."""
    return {
        "unsaved_writes": unsaved,
        "write_error": None if failure is None else failure.error,
        # False: it lasts until a person acts (a full disk, a read-only file).
        "write_error_passes": None if failure is None else failure.passes,
    }


class KeeperActor(Actor):
    """Owns every download record; see the module docstring."""

    def __init__(
        self,
        initial_sources: tuple[p.AddSource, ...],
        history: int,
        flush_interval: float,
    ) -> None:
        super().__init__()
        # The registered sources outlive a restart of the keeper (a source
        # added at runtime is as registered as one given at start).
        store_ = self.kept_state
        self._sources: dict[str, p.SourceConfig] = store_.setdefault("sources", {})
        self._usernames: dict[str, str | None] = store_.setdefault("usernames", {})
        self._resumes: dict[str, Callable[[DownloadRecord], bool] | None] = store_.setdefault(
            "resumes", {}
        )
        for registration in initial_sources:
            if registration.name not in self._sources:
                self._add_source(registration)
        self._initial_sources = set(self._sources)
        self._history = history
        self._flush_interval = flush_interval
        self._persist = self.system.database is not None
        self._wall = self.system.clock.wall  # read three times per download
        self._live: dict[str, DownloadRecord] = {}  # not terminal
        self._done: OrderedDict[str, DownloadRecord] = OrderedDict()  # terminal, newest last
        self._forgotten = ForgottenStates()  # no database: final states trimmed from _done
        self._attached: set[str] = set()
        self._running: dict[str, str] = {}  # worker name -> download id
        self._runner: dict[str, str] = {}  # download id -> worker name (the same pairs)
        self._resumable: set[str] = set()  # InProgress records no worker runs
        # Fencing (kept across a restart of the keeper, like the sources):
        # the highest epoch handed out per download, and the running one.
        self._claims: dict[str, int] = store_.setdefault("claims", {})
        self._current: dict[str, int] = store_.setdefault("current_claims", {})
        self._claim_view = ClaimView(self._current, self._live)
        # Per incarnation: the highest claim per download an earlier keeper
        # recorded (see the module docstring), set at start and by cluster
        # claims; told to each run with its claim.
        self._earlier: dict[str, int] = {}
        # Per incarnation: the runs an earlier incarnation had going (download
        # id -> claim, from ``_current`` at start) that have not reported to
        # this one: held back from a new claim while their run is on the
        # board (see the module docstring).
        self._inherited: dict[str, int] = {}
        self._stale_seen: set[tuple[str, int]] = set()  # logged once each
        self._claim_writes: dict[str, int] = {}  # epochs to store at the next commit
        # This keeper's identity in the records' owner column (host:pid:...).
        self._owner: str = store_.setdefault("owner", make_owner_id(self.system.name))
        database = self.system.database
        self._locks = lock_directory(database.sqlalchemy_url if database is not None else None)
        self._seq = 0
        # group commit: staged writes and the acknowledgements they hold back
        # id -> (the record as it must be written, True if its row is new)
        self._staged: dict[str, tuple[DownloadRecord, bool]] = {}
        self._acks: list[Callable[[], None]] = []
        # Submits stored by the next commit, per source: queued after it in
        # one EnqueueMany per source (an ack, see _send_submitted).
        self._submitted_by_source: dict[str, list[DownloadRecord]] = {}
        self._events: list[object] = []  # published after the commit
        # The latest progress event per download, published with the next
        # batch whether or not its store succeeded: progress is not state
        # (the flush timer writes it), and during a database outage it must
        # keep flowing without piling up.
        self._progress_events: dict[str, DownloadProgressed] = {}
        self._unsaved: dict[str, tuple[DownloadRecord, bool]] = {}  # failed, to retry
        self._dirty: set[str] = set()  # coalesced progress not written yet
        self._flush_timer: TimerHandle | None = None
        # Submits the facade answered with an id, kept outside this
        # incarnation until they are safe (see ``accepted``).
        self._accepted = self.system.downloads._accepted
        self._safe: list[str] = []  # stored by the next commit: leave the journal then
        self._replayed: set[str] = set()  # queued again at start: their copies are ignored
        self._database_error: str | None = None  # the last read failed with this
        # The last commit's failure, for health() and busy_health() (another
        # thread): replaced whole, never changed in place. None: it succeeded.
        self._write_failure: _WriteFailure | None = None
        self._unsynced_logged = False  # "commits not synced" said once per incarnation

    # -- lifecycle -------------------------------------------------------------
    def on_start(self) -> None:
        # The runs an earlier incarnation of this keeper had going when it
        # ended: one may have published its file and never been recorded,
        # and one may still go on (its worker abandoned at the restart).
        self._earlier.update(self._current)
        self._inherited.update(self._current)
        if self._persist:
            self._hold_owner_lock()
            self._load()
        self._replay_accepted()

    def _hold_owner_lock(self) -> None:
        """Take this keeper's liveness lock (kept across restarts, released at the end).

        Without it (the directory refuses the file) other processes count
        this keeper as gone; it logs that and starts anyway.
        """
        if self._locks is None:
            return
        lock = self.kept_state.get("owner_lock")
        if lock is None:
            lock = OwnerLock(self._locks, self._owner)
            self.kept_state["owner_lock"] = lock
        try:
            lock.acquire()
        except OSError as exc:  # a read-only directory: nothing can be written there anyway
            self.log.warning("download_owner_lock_unavailable", error=describe_error(exc))

    def on_incarnation_end(self, *, final: bool) -> None:
        """After ``on_stop``: the final stop gives up ownership (a restart keeps it)."""
        lock = self.kept_state.get("owner_lock") if final else None
        if isinstance(lock, OwnerLock):
            lock.release()

    def _rollback(self) -> None:
        """End the transaction after a write that failed (never raises)."""
        try:
            self.connection.rollback()
        except DATABASE_ERRORS as exc:
            self.log.error("download_rollback_failed", error=describe_error(exc))

    def _load(self) -> None:
        sql = self.connection
        store.ensure_table(sql)
        sql.commit()
        try:
            store.warm_statements(sql)
        except DATABASE_ERRORS as exc:  # best effort: a read-only database still starts
            self.log.warning("download_statements_not_warmed", error=describe_error(exc))
        self._seq = store.next_seq(sql) - 1  # the highest stored: the next is +1
        interrupted = 0
        now = self.system.clock.wall()
        others: dict[str, int] = {}  # live owners -> downloads left to them
        declined = 0  # left by a gone process for another place (see ``resumes``)
        found: list[tuple[DownloadRecord, str | None, int]] = []
        for record, owner, claim in store.load_unfinished_owned(sql):
            if owner != self._owner and not self._resumes_here(record):
                declined += 1
            else:
                found.append((record, owner, claim))
        taken = self._take_all(sql, [(record.id, owner) for record, owner, _ in found])
        for record, owner, claim in found:
            if record.id not in taken:
                if owner is not None:
                    others[owner] = others.get(owner, 0) + 1
                continue
            self._claims[record.id] = max(self._claims.get(record.id, 0), claim)
            self._note_earlier(record.id, claim)
            if record.source in self._initial_sources:
                self._live[record.id] = record
                if record.state is DownloadState.IN_PROGRESS:
                    self._resumable.add(record.id)
                continue
            interrupted += 1
            ended = record.evolve(
                state=DownloadState.ERRORED,
                error=f"{_INTERRUPTED} (source {record.source!r} is not registered)",
                speed=0.0,
                time_remaining=None,
                updated_at=now,
            )
            store.update_record(sql, ended)
            self._remember(ended)
        sql.commit()
        for owner, count in others.items():
            self.log.info("downloads_left_to_owner", owner=describe_owner(owner), downloads=count)
        if declined:
            self.log.info("downloads_declined", downloads=declined)
        self.log.info("downloads_loaded", resumed=len(self._live), interrupted=interrupted)

    def _resumes_here(self, record: DownloadRecord) -> bool:
        """Whether the source registered under ``record.source`` takes it over
        at the start (its ``resumes``; True without one, or for a source not
        registered here: that one is ended as interrupted). A ``resumes``
        that raises declines it: logged, the download left as it was."""
        resumes = self._resumes.get(record.source)
        if resumes is None or record.source not in self._initial_sources:
            return True
        try:
            return bool(resumes(record))
        except Exception as exc:  # noqa: BLE001 - a user's predicate: decline, say why
            self.log.error(
                "download_resumes_failed",
                download=record.id,
                source=record.source,
                error=describe_error(exc),
            )
            return False

    def _note_earlier(self, download_id: str, claim: int) -> None:
        """Remember ``claim`` as one an earlier keeper recorded for ``download_id``."""
        if claim > self._earlier.get(download_id, 0):
            self._earlier[download_id] = claim

    def _earlier_claims(self, records: list[DownloadRecord]) -> tuple[int, ...]:
        """Each record's earlier claim (see ``_earlier``); empty when all are 0."""
        earlier = self._earlier
        if not earlier:
            return ()
        found = tuple(earlier.get(record.id, 0) for record in records)
        return found if any(found) else ()

    def _take_all(self, sql: Any, found: list[tuple[str, str | None]]) -> set[str]:
        """Of the unfinished downloads found at start (id, owner), those this keeper runs.

        Its own, and those whose owner is provably gone (its lock is free;
        taken over with conditional writes, so of two processes only one
        gets each). A download of a live owner (another process on this
        database) is never taken: that process runs it. Each owner's lock
        is probed once and its downloads taken together: one by one, 80,000
        downloads a stopped run left took past the keeper's start timeout,
        and the next run could not start at all.
        """
        mine: set[str] = set()
        orphans: dict[str | None, list[str]] = {}  # owner -> its downloads
        for download_id, owner in found:
            if owner == self._owner:
                mine.add(download_id)
            else:
                orphans.setdefault(owner, []).append(download_id)
        for owner, ids in orphans.items():
            if owner is not None and owner_alive(self._locks, owner):
                continue
            mine |= store.take_over_many(sql, ids, owner, self._owner)
        return mine

    def on_stop(self) -> None:
        self._store_accepted_on_stop()
        self._dirty.update(self._live)
        self._commit(progress=True)

    def _store_accepted_on_stop(self) -> None:
        """Store the submits still waiting in the mailbox as Initializing records.

        A stop overtakes the user messages queued before it, so submits that
        ``submit()`` already answered would die with the mailbox; stored
        now, the next start of a system on this database runs them. Without
        a database there is nothing to keep them in (they end with the system).
        """
        if not self._persist:
            return
        for message in self._accepted.pending():
            if message.id in self._live or message.id in self._done:
                continue
            if message.source not in self._sources:
                continue  # its source went away: the next start reports it
            self._keep_at_stop(message)

    def _keep_at_stop(self, message: QueueDownload) -> None:
        """Stage ``message``'s record for the last commit, without queueing it."""
        record = self._submitted(message)
        if record is not None:
            self._live[record.id] = record
            self._stage(record, new=True)

    def health(self) -> dict[str, Any]:
        database_error = self._check_database()
        return {
            "healthy": not self._unsaved and database_error is None,
            "active": len(self._live),
            "running": len(self._running),
            "in_memory": len(self._live) + len(self._done),
            "sources": sorted(self._sources),
            "database_error": database_error,
            **_write_details(self._write_failure if self._unsaved else None, len(self._unsaved)),
        }

    def busy_health(self) -> dict[str, Any] | None:
        """While a write the database refused is being retried, its reason.

        Any thread (the one asking ``system.health()``): one read of a
        snapshot this actor's thread replaces whole after each failed commit
        (so its fields agree with each other, as ``health()``'s do). A retry
        waits out SQLite's busy timeout for as long as another process holds
        the write lock (a run stopped with Ctrl-Z while it wrote), and the
        keeper, busy in one retry after another, was reported
        ``unresponsive``: whoever watched its health (``regisseur download``
        saying why it waits) never learned why. None when no write failed:
        asked through the mailbox.
        """
        failure = self._write_failure
        if failure is None:
            return None
        return {"healthy": False, **_write_details(failure, failure.unsaved)}

    def _write_reason(self) -> str | None:
        """The last failed commit's reason (None: the last commit succeeded)."""
        failure = self._write_failure
        return None if failure is None else failure.error

    def _check_database(self) -> str | None:
        """Why the database does not answer now (None: it does, or there is none).

        A trivial query, unless a transaction is open (then the last read's
        outcome stands): between messages the keeper holds none.
        """
        if not self._persist:
            return None
        try:
            if not self.connection.in_transaction():
                self._read(lambda sql: sql.execute(text("SELECT 1")))
        except DATABASE_ERRORS as exc:
            self._database_error = describe_error(exc)
        return self._database_error

    def _read(self, query: Callable[[Connection], _T]) -> _T:
        """Run a read in a transaction of its own, ended whatever happens.

        A failed read (the connection cut, the server down) is rolled back
        and re-raised: the connection is usable again (the next read
        reconnects), never left waiting for a rollback no one does.
        """
        try:
            result = query(self.connection)
            self.connection.rollback()  # end the read transaction
        except DATABASE_ERRORS as exc:
            self._rollback()
            if self._database_error is None:
                self.log.warning("download_read_failed", error=describe_error(exc))
            self._database_error = describe_error(exc)
            raise
        if self._database_error is not None:
            self.log.info("download_reads_recovered")
            self._database_error = None
        return result

    # -- messages ----------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        try:
            reply = self._handle(message)
        except Exception:
            # The runtime rolls the connection back: what was staged becomes
            # a retry, written from memory by the commit in on_stop.
            self._keep_unsaved(self._staged)
            self._staged.clear()
            raise
        if len(self._staged) >= _BATCH:
            self._commit()
        return reply

    def on_mailbox_drained(self) -> None:
        """Group commit: the burst is over, store and acknowledge what it changed."""
        if self._has_changes():
            self._commit()

    def _has_changes(self) -> bool:
        """True if writes, events or acknowledgements wait for a commit."""
        return bool(self._staged or self._acks or self._events or self._progress_events)

    def _handle(self, message: Any) -> Any:
        # The messages every download brings come first (most frequent first).
        if isinstance(message, ClaimDownload):
            self._start(message)
        elif isinstance(message, CompleteDownload):
            if self._fenced(message.id, message.claim, "success"):
                self._finish(
                    message.id,
                    DownloadState.SUCCEEDED,
                    file_path=message.file_path,
                    transferred=message.transferred,
                    size=message.size,
                )
        elif isinstance(message, QueueDownload):
            self._queue(message)
        elif isinstance(message, ReportProgress):
            if self._fenced(message.id, message.claim, "progress"):
                self._progress(message)
        elif isinstance(message, FailDownload):
            if self._fenced(message.id, message.claim, "failure"):
                self._finish(message.id, DownloadState.ERRORED, error=message.error)
        elif isinstance(message, p.CheckClaim):
            # Answered at once, from memory: a read needs no commit.
            return self._fenced(message.id, message.claim, "publish")
        elif isinstance(message, p.Released):
            if self._fenced(message.id, message.claim, "release"):
                self._release(message)
        elif isinstance(message, p.Flush):
            self._flush_timer = None
            self._commit(progress=True)
        elif isinstance(message, p.RemoveSource):
            self._sources.pop(message.name, None)
            self._attached.discard(message.name)
        elif isinstance(message, p.Attach):
            self._answer_attach(message)
        else:
            return self._request(message)
        return None

    def _request(self, message: Any) -> Any:
        """Asks: answered after everything before them, and their own change, is stored."""
        self._commit()
        reply = self._answer(message)
        if self._has_changes():
            self._commit()
        return reply

    def _answer(self, message: Any) -> Any:
        """The reply to an ask (what it changes is staged, not yet stored)."""
        if isinstance(message, CancelDownload):
            return Outcome.of(lambda: self._cancel(message))
        if isinstance(message, p.Lookup):
            return Outcome.of(lambda: self._lookup(message.id))
        if isinstance(message, p.Retry):
            return Outcome.of(lambda: self._retry(message.id))
        if isinstance(message, p.TakeOver):
            return Outcome.of(lambda: self._take_over(message.id))
        if isinstance(message, p.FinalState):
            return self._forgotten.get(message.id)
        if isinstance(message, p.ListRecords):
            return Outcome.of(lambda: self._list(message))
        if isinstance(message, p.AddSource):
            return Outcome.of(lambda: self._add_source(message))
        if isinstance(message, p.Configure):
            return Outcome.of(lambda: self._configure(message))
        if isinstance(message, p.ListSources):
            return sorted(self._sources)
        return super().on_receive(message)

    # -- sources -------------------------------------------------------------------
    def _add_source(self, message: p.AddSource) -> None:
        if message.name in self._sources:
            msg = f"download source {message.name!r} is already registered"
            raise ValueError(msg)
        self._sources[message.name] = message.config
        self._usernames[message.name] = message.username
        self._resumes[message.name] = message.resumes

    def _known_source(self, name: str) -> p.SourceConfig:
        config = self._sources.get(name)
        if config is None:
            raise UnknownSourceError(name, sorted(self._sources))
        return config

    def _answer_attach(self, message: p.Attach) -> None:
        """Tell a (re)started queue its config and pending records.

        Committed first, so no acknowledgement held back by the group commit
        reaches the queue after the answer it is part of.
        """
        self._commit()
        try:
            attached = self._attach(message.source, message.running)
        except UnknownSourceError:
            self.log.warning("download_queue_of_unknown_source", source=message.source)
            return
        answer = replace(attached, token=message.token)
        try:
            self.system.tell(p.queue_name(message.source), answer)
        except UnknownActorError:
            self._attached.discard(message.source)

    def _attach(self, source: str, on_board: tuple[tuple[str, int], ...] = ()) -> p.Attached:
        """The answer to ``source``'s queue: its config, and the downloads it
        may run now (not those a run this keeper knows of has, nor those held
        for an earlier incarnation's run still on the board, ``on_board``)."""
        config = self._known_source(source)
        self._attached.add(source)
        running = self._runner
        held = self._held_for(source, on_board) if self._inherited else ()
        pending = [
            record
            for record in self._live.values()
            if record.source == source and record.id not in running and record.id not in held
        ]
        # Interrupted downloads first (they had started before), then FIFO:
        # ``_live`` is in submit order (a stable sort keeps it; created_at is
        # wall-clock time, which may step back).
        pending.sort(key=lambda r: r.id not in self._resumable)
        claims = tuple(self._allocate_claim(r.id) for r in pending)
        return p.Attached(
            config,
            tuple(pending),
            claims,
            view=self._publish_view(),
            earlier=self._earlier_claims(pending),
        )

    def _held_for(self, source: str, on_board: tuple[tuple[str, int], ...]) -> set[str]:
        """The downloads of ``source`` whose inherited run is on its board.

        A run on the board under the inherited claim reports here before it
        leaves (its result is applied, its release re-queues it): held.
        An inherited run no longer on the board reported before its queue
        told ``Attach`` (the report is handled already), or its report was
        lost with the keeper that crashed on it: no longer awaited, and its
        download (if still live) is queued now like any other. So is one
        whose run is on the board under another claim (a keeper crashed on
        that run's start, so it was never inherited): the board starts the
        new claim only after that run (never beside it), whose result is
        stale here; that double fault costs a second run, as before.
        """
        board = dict(on_board)
        held: set[str] = set()
        for download_id, claim in list(self._inherited.items()):
            record = self._live.get(download_id)
            if record is None:
                del self._inherited[download_id]  # ended
            elif record.source != source:
                continue
            elif board.get(download_id) == claim:
                held.add(download_id)
            else:
                del self._inherited[download_id]
        if held:
            self.log.info("downloads_held_for_earlier_runs", source=source, downloads=len(held))
        return held

    def _configure(self, message: p.Configure) -> p.SourceConfig:
        old = self._known_source(message.source)
        config = replace(
            old,
            concurrency=message.concurrency if message.concurrency is not None else old.concurrency,
            delay=message.delay if message.delay is not None else old.delay,
        )
        self._sources[message.source] = config
        self._to_queue(message.source, config)
        return config

    def _to_queue(self, source: str, message: object) -> None:
        """Tell the source's queue, if it is attached (else it asks on start)."""
        if source not in self._attached:
            return
        if isinstance(message, p.Enqueue):
            download_id = message.record.id
            message = p.Enqueue(
                message.record,
                message.front,
                self._allocate_claim(download_id),
                self._earlier.get(download_id, 0),
            )
        try:
            self.system.tell(p.queue_name(source), message)
        except UnknownActorError:
            self._attached.discard(source)

    # -- requests --------------------------------------------------------------------
    def _queue(self, message: QueueDownload) -> None:
        if message.source not in self._sources:
            self._reject(message, str(UnknownSourceError(message.source, sorted(self._sources))))
            return
        record = self._submitted(message)
        if record is None:
            return
        self._live[record.id] = record
        self._stage(record, new=True)
        self._ack_event(DownloadStateChanged(record, None))
        if not self._submitted_by_source:
            self._acks.append(self._send_submitted)
        self._submitted_by_source.setdefault(record.source, []).append(record)

    def _send_submitted(self) -> None:
        """After the commit that stored them: queue the new submits, one message per source."""
        submitted, self._submitted_by_source = self._submitted_by_source, {}
        for source, records in submitted.items():
            if source not in self._attached:
                continue  # its queue gets them with the answer to its Attach
            claims = tuple(self._allocate_claim(record.id) for record in records)
            earlier = self._earlier_claims(records)
            self._to_queue(source, p.EnqueueMany(tuple(records), claims, earlier))

    def _submitted(self, message: QueueDownload) -> DownloadRecord | None:
        """The Initializing record of a submit; None (logged) for a repeated id."""
        if message.id in self._replayed:
            return None  # the copy of a submit queued again at start
        if message.id in self._live or message.id in self._done:
            self.log.warning("duplicate_download_id", download=message.id)
            return None
        self._safe_after_commit(message.id)
        return initial_record(message, self._username(message), self._wall())

    def _username(self, message: QueueDownload) -> str:
        """The submit's username, else the source's, else the source's name."""
        if message.username is not None:
            return message.username
        return self._usernames.get(message.source) or message.source

    def _safe_after_commit(self, download_id: str) -> None:
        """Take the submit out of the journal once the next commit stored it.

        Without a database a record is safe only once it has ended (see
        ``_remember``): until then a restarted keeper queues it again.
        """
        if not self._persist:
            return
        if not self._safe:
            self._acks.append(self._forget_safe)
        self._safe.append(download_id)

    def _forget_safe(self) -> None:
        self._accepted.discard(self._safe)
        self._safe.clear()

    def _replay_accepted(self) -> None:
        """Queue again the accepted submits that an earlier incarnation lost.

        Runs at start, after the load. A submit still in the journal and
        neither loaded nor stored died with the keeper (dropped with a
        crash or a killed thread, or applied in memory and never
        committed), or it still waits in the mailbox, whose copy is then
        ignored. Replayed in the order they were accepted.
        """
        pending = [m for m in self._accepted.pending() if m.id not in self._live]
        if self._persist:
            self._accepted.discard(self._live)  # loaded, so stored
            if not pending:
                return
            ids = [m.id for m in pending]
            stored = self._read(lambda sql: store.stored_ids(sql, ids))
            self._accepted.discard(stored)
            pending = [m for m in pending if m.id not in stored]
        if not pending:
            return
        for message in pending:
            self._queue(message)
            self._replayed.add(message.id)
        self.log.warning("accepted_submits_replayed", downloads=len(pending))
        self._commit()

    def _reject(self, message: QueueDownload, error: str) -> None:
        """Record a submit that cannot run (its source went away) as Errored."""
        record = initial_record(message, self._username(message), self._wall()).evolve(
            state=DownloadState.ERRORED, error=error
        )
        self._safe_after_commit(record.id)
        self._stage(record, new=True)
        self._remember(record)
        self._ack_event(DownloadStateChanged(record, None))

    def _cancel(self, message: CancelDownload) -> bool:
        record = self._live.get(message.id)
        if record is None:
            if self._find(message.id) is None and self._forgotten.get(message.id) is None:
                raise UnknownDownloadError(message.id)
            return False  # already terminal: nothing to do
        ended = record.evolve(
            state=DownloadState.CANCELLED,
            error=None if message.reason == "cancelled" else message.reason,
            speed=0.0,
            time_remaining=None,
            updated_at=self._wall(),
        )
        self._end(record, ended)
        self._commit()  # stored before the caller hears "cancelled"
        self._to_queue(record.source, p.Withdraw(record.id))
        return True

    def _retryable(self, download_id: str) -> DownloadRecord | None:
        """The ended record of ``download_id`` if a retry may reopen it; None
        if it has not ended (another process or node runs it, or reopened it).

        Raises ``UnknownDownloadError`` (``DownloadForgottenError`` for one
        dropped from memory), ``ValueError`` if it succeeded,
        ``RuntimeError`` while its end is not stored yet.
        """
        record = self._find(download_id)
        if record is None:
            state = self._forgotten.get(download_id)
            if state is not None:
                raise DownloadForgottenError(download_id, state)
            raise UnknownDownloadError(download_id)
        if not record.terminal:
            return None
        if record.state not in _RETRYABLE:
            msg = (
                f"download {download_id!r} {record.state.value}: only an errored or "
                "cancelled download can be retried (submit it again to fetch it anew)"
            )
            raise ValueError(msg)
        if download_id in self._unsaved:
            msg = f"download {download_id!r}: its end is not stored yet ({self._write_reason()})"
            raise RuntimeError(msg)
        return record

    def _reopened(self, record: DownloadRecord) -> DownloadRecord:
        """``record`` put back to run: Initializing, its error and speed cleared."""
        return record.evolve(
            state=DownloadState.INITIALIZING,
            error=None,
            speed=0.0,
            time_remaining=None,
            updated_at=self._wall(),
        )

    def _retry(self, download_id: str) -> bool:
        """Reopen an ended download under its id (see ``Downloads.retry``).

        Errored or Cancelled only; False if it has not ended. With a
        database the row is reopened by one conditional write, committed
        before the answer (``store.reopen``: still in the state read here,
        and owned by this keeper from then on, so no other process takes
        it); False if another process reopened it first. Without one the
        reopened download is journaled like a submit (``accepted``): a
        restarted keeper queues it again. Then it is queued like a submit
        (a new claim, above its earlier runs' when the database has them).
        """
        if download_id in self._live:
            return False
        record = self._retryable(download_id)
        if record is None:
            return False
        if record.source not in self._sources:
            raise UnknownSourceError(record.source, sorted(self._sources))
        reopened = self._reopened(record)
        last_claim = 0
        if self._persist:
            try:
                stored = store.reopen(self.connection, reopened, record.state, self._owner)
                self.connection.commit()
            except DATABASE_ERRORS:
                self._rollback()
                raise
            if stored is None:
                self._done.pop(download_id, None)  # changed by another process: read anew
                return False
            last_claim = stored
        else:
            self._accepted.add(
                QueueDownload(
                    id=record.id,
                    source=record.source,
                    target_id=record.target_id,
                    filename=record.filename,
                    username=record.username,
                    original_filename=record.original_filename,
                    extra=record.extra,
                )
            )
        self._done.pop(download_id, None)
        self._live[download_id] = reopened
        self._claims[download_id] = max(self._claims.get(download_id, 0), last_claim, 1)
        self._ack_event(DownloadStateChanged(reopened, record.state))
        self.log.info("download_retried", download=download_id, was=record.state.value)
        self._to_queue(record.source, p.Enqueue(reopened))
        return True

    def _take_over(self, download_id: str) -> str:
        """Run here an unfinished download whose owner is gone (see ``Downloads.take_over``).

        Runs on the keeper's thread, between two messages. The owner's
        liveness is its lock (``owner_alive``: a frozen process still holds
        it, so its downloads stay its own); the row changes hands by one
        conditional write (``store.take_over``), committed before the
        answer, so of several processes that try at once exactly one gets
        it. Taken, the download is queued at the front like one this
        keeper loaded at start: its claim above the dead owner's (so a file
        that owner published just before it died is taken, not copied) and,
        InProgress, resumed from the part the dead owner left (its lock died
        with it). A failed read or write raises (rolled back: nothing taken).
        """
        if download_id in self._live:
            return p.HERE
        if not self._persist:
            if self._find(download_id) is None and self._forgotten.get(download_id) is None:
                raise UnknownDownloadError(download_id)
            return p.ENDED
        found = self._read(lambda sql: store.read_owned(sql, download_id))
        if found is None:
            raise UnknownDownloadError(download_id)
        record, owner, claim = found
        if record.terminal:
            return p.ENDED
        if record.source not in self._sources:
            return p.NO_SOURCE
        if owner == self._owner or (owner is not None and owner_alive(self._locks, owner)):
            return p.ELSEWHERE  # a live owner's (its own, not live here, is not expected)
        try:
            taken = store.take_over(self.connection, download_id, owner, self._owner)
            self.connection.commit()
        except DATABASE_ERRORS:
            self._rollback()
            raise
        if not taken:
            return p.ELSEWHERE  # another process took it first
        self._done.pop(download_id, None)
        self._claims[download_id] = max(self._claims.get(download_id, 0), claim)
        self._note_earlier(download_id, claim)
        self._live[download_id] = record
        if record.state is DownloadState.IN_PROGRESS:
            self._resumable.add(download_id)
        self.log.info(
            "download_taken_over",
            download=download_id,
            owner=describe_owner(owner),
            state=record.state.value,
        )
        self._to_queue(record.source, p.Enqueue(record, front=True))
        return p.HERE

    def _lookup(self, download_id: str) -> DownloadRecord | None:
        return self._live.get(download_id) or self._find(download_id)

    def _find(self, download_id: str) -> DownloadRecord | None:
        """A terminal record, from memory or the database."""
        record = self._done.get(download_id)
        if record is None and self._persist:
            record = self._read(lambda sql: store.read_record(sql, download_id))
        return record

    def _list(self, message: p.ListRecords) -> list[DownloadRecord]:
        """The records asked for, answered without rewriting the live ones.

        Runs after ``_request``'s commit: the database then has every
        record's state and source (only coalesced progress may be older),
        so an indexed query finds the right rows, in submit order, and
        memory supplies the newer version of each row it holds. Records a
        failed commit left unwritten (``_unsaved``) come from memory.
        """
        wanted = set(message.states) if message.states is not None else None

        def keep(record: DownloadRecord) -> bool:
            if message.source is not None and record.source != message.source:
                return False
            return wanted is None or record.state in wanted

        if not self._persist:
            found = [r for r in self._done.values() if keep(r)]
            if wanted is None or not all(state.terminal for state in wanted):
                found.extend(r for r in self._live.values() if keep(r))  # every non-terminal one
            return sorted(found, key=lambda r: r.created_at)
        stored = self._read(
            lambda sql: store.read_records(sql, source=message.source, states=message.states)
        )
        listed: list[DownloadRecord] = []
        seen: set[str] = set()
        for row in stored:
            record = self._live.get(row.id) or self._done.get(row.id) or row
            seen.add(row.id)
            if record is row or keep(record):
                listed.append(record)
        for unsaved, _new in self._unsaved.values():
            record = self._live.get(unsaved.id) or self._done.get(unsaved.id) or unsaved
            if record.id not in seen and keep(record):
                listed.append(record)
        return listed

    # -- reports from workers ---------------------------------------------------------
    def _start(self, message: ClaimDownload) -> None:
        """A worker took the download from its source's board: it is InProgress now.

        The worker sends this before it runs the download, so the keeper
        always hears of the start before the result. A download that was
        cancelled meanwhile is left alone (its token is cancelled too).
        """
        download_id = message.id
        record = self._live.get(download_id)
        if record is None:
            return
        if download_id in self._runner:
            self.log.warning("download_started_twice", download=download_id, worker=message.worker)
            return
        if record.state is not DownloadState.INITIALIZING and download_id not in self._resumable:
            return
        if not self._accept_claim(download_id, message.claim):
            self._stale(download_id, message.claim, "start")
            return
        self._resumable.discard(download_id)
        self._inherited.pop(download_id, None)
        started = record.evolve(
            state=DownloadState.IN_PROGRESS, error=None, updated_at=self._wall()
        )
        self._live[download_id] = started
        self._running[message.worker] = download_id
        self._runner[download_id] = message.worker
        self._stage(started)
        if record.state is not DownloadState.IN_PROGRESS:
            self._ack_event(DownloadStateChanged(started, record.state))

    def _progress(self, message: ReportProgress) -> None:
        record = self._live.get(message.id)
        if record is None or record.state is not DownloadState.IN_PROGRESS:
            return
        size = message.size
        progress = record.progress
        if size:
            progress = min(100.0, 100.0 * message.transferred / size)
        updated = record.evolve(
            transferred=message.transferred,
            size=size,
            progress=progress,
            speed=message.speed,
            time_remaining=message.time_remaining,
            updated_at=self._wall(),
        )
        self._live[updated.id] = updated
        if self._persist:
            self._dirty.add(updated.id)
            if self._flush_timer is None:
                self._flush_timer = self.schedule(self._flush_interval, p.Flush())
        self._progress_events[updated.id] = DownloadProgressed(updated)  # with the next batch

    # -- fencing (overridable: cluster mode checks the database) -----------------------
    def _allocate_claim(self, download_id: str) -> int:
        """A fresh epoch for the next run of ``download_id`` (greater than any before)."""
        epoch = self._claims.get(download_id, 0) + 1
        self._claims[download_id] = epoch
        return epoch

    def _accept_claim(self, download_id: str, claim: int | None) -> bool:
        """Make ``claim`` the current run of ``download_id``; False if it is stale.

        A claim is accepted when this keeper handed it out and no later one
        has started; it is stored with the record at the next commit.
        """
        if claim is None:  # a sender outside the machinery: not fenced
            self._current.pop(download_id, None)
            return True
        if claim > self._claims.get(download_id, 0) or claim <= self._current.get(download_id, 0):
            return False
        self._current[download_id] = claim
        if self._persist:
            self._claim_writes[download_id] = claim
        return True

    def _claim_current(self, download_id: str, claim: int) -> bool:
        """True while ``claim`` is the run of ``download_id`` that may write."""
        return self._claim_view.is_current(download_id, claim)

    def _publish_view(self) -> ClaimView | None:
        """What the sources' runs read before publishing (None: they ask ``CheckClaim``)."""
        return self._claim_view

    def _fenced(self, download_id: str, claim: int | None, what: str) -> bool:
        """True if a write about a run of ``download_id`` may be applied.

        A message without a claim is not fenced (it comes from outside the
        download machinery); one from a stale run is ignored and logged once.
        """
        if claim is None or self._claim_current(download_id, claim):
            return True
        if download_id not in self._live:  # ended (cancelled, say) before its run did
            self.log.debug("late_result_ignored", download=download_id, write=what)
            return False
        self._stale(download_id, claim, what)
        return False

    def _stale(self, download_id: str, claim: int | None, what: str) -> None:
        key = (download_id, claim or 0)
        if key in self._stale_seen:
            return
        if len(self._stale_seen) >= _BATCH:
            self._stale_seen.clear()
        self._stale_seen.add(key)
        self.log.warning(
            "download_stale_claim_rejected",
            download=download_id,
            claim=claim,
            current=self._current.get(download_id),
            write=what,
        )

    def _unassign(self, download_id: str) -> None:
        """Forget which worker runs ``download_id`` (both indexes)."""
        worker = self._runner.pop(download_id, None)
        if worker is not None:
            self._running.pop(worker, None)

    def _finish(self, download_id: str, state: DownloadState, **fields: Any) -> None:
        record = self._live.get(download_id)
        if record is None:
            self._unassign(download_id)  # else _end does
            self.log.debug("late_result_ignored", download=download_id, state=state.value)
            return
        if state is DownloadState.SUCCEEDED:
            transferred = fields.get("transferred")
            if transferred is None:
                transferred = record.transferred
            size = fields.get("size")
            if size is None:
                size = record.size
                if size is None:
                    # A body without a length (chunked, close-delimited):
                    # once it ended, what arrived is its size.
                    size = transferred if transferred else None
            ended = record.evolve(
                state=state,
                speed=0.0,
                time_remaining=0.0,
                updated_at=self._wall(),
                transferred=transferred,
                size=size,
                progress=100.0,
                file_path=fields["file_path"],
                error=None,
            )
        else:
            ended = record.evolve(
                state=state,
                speed=0.0,
                time_remaining=None,
                updated_at=self._wall(),
                error=fields["error"],
            )
        self._end(record, ended)

    def _release(self, message: p.Released) -> None:
        if self._running.get(message.worker) == message.id:
            del self._running[message.worker]
            self._runner.pop(message.id, None)
        self._current.pop(message.id, None)
        self._inherited.pop(message.id, None)  # an earlier incarnation's run: queued now
        record = self._live.get(message.id)
        if record is None:
            return
        self._resumable.add(record.id)
        self._to_queue(record.source, p.Enqueue(record, front=True))

    # -- bookkeeping -------------------------------------------------------------------------
    def _end(self, before: DownloadRecord, ended: DownloadRecord) -> None:
        self._live.pop(ended.id, None)
        self._resumable.discard(ended.id)
        self._claims.pop(ended.id, None)
        self._current.pop(ended.id, None)
        self._earlier.pop(ended.id, None)
        self._inherited.pop(ended.id, None)
        self._unassign(ended.id)
        self._stage(ended)
        self._remember(ended)
        self._ack_event(DownloadStateChanged(ended, before.state))

    def _remember(self, record: DownloadRecord) -> None:
        if not self._persist:
            self._accepted.discard((record.id,))  # ended: nothing left to replay
        self._done[record.id] = record
        self._done.move_to_end(record.id)
        self._trim()

    def _trim(self) -> None:
        """Keep at most ``history`` terminal records in memory (the database has all)."""
        while len(self._done) > self._history:
            oldest = next(iter(self._done))
            if self._persist and (oldest in self._staged or oldest in self._unsaved):
                break  # until it is stored (trimmed again after the commit)
            record = self._done.pop(oldest)
            if not self._persist:
                self._forgotten.add(oldest, record.state)

    def _stage(self, record: DownloadRecord, *, new: bool = False) -> None:
        """Write ``record`` as it is now at the next commit (nothing without a database)."""
        if self._persist:
            self._dirty.discard(record.id)
            earlier = self._staged.get(record.id)
            self._staged[record.id] = (record, new or (earlier is not None and earlier[1]))

    def _keep_unsaved(self, failed: dict[str, tuple[DownloadRecord, bool]]) -> None:
        for download_id, (record, new) in failed.items():
            earlier = self._unsaved.get(download_id)
            self._unsaved[download_id] = (record, new or (earlier is not None and earlier[1]))

    def _upsert(self, record: DownloadRecord) -> None:
        if not store.update_record(self.connection, record):
            self._seq += 1
            store.insert_record(self.connection, record, self._seq, owner=self._owner)

    def _ack_event(self, event: object) -> None:
        self._events.append(event)

    def _commit(self, *, progress: bool = False) -> None:
        """Commit the staged writes (with ``progress``: the coalesced progress
        too, see ``Flush``), then acknowledge."""
        if self._persist:
            if progress:
                for download_id in list(self._dirty):
                    record = self._live.get(download_id)
                    if record is not None:
                        self._stage(record)
                self._dirty.clear()
            if self._has_writes():
                stored = self._store_batch()
                self._trim()
                if not stored:
                    # Not acknowledged until written: the events and the
                    # queue tells wait for the retry that stores them.
                    self._publish_progress()
                    return
        self._publish_progress()  # before the state events: a download's end comes last
        events, self._events = self._events, []
        self.system.events.publish_many(events)
        acks, self._acks = self._acks, []
        for ack in acks:
            ack()

    def _publish_progress(self) -> None:
        if self._progress_events:
            progress, self._progress_events = self._progress_events, {}
            self.system.events.publish_many(progress.values())

    def _has_writes(self) -> bool:
        return bool(self._staged or self._unsaved or self._claim_writes)

    def _store_batch(self) -> bool:
        """Write what is staged (and retry what failed before); False if it failed."""
        staged, self._staged = self._staged, {}
        retried, self._unsaved = self._unsaved, {}
        inserts: list[tuple[DownloadRecord, int]] = []
        updates: list[DownloadRecord] = []
        for download_id, (record, new) in staged.items():
            if download_id in retried:
                continue  # written by the upsert below
            if new:
                self._seq += 1
                inserts.append((record, self._seq))
            else:
                updates.append(record)
        claims, self._claim_writes = self._claim_writes, {}
        # A claim goes with its record's row when that is written anyway
        # (one write of the row); the others after every row exists.
        rest = {i: c for i, c in claims.items() if i in retried or i not in staged}
        try:
            sql = self.connection  # opening it may fail too: a write failure
            self._sync_commits(sql)
            store.insert_many(sql, inserts, owner=self._owner, claims=claims)
            store.update_many(sql, updates, claims=claims, owner=self._owner)
            for download_id, (record, _new) in retried.items():
                # An earlier write failed: its row may be missing.
                latest = staged.get(download_id, (record, False))[0]
                self._upsert(latest)
            store.set_claims(sql, rest, self._owner)
            sql.commit()
        except DATABASE_ERRORS as exc:
            self._claim_writes = {**claims, **self._claim_writes}
            self._write_failed(exc, staged, retried)
            return False
        self._write_failure = None
        return True

    def _sync_commits(self, sql: Connection) -> None:
        """Have this batch's commit reach the disk before it returns (SQLite).

        A Succeeded record is acknowledged (its event published, ``wait``
        answered) after its commit; with SQLite's WAL default a power loss
        could still drop that commit while the file it names, fsynced before,
        survives. Set on the keeper's connection before each batch (a no-op
        once set; again after the pool replaced the connection). If SQLite
        refuses (a transaction still open after a failed rollback), the batch
        is written anyway with the system's setting, and that is logged once.
        """
        try:
            sync_every_commit(sql)
        except DATABASE_ERRORS as exc:
            if not self._unsynced_logged:
                self._unsynced_logged = True
                self.log.warning("download_commits_not_synced", error=describe_error(exc))

    def _write_failed(
        self,
        exc: Exception,
        staged: dict[str, tuple[DownloadRecord, bool]],
        retried: dict[str, tuple[DownloadRecord, bool]],
    ) -> None:
        """A batch write failed: roll back, keep its records for a retry at the next flush."""
        self._rollback()
        self._unsaved = retried
        self._keep_unsaved(staged)
        # The driver's own words ("database or disk is full"), for health().
        self._write_failure = _WriteFailure(
            error=describe_error(getattr(exc, "orig", None) or exc),
            passes=passes_by_itself(exc),
            unsaved=len(self._unsaved),
        )
        self.log.error(
            "download_write_failed", records=len(self._unsaved), error=describe_error(exc)
        )
        if self._flush_timer is None and not self.stopping:
            self._flush_timer = self.schedule(self._flush_interval, p.Flush())
