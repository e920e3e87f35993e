"""A download worker: runs one download at a time with the source's impl.

Threads: the impl runs on this actor's thread, inside the ``Take`` handler;
a worker is therefore one unit of its source's concurrency. It takes its
downloads from the source's ``RunBoard`` itself: it tells the keeper of
the start (``ClaimDownload``) before it runs the impl, then the result,
and goes straight on to the next download while its mailbox is empty;
when a message waits (a stop, an ask, a timer), the testing kit planned a
fault, or the run was its first since a restart (the supervisor counts
failures in a row until a handler returns), it sends itself a ``Take``
instead and returns, so that the message is handled between two downloads.
With nothing to take it parks on the board until the queue wakes it.

Failures: an exception from the impl, or ``None`` instead of a path, makes
the download Errored; the worker itself carries on. If the worker dies
(its thread killed, or a ``BaseException`` out of the impl), it reports
the download it was running Errored ("worker died: ...") before its
thread ends, and the supervisor starts a fresh worker. A stop request
cancels the running download's token with the reason ``"stopping"``: the
record stays InProgress and is resumed at the next start, unless the impl
returned its file all the same (the stop came after the publish): then the
download is reported done, as it is; and an impl without a context, which
cannot see a stop, has its outcome reported as it is. A run that outlives
its worker (abandoned by the supervisor past its stop timeout) reports to
whichever keeper runs then, and wakes its successors when it leaves the
board (see ``board``). In cluster mode
a run whose node fenced itself (reason ``"fenced"``) reports no result
either: it is released to the keeper, which decides.

Ownership: every message about the run carries its claim (``Taken.claim``);
``DownloadContext.still_owner()`` reads the keeper's ``ClaimView`` (see
``claim_view``) or, in cluster mode, asks the keeper (``CheckClaim``, at
most ``_CHECK_TIMEOUT`` seconds; no answer counts as not the owner).
The context also carries ``Taken.earlier``, the highest claim an earlier
keeper recorded (``DownloadContext.earlier_claim``).
"""

from __future__ import annotations

from os import PathLike, fsdecode, fsencode, fspath
from typing import TYPE_CHECKING, Any

from pykka import ActorDeadError

from regisseur.actors.actor import Actor
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads.board import RETIRE, Taken
from regisseur.actors.downloads.context import CancelToken, DownloadContext
from regisseur.actors.downloads.errors import DownloadFailure
from regisseur.actors.downloads.names import is_text
from regisseur.actors.downloads.queue import wake_workers
from regisseur.actors.errors import UnknownActorError, describe_error
from regisseur.actors.log import redact_text
from regisseur.messages.downloads import ClaimDownload, CompleteDownload, FailDownload
from regisseur.messages.lifecycle import Lifecycle

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.downloads.board import RunBoard
    from regisseur.actors.downloads.source import DownloadSource
    from regisseur.messages.downloads import DownloadRecord

__all__ = ["WorkerActor"]

_MAX_ERROR = 1000
_NO_NEW_RUNS = frozenset({Lifecycle.STOPPING, Lifecycle.STOPPED, Lifecycle.FAILED})
_CHECK_TIMEOUT = 30.0


def _error_text(exc: Exception) -> str:
    if isinstance(exc, DownloadFailure):
        return redact_text(str(exc))[:_MAX_ERROR] or type(exc).__name__
    return describe_error(exc)


class _StopWaker:
    """Cancels a download's token when the worker is asked to stop or killed."""

    __slots__ = ("stopping", "token")

    def __init__(self, token: CancelToken, stopping: Callable[[], bool]) -> None:
        self.token = token
        self.stopping = stopping

    def set(self) -> None:
        # A stop keeps the download for the next start; a kill is a death
        # (the keeper errors the download when it hears of it).
        self.token.cancel("stopping" if self.stopping() else "killed")


