"""``system.downloads``: submit, watch, cancel and configure downloads.

Threads: every method may be called from any thread except a download
worker's own (a worker blocked in ``wait()`` would wait for itself). Each
call is one ask to the state-keeper actor, bounded by ``timeout``.

Failures: bad arguments raise ``TypeError``/``ValueError`` naming the
argument; an unknown source raises ``UnknownSourceError`` and an unknown id
``UnknownDownloadError``; nothing is recorded by a call that raised.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pykka

from regisseur.actors.clock import bounded_wait, check_duration
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads.accepted import AcceptedSubmits
from regisseur.actors.downloads.board import RunBoard
from regisseur.actors.downloads.errors import (
    DownloadForgottenError,
    UnknownDownloadError,
    UnknownSourceError,
)
from regisseur.actors.downloads.keeper import KeeperActor
from regisseur.actors.downloads.queue import QueueActor, worker_spec
from regisseur.actors.downloads.source import MAX_CONCURRENCY, DownloadSource, check_concurrency
from regisseur.actors.errors import UnknownActorError, WaitTimeoutError
from regisseur.messages.downloads import (
    TEXT_LIMIT,
    CancelDownload,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    QueueDownload,
    frozen_extra,
)
from regisseur.messages.lifecycle import Lifecycle
from regisseur.supervision.directive import Strategy
from regisseur.supervision.spec import ChildSpec
from regisseur.supervision.supervisor import Supervisor

if TYPE_CHECKING:
    from types import MappingProxyType

    from regisseur.actors.cluster.settings import ClusterSettings
    from regisseur.actors.events import Subscription
    from regisseur.actors.system import ActorSystem

__all__ = ["DownloadSettings", "Downloads"]

_ASK_TIMEOUT = 10.0
#: Seconds between two looks at a download another process holds (its end,
#: or its owner's death, announces nothing in this process).
_ELSEWHERE_POLL = 0.2
_MAX_TEXT = TEXT_LIMIT
_NO_EXTRA = frozen_extra(None)  # read-only and empty: one serves every submit
# A source's supervisor stops its children, each within its own
# shutdown_timeout (5 s), and abandons one that overruns (a worker whose
# impl does not see the stop); the workers are stopped together, at most
# 32 at a time, then the queue: a bound, not what a stop takes (about one
# worker's 5 s per 32 deaf runs). Its own bound must cover them all, or its
# parent abandons it mid-teardown and a restart of the subtree starts the
# new queue while the old one is still registered ("already running"): OTP
# gives a supervisor child ``shutdown => infinity`` for this reason. Here:
# every worker the limit allows, and the queue, each at its default bound.
_SOURCE_SHUTDOWN = 5.0 * (MAX_CONCURRENCY + 1)


class DownloadSettings:
    """How the keeper keeps records: ``history`` terminal records stay in
    memory (older ones only in the database); progress is written at most
    every ``flush_interval`` seconds."""

    def __init__(self, *, history: int = 1000, flush_interval: float = 1.0) -> None:
        if isinstance(history, bool) or not isinstance(history, int):
            msg = f"download history must be an int, got {type(history).__name__} {history!r}"
            raise TypeError(msg)
        if history < 0:
            msg = f"download history must be >= 0, got {history}"
            raise ValueError(msg)
        self.history = history
        self.flush_interval = check_duration(
            flush_interval, "download flush_interval", allow_zero=False
        )


def downloads_spec(
    sources: Iterable[DownloadSource],
    settings: DownloadSettings,
    cluster: ClusterSettings | None = None,
) -> ChildSpec:
    """The ``downloads`` subtree: the keeper, then one supervisor per source."""
    sources = tuple(sources)
    registrations = tuple(_registration(s) for s in sources)
    args = (registrations, settings.history, settings.flush_interval)
    keeper = ChildSpec(
        p.KEEPER,
        KeeperActor,
        args=args,
        description="owns and persists the download records",
    )
    if cluster is not None:
        from regisseur.actors.downloads.cluster_keeper import ClusterKeeperActor

        keeper = replace(
            keeper,
            actor=ClusterKeeperActor,
            args=(*args, cluster.node_id, cluster.poll_interval),
            description=f"owns node {cluster.node_id!r}'s downloads in the shared table",
        )
    children = [keeper, *(source_spec(s) for s in sources)]
    return ChildSpec(
        p.DOWNLOADS,
        Supervisor(tuple(children), strategy=Strategy.REST_FOR_ONE),
        description="download keeper and sources",
    )


def _registration(source: DownloadSource) -> p.AddSource:
    return p.AddSource(
        source.name,
        p.SourceConfig(source.concurrency, source.delay, source.cluster_limit),
        source.username,
        source.resumes,
    )


def source_spec(source: DownloadSource) -> ChildSpec:
    """A source's subtree: its queue, then its workers, sharing one run board.

    The board lives as long as the subtree's spec: every incarnation of the
    queue and of the workers gets the same one.
    """
    board = RunBoard(source.concurrency, source.delay)
    queue = ChildSpec(
        p.queue_name(source.name),
        QueueActor,
        args=(source, board),
        description=f"queue of download source {source.name!r}",
    )
    workers = [worker_spec(source, i, board) for i in range(1, source.concurrency + 1)]
    return ChildSpec(
        p.source_supervisor(source.name),
        # REST_FOR_ONE: the workers depend on the queue, so a restarted
        # queue gets fresh workers that announce themselves to it. Sources
        # share nothing but the keeper (an earlier level, stopped after
        # them): they stop together, N deaf ones in one bound, not N.
        Supervisor(
            (queue, *workers),
            strategy=Strategy.REST_FOR_ONE,
            max_restarts=10,
            within=10.0,
            stops_with_peers=True,
        ),
        depends_on=(p.KEEPER,),
        shutdown_timeout=_SOURCE_SHUTDOWN,
        description=f"download source {source.name!r}",
    )


def _not_found(download_id: str, final: DownloadState | None) -> LookupError:
    """Why ``download_id`` has no record: it ended and was forgotten, or never existed."""
    if final is not None:
        return DownloadForgottenError(download_id, final)
    return UnknownDownloadError(download_id)


def _text(value: object, what: str, *, optional: bool = False) -> str | None:
    # The common case first (four per submit): a short ASCII str with a
    # non-blank character passes every check below.
    if type(value) is str and 0 < len(value) <= _MAX_TEXT and value.isascii():
        if not value.isspace():
            return value
    elif value is None and optional:
        return None
    if not isinstance(value, str):
        msg = f"{what} must be a str, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not value.strip():
        msg = f"{what} must not be empty"
        raise ValueError(msg)
    if len(value) > _MAX_TEXT:
        msg = f"{what} is {len(value)} characters long; the limit is {_MAX_TEXT}"
        raise ValueError(msg)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: it could never be stored
        msg = f"{what} is not valid text (position {exc.start}: {value[exc.start]!r})"
        raise ValueError(msg) from None
    return value


def _extra(extra: object) -> MappingProxyType[str, Any]:
    if extra is None:
        return _NO_EXTRA
    if not isinstance(extra, Mapping):
        msg = f"extra must be a mapping, got {type(extra).__name__}"
        raise TypeError(msg)
    for key in extra:
        if not isinstance(key, str):
            msg = f"extra keys must be str, got {key!r}"
            raise TypeError(msg)
    try:
        json.dumps(dict(extra))
    except (TypeError, ValueError) as exc:
        msg = f"extra must be JSON-serialisable (it is stored): {exc}"
        raise TypeError(msg) from exc
    return frozen_extra(extra)


def _states(states: object) -> tuple[DownloadState, ...] | None:
    if states is None:
        return None
    if isinstance(states, (DownloadState, str)):
        states = (states,)
    if not isinstance(states, Iterable):
        msg = f"states must be DownloadState values, got {states!r}"
        raise TypeError(msg)
    out = []
    for state in states:
        try:
            out.append(DownloadState(state))
        except ValueError:
            known = ", ".join(repr(s.value) for s in DownloadState)
            msg = f"unknown download state {state!r} (known: {known})"
            raise ValueError(msg) from None
    return tuple(out)


def _not_running(system: ActorSystem) -> RuntimeError:
    return RuntimeError(f"system {system.name!r} is not running: downloads are unavailable")


class Downloads:
    """The download facade of one system (``system.downloads``)."""

    def __init__(
        self,
        system: ActorSystem,
        settings: DownloadSettings,
        sources: Iterable[DownloadSource] = (),
    ) -> None:
        self._system = system
        self.settings = settings
        self._lock = threading.Lock()
        # A read-only snapshot of the registered names (replaced, never
        # changed) so submit() can refuse an unknown source without an ask.
        self._names: frozenset[str] = frozenset(s.name for s in sources)
        self._cluster_sources: frozenset[str] = frozenset()  # seen on other nodes
        # Ids: a random prefix per facade and a counter (next() on a count
        # is atomic), unique across processes without a syscall per submit.
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count(1)
        self._keeper_started = False
        # Submits answered with an id that the keeper has not stored yet: a
        # restarted keeper queues them again (see ``accepted``).
        self._accepted = AcceptedSubmits()

    # -- plumbing ------------------------------------------------------------
    def _local_sources(self) -> list[str]:
        """The sources registered on this node (any thread)."""
        return sorted(self._names)

    def _check_source(self, source: str) -> None:
        """Raise ``UnknownSourceError`` unless some node serves ``source``."""
        if source in self._names or source in self._cluster_sources:
            return
        cluster = self._system.cluster
        known = set(self._names)
        if cluster is not None and self._usable():
            # Read again only on a miss: a source once seen stays valid (its
            # downloads wait in the queue until a node that has it claims them).
            found = frozenset(cluster.sources())
            self._cluster_sources = self._cluster_sources | found
            known |= found
            if source in known:
                return
        raise UnknownSourceError(source, sorted(known))

    def _usable(self) -> bool:
        # "starting" too: children may submit from their on_start.
        return self._system.state in (Lifecycle.STARTING, Lifecycle.RUNNING)

    def _ensure_keeper(self) -> None:
        """Start the downloads subtree if the system started without one."""
        self._system.check_not_forked()  # a forked child would queue to nobody
        if not self._usable():
            raise _not_running(self._system)
        if self._keeper_started:
            return
        with self._lock:
            if self._system.registry.find(p.KEEPER) is None:
                self._system.spawn(downloads_spec((), self.settings))
            self._keeper_started = True

    def _ask(self, message: object, timeout: float | None = _ASK_TIMEOUT) -> Any:
        self._ensure_keeper()
        try:
            reply = self._system.ask(p.KEEPER, message, timeout=timeout)
        except (UnknownActorError, pykka.ActorDeadError) as exc:
            raise _not_running(self._system) from exc
        return reply.unwrap() if hasattr(reply, "unwrap") else reply

    # -- sources -----------------------------------------------------------------
    def register(self, source: DownloadSource) -> None:
        """Add a source at runtime (its queue and workers start now)."""
        if not isinstance(source, DownloadSource):
            msg = f"register() needs a DownloadSource, got {type(source).__name__}"
            raise TypeError(msg)
        self._ask(_registration(source))
        try:
            self._system.spawn(source_spec(source), supervisor=p.DOWNLOADS)
        except BaseException:
            self._system.tell(p.KEEPER, p.RemoveSource(source.name))
            raise
        with self._lock:
            self._names = self._names | {source.name}
        self._system.publish_sources()

    def sources(self) -> list[str]:
        """The registered source names."""
        result: list[str] = self._ask(p.ListSources())
        return result

    def configure(
        self, source: str, *, concurrency: int | None = None, delay: float | None = None
    ) -> None:
        """Change a source's concurrency and/or delay; effective at once.

        The keeper stores the new limits and tells the source's queue;
        this returns once the queue has applied them, so the next start
        keeps them (a lowered concurrency: nothing starts until fewer
        downloads run than the new limit; running ones are not stopped).
        A queue that is restarting gets them from the keeper when it is
        back; this then returns without waiting for it.
        """
        _text(source, "source")
        if concurrency is not None:
            check_concurrency(concurrency)
        if delay is not None:
            delay = check_duration(delay, "delay")
        self._ask(p.Configure(source, concurrency, delay))
        try:
            # Behind the keeper's message in the queue's mailbox (FIFO).
            self._system.ask(p.queue_name(source), p.Applied(), timeout=_ASK_TIMEOUT)
        except (UnknownActorError, pykka.ActorDeadError, TimeoutError):
            pass  # restarting or gone: its next start gets the limits from the keeper

    # -- downloads ---------------------------------------------------------------------
    def submit(
        self,
        source: str,
        target_id: str,
        display_name: str,
        original_filename: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue a download and return its id at once.

        The keeper stores the record (Initializing) before the download can
        start; ``status(id)`` from the same thread already sees it, and
        answers only once it is stored. The download starts when the
        source has a free worker and its delay has passed. The id is never
        lost: a keeper that crashes or dies before it stored the submit
        queues it again when it restarts. Raises
        ``UnknownSourceError`` for an unknown source. In cluster mode a
        source registered on any live node is known, and the download runs
        on one of the nodes that have it.
        """
        source = _text(source, "source") or ""
        self._check_source(source)
        message = QueueDownload(
            id=f"{self._id_prefix}{next(self._ids):012x}",
            source=source,
            target_id=_text(target_id, "target_id") or "",
            filename=_text(display_name, "display_name") or "",
            original_filename=_text(original_filename, "original_filename", optional=True),
            extra=_extra(extra),
        )
        self._ensure_keeper()
        cell = self._system.registry.find(p.KEEPER)
        if cell is None or not self._usable():
            raise _not_running(self._system)
        self._accepted.add(message)  # before the keeper can lose the message
        try:
            cell.ref.tell(message)
        except pykka.ActorDeadError as exc:
            self._accepted.discard((message.id,))
            raise _not_running(self._system) from exc
        return message.id

    def status(self, download_id: str) -> DownloadRecord | None:
        """The download's current record, or ``None`` for an unknown id.

        Also ``None`` (without a database) for a download that ended longer
        ago than the ``history`` keeps records; ``wait`` tells it apart.
        """
        _text(download_id, "download_id")
        record: DownloadRecord | None = self._ask(p.Lookup(download_id))
        return record

    def cancel(self, download_id: str) -> bool:
        """Cancel a download; True if it was cancelled now, False if it had ended.

        A queued download is dropped; a running one is Cancelled at once and
        its impl sees ``context.cancelled`` become true.
        """
        _text(download_id, "download_id")
        cancelled: bool = self._ask(CancelDownload(download_id))
        return cancelled

    def retry(self, download_id: str) -> bool:
        """Run an Errored or Cancelled download again, under the same id.

        True if it was put back (Initializing, queued like a submit, a
        ``DownloadStateChanged`` from its final state), False if it has not
        ended (queued or running: nothing to do). Its source resumes what
        the earlier run kept: ``HttpSource`` keeps the ``.part`` of a
        download the local disk refused (full, or over quota), so a retry
        after space was freed continues at the bytes it had.

        Raises ``UnknownDownloadError`` for an unknown id (``DownloadForgottenError``
        for one dropped from memory), ``ValueError`` for a download that
        succeeded (submit it again instead), and ``UnknownSourceError`` when
        its source is not registered here. With a database the reopened
        record is stored, owned by this system, before the call returns; of
        two processes retrying the same download at once, one gets True.

        In cluster mode the reopened row is stored free, like a submit, and
        any node may call this: whichever node serves the source claims it
        (a part an earlier run kept is resumed where that node can see it,
        in its own download directory or a shared one); of two nodes
        retrying at once, one gets True.
        """
        _text(download_id, "download_id")
        retried: bool = self._ask(p.Retry(download_id))
        return retried

    def take_over(self, download_id: str) -> bool:
        """Run here an unfinished download whose owner, another process on this
        database, is gone; True if this system runs it (now, or already).

        False if it has ended, or a live process holds it: a stopped
        (frozen) one too, whose owner lock is still held. Of several
        processes asking at once, exactly one gets True: the row changes
        hands by one conditional write, stored before the call returns.
        The download then runs here under its id, resumed from what its
        dead owner kept (``HttpSource`` resumes the ``.part``, whose lock
        died with that process), and reports here like any other. Only a
        SQLite file has owner locks: on any other database another owner
        always counts as alive (False). Raises ``UnknownDownloadError``
        for an unknown id, ``UnknownSourceError`` when its source is not
        registered here, and ``NotImplementedError`` in cluster mode (a
        dead node's downloads are taken over when its lease expires).
        """
        _text(download_id, "download_id")
        where: str = self._ask(p.TakeOver(download_id))
        if where == p.NO_SOURCE:
            record = self.status(download_id)
            raise UnknownSourceError(record.source if record else "?", self._local_sources())
        return where == p.HERE

    def wait(self, download_id: str, timeout: float | None = None) -> DownloadRecord:
        """Block until the download has ended; return its final record.

        A download another process on this database holds is waited for
        by looking at its record every ``_ELSEWHERE_POLL`` seconds; when
        that process dies without finishing it and its source is
        registered here, it is taken over (``take_over``) and finished here.
        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: no limit),
        ``UnknownDownloadError`` for an id that never existed and, without a
        database, ``DownloadForgottenError`` (with the final ``state``) for a
        download that ended longer ago than the ``history`` keeps records.
        """
        _text(download_id, "download_id")
        if timeout is not None:
            timeout = check_duration(timeout, "wait(timeout)")
        ended = threading.Event()
        final: list[DownloadRecord] = []

        def watch(event: object) -> None:
            if (
                isinstance(event, DownloadStateChanged)
                and event.record.id == download_id
                and event.record.terminal
            ):
                final.append(event.record)
                ended.set()

        with self._system.events.subscribe(watch, DownloadStateChanged):
            record = self.status(download_id)
            if record is None:
                raise _not_found(download_id, self._ask(p.FinalState(download_id)))
            if record.terminal:
                return record
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._where(download_id) != p.HERE:
                # Ended, or another process's: an end there comes with no event here.
                now = self.status(download_id) or record
                if now.terminal:
                    return now
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise self._timed_out(download_id, now, timeout)
                pause = _ELSEWHERE_POLL if left is None else min(left, _ELSEWHERE_POLL)
                if ended.wait(pause):
                    return final[0]
                record = now
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not ended.wait(bounded_wait(left)):
                raise self._timed_out(download_id, record, timeout)
        return final[0]

    def _where(self, download_id: str) -> str:
        """Where the download runs: ``HERE`` (taken over if its owner is gone),
        ``ENDED``, or ``ELSEWHERE`` (another process, or no source here)."""
        try:
            where: str = self._ask(p.TakeOver(download_id))
        except NotImplementedError:
            return p.HERE  # cluster mode: every node's changes reach this one as events
        return where

    @staticmethod
    def _timed_out(
        download_id: str, record: DownloadRecord, timeout: float | None
    ) -> WaitTimeoutError:
        msg = (
            f"download {download_id!r} did not end within {timeout:g}s "
            f"(state: {record.state.value})"
        )
        return WaitTimeoutError(msg)

    async def wait_async(self, download_id: str, timeout: float | None = None) -> DownloadRecord:
        """``wait()`` for coroutines: the loop is woken when the download ends.

        Never blocks the event loop (see ``regisseur.actors.aio``); the same
        errors as ``wait()``, and the same take-over of a download whose
        owner (another process) died. Cancelling the awaiting task leaves the
        download running.
        """
        from regisseur.actors import aio

        _text(download_id, "download_id")

        async def missing() -> LookupError:
            return _not_found(download_id, await self._ask_async(p.FinalState(download_id)))

        async def held_here() -> bool:
            try:
                where = await self._ask_async(p.TakeOver(download_id))
            except NotImplementedError:
                return True  # cluster mode: every node's changes reach this one as events
            return bool(where == p.HERE)

        return await aio.wait_download(
            self._system,
            download_id,
            timeout,
            lambda: self.status_async(download_id),
            missing,
            held_here=held_here,
            poll=_ELSEWHERE_POLL,
        )

    async def status_async(self, download_id: str) -> DownloadRecord | None:
        """``status()`` for coroutines: awaits the keeper without blocking the loop."""
        _text(download_id, "download_id")
        record: DownloadRecord | None = await self._ask_async(p.Lookup(download_id))
        return record

    async def _ask_async(self, message: object) -> Any:
        """``_ask`` for coroutines (on the loop's thread; the loop is never blocked)."""
        self._ensure_keeper()
        try:
            reply = await self._system.ask_async(p.KEEPER, message, timeout=_ASK_TIMEOUT)
        except (UnknownActorError, pykka.ActorDeadError) as exc:
            raise _not_running(self._system) from exc
        return reply.unwrap() if hasattr(reply, "unwrap") else reply

    def list(
        self,
        source: str | None = None,
        states: Iterable[DownloadState | str] | DownloadState | str | None = None,
        *,
        timeout: float | None = _ASK_TIMEOUT,
    ) -> list[DownloadRecord]:
        """Records (oldest first), optionally of one source and some states.

        ``timeout``: seconds to wait for the keeper's answer (None: no
        limit), then ``WaitTimeoutError``. Listing 100,000 records while
        the source's workers run can take longer than the default 10 s.
        """
        if source is not None:
            _text(source, "source")
        if timeout is not None:
            timeout = check_duration(timeout, "list(timeout)")
        message = p.ListRecords(source, _states(states))
        records: list[DownloadRecord] = self._ask(message, timeout)
        return records

    def subscribe(
        self, callback: Callable[[Any], object] | Any, *, progress: bool = True
    ) -> Subscription:
        """Receive every ``DownloadStateChanged`` (and ``DownloadProgressed``).

        ``callback`` is a callable or an ``ActorRef``; it runs on the event
        bus's thread. Returns a handle whose ``cancel()`` unsubscribes.
        """
        types: tuple[type, ...] = (DownloadStateChanged,)
        if progress:
            types = (*types, DownloadProgressed)
        return self._system.events.subscribe(callback, *types)