class WorkerActor(Actor):
    """Runs the downloads its source's queue hands it, one at a time."""

    # A source's workers are stopped together (their stops do not depend on
    # each other's): N runs that ignore the stop cost one shutdown_timeout,
    # not N in a row. None takes anything new meanwhile: each checks its own
    # ``stopping`` (asked of all at once) and the system's state first.
    stops_with_peers = True

    def __init__(self, source: DownloadSource, board: RunBoard) -> None:
        super().__init__()
        self._source = source
        self._board = board
        self._state: Any = None
        self._current: str | None = None
        cluster = self.system.cluster
        # Cluster mode: the token also reads as cancelled once the node's
        # lease guard ran out (a process waking from a freeze).
        self._new_token: Callable[[], CancelToken] = (
            CancelToken if cluster is None else cluster.new_token
        )

    def on_start(self) -> None:
        if self._source.open_worker is not None:
            self._state = self._source.open_worker()
        self._board.join(self.name)
        self._actor_ref.tell(p.TAKE)

    def on_stop(self) -> None:
        # No successor is woken here: a worker stopped alone is either
        # parked (it held nothing) or restarted (it takes again), and
        # the others are stopping too when the source or system stops.
        self._board.leave(self.name)
        if self._source.close_worker is not None and self._state is not None:
            try:
                self._source.close_worker(self._state)
            except Exception as exc:  # noqa: BLE001 - closing must not fail the stop
                self.log.warning("close_worker_failed", error=describe_error(exc))

    def health(self) -> dict[str, Any]:
        return {"download": self._current}

    def busy_health(self) -> dict[str, Any] | None:
        # Any thread: one read of an attribute this actor's thread replaces.
        current = self._current
        return {"download": current} if current is not None else None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, p.Take):
            self._take()
            return None
        return super().on_receive(message)

    def _take(self) -> None:
        """Run the next download on the board; then ask for another (or park, wait, retire).

        Nothing new starts once this worker or the whole system is stopping:
        the workers are asked to stop together but end one by one, and a
        worker still running would otherwise take what a stopped one
        released (a run begun only to be cut off, its request wasted).
        """
        if self.stopping or self.system.state in _NO_NEW_RUNS:
            return
        board, name, clock = self._board, self.name, self.system.clock
        taken = board.take(name, clock.now(), self._new_token)
        while isinstance(taken, Taken):
            if taken.wake is not None:
                self._wake(taken.wake)
            download_id = taken.record.id
            try:
                self._run(taken.record, taken.token, taken.claim, taken.earlier)
            except BaseException:
                self._current = None
                self._wake_all(board.done(name, download_id))
                raise
            self._current = None
            if self.stopping or self.system.state in _NO_NEW_RUNS:
                self._wake_all(board.done(name, download_id))
                return
            if self.mailbox_waiting():
                # A message waits (a stop, a health ask, a timer), a fault is
                # planned, or this was the first run since a restart (its
                # return ends the failures in a row): back to the mailbox,
                # then this Take.
                self._wake_all(board.done(name, download_id))
                self._actor_ref.tell(p.TAKE)
                return
            # Straight on to the next download: no Take through the mailbox.
            wakes, taken = board.done_and_take(name, download_id, clock.now(), self._new_token)
            self._wake_all(wakes)
        if taken is RETIRE:  # above the concurrency limit: make way, then go
            successor = self._board.leave(self.name)
            if successor is not None:
                self._wake(successor)
            # The queue stops it (or wakes it, if the limit was raised
            # meanwhile): it alone orders the stops and starts of workers.
            try:
                self.system.tell(p.queue_name(self._source.name), p.Retire(self.name))
            except UnknownActorError:  # the source is going away
                pass
        elif isinstance(taken, float):
            self.schedule(taken, p.TAKE)  # the source's delay; one worker waits at a time

    def _run(self, record: DownloadRecord, token: CancelToken, claim: int, earlier: int) -> None:
        # The keeper hears of the start before the result: both go through
        # its mailbox from this thread, in this order.
        self.system.tell(p.KEEPER, ClaimDownload(record.id, self.name, claim))
        if token.cancelled:
            if token.reason == "fenced":  # cluster: not ours to run now; the keeper decides
                self.system.tell(p.KEEPER, p.Released(record.id, self.name, claim))
            return  # else withdrawn as it was taken: the keeper has ended it
        if self._ended_before_start(record.id, claim):
            return  # cancelled before it was taken: the keeper has ended it, the run never starts
        self._current = record.id
        waker = _StopWaker(token, lambda: self.stopping)
        try:
            with self.wake_on_stop(waker):
                outcome = self._call_impl(record, token, claim, earlier)
        except BaseException as exc:  # the thread dies with the run (SystemExit, say)
            self._died(record, claim, describe_error(exc))
            raise
        if (
            token.cancelled
            and token.reason == "stopping"
            and (isinstance(outcome, CompleteDownload) or not self._source.with_context)
        ):
            # The stop came after the impl had published the file: it is
            # done. Released, it would stay InProgress without a part, and
            # the next start would fetch it again, to another name. An
            # impl without a context cannot see a stop: its failure is its
            # own, not an interruption, and is reported as it is.
            self.system.tell(p.KEEPER, outcome)
            return
        if token.cancelled and token.reason in ("stopping", "killed", "fenced"):
            if token.reason == "killed":
                self._died(record, claim, "thread killed")
            else:
                self.system.tell(p.KEEPER, p.Released(record.id, self.name, claim))
            return
        self.system.tell(p.KEEPER, outcome)

    def _ended_before_start(self, download_id: str, claim: int) -> bool:
        """True if the keeper ended the download (or started a later run) before this take.

        The keeper answers ``cancel`` once it has ended the record and then
        tells the queue actor to withdraw it from the board; a worker that
        takes from the board in between would start a download the caller
        was told is cancelled (its request sent, its impl run). The keeper's
        claim view already shows it ended: read it here, on this thread,
        with no message. Cluster mode has no view (the claim is checked in
        the database); there the ``Withdraw`` cancels the token soon after.
        """
        view = self._board.claim_view
        return view is not None and view.check(download_id, claim) is False

    def _died(self, record: DownloadRecord, claim: int, why: str) -> None:
        """Tell the keeper the run ends with this worker's thread: Errored.

        Said by the dying thread itself, under the run's claim, before the
        thread ends: the supervisor's ``ChildFailed`` goes through the event
        bus and may reach the keeper after this worker's successor has
        claimed a download under the same name (a slow subscriber), so it
        cannot tell which run died.
        """
        self.system.tell(p.KEEPER, FailDownload(record.id, f"worker died: {why}", claim))

    def _wake(self, worker: str) -> None:
        wake_workers(self.system, self._board, [worker])

    def _wake_all(self, workers: list[str]) -> None:
        """Wake the workers an orphan's end unparked (none for a live worker)."""
        if workers:
            wake_workers(self.system, self._board, workers)

    def _owner_check(self, download_id: str, claim: int, token: CancelToken) -> Callable[[], bool]:
        """How the run finds out whether it still owns its download.

        In cluster mode it asks the keeper, which reads the row. Else it
        reads the keeper's claim view on this thread. While the keeper has
        not yet handled the run's start (a short download can end first),
        the run is the owner unless its token was cancelled: on one node
        the board never hands a download to a second run while a first one
        runs, and every way to end or replace a run (a cancel, a stop, a
        restart of the keeper or the source, an abandoned thread) cancels
        its token or ends the record, which the view shows.
        """
        view = self._board.claim_view
        if view is None:
            return lambda: self._still_owner(download_id, claim)

        def check() -> bool:
            known = view.check(download_id, claim)
            return not token.cancelled if known is None else known

        return check

    def _still_owner(self, download_id: str, claim: int) -> bool:
        """Ask the keeper whether ``claim`` is the current run (False if no answer)."""
        try:
            current = self.system.ask(
                p.KEEPER, p.CheckClaim(download_id, claim), timeout=_CHECK_TIMEOUT
            )
        except (UnknownActorError, ActorDeadError, TimeoutError) as exc:
            self.log.warning("download_owner_unconfirmed", download=download_id, error=str(exc))
            return False
        return current is True

    def _call_impl(
        self, record: DownloadRecord, token: CancelToken, claim: int, earlier: int
    ) -> CompleteDownload | FailDownload:
        source = self._source
        context: DownloadContext | None = None
        args: tuple[Any, ...] = (record.id, record.target_id, record.filename)
        if source.with_context:
            context = DownloadContext(
                download_id=record.id,
                target_id=record.target_id,
                display_name=record.filename,
                original_filename=record.original_filename,
                extra=record.extra,
                destination=source.directory,
                worker_state=self._state,
                token=token,
                timers=self.system.timers,
                send=lambda progress: self.system.tell(p.KEEPER, progress),
                log=self.log.bind(download=record.id),
                claim=claim,
                check_owner=self._owner_check(record.id, claim, token),
                earlier_claim=earlier,
            )
            args = (*args, context)
        try:
            result = source.impl(*args)
        except Exception as exc:  # noqa: BLE001 - any impl error makes the record Errored
            text = _error_text(exc)
            if not token.cancelled:
                self.log.warning("download_failed", download=record.id, error=text)
            return FailDownload(record.id, text, claim)
        if result is None:
            return FailDownload(record.id, "the source returned no file", claim)
        if not isinstance(result, (str, PathLike)):
            return FailDownload(
                record.id, f"the source returned {type(result).__name__}, not a file path", claim
            )
        path = fsdecode(fspath(result))
        if not is_text(path):
            shown = fsencode(path)
            text = (
                f"the source returned the path {shown!r}, which is not UTF-8 text "
                "(records keep paths as text)"
            )
            return FailDownload(record.id, text, claim)
        if context is not None:
            return CompleteDownload(
                record.id, path, context.transferred or None, context.size, claim
            )
        return CompleteDownload(record.id, path, claim=claim)
