"""One run of :meth:`HttpSource.fetch`: attempts, resume, retries, final name.

A :class:`Fetch` lives on the worker thread for one call of the impl:

1. resume point: the ``.part`` (locked for this run, see ``_partfile``),
   its validators and the offset recorded with it, if usable (its size,
   when the meta file was written in this boot of the machine: a run
   killed mid-way fetches none of its bytes again); a later run
   also weighs the parts an earlier run set aside and continues the best
   one it can lock (removing the others it locked); a part whose body is
   already complete is published without a request;
2. request (``Range``/``If-Range`` when resuming), redirects followed by
   hand, each hop checked to be http or https;
3. the answer: 206 resumes; 200 (the server ignored the range, or the file
   changed) starts over; 416 or changed validators start over at once;
   408/429/5xx are retried after ``Retry-After`` or the backoff;
4. the body streams to the part (cancel seen between chunks; every
   ``_CHECKPOINT_BYTES`` the part is flushed and its good length recorded),
   its length is checked against ``Content-Length``/``Content-Range``, then
   fsynced and recorded as complete (a small body, ``_SMALL_BODY``, keeps no
   record unless its run ends early);
5. checksum, the ownership check (``ctx.ensure_owner()``: a run that was
   taken over publishes nothing), then the part moves to a free safe name
   (never overwriting); parts of the download that another process held
   when the run began and that it can lock now are removed.

On failure or a user cancel the part is removed unless ``keep_partial``; on
a stop (cancel reason ``"stopping"``) it is kept for the next start unless
it is empty (stopped before the body came); so it
is when the local disk is full (``ENOSPC``, ``EDQUOT``) and the part has
bytes a resume can use: the error says how many were kept, and a re-run of
the download (``system.downloads.retry``) continues there. A run that lost
ownership (``StaleClaimError``) always removes what it wrote.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import re
import socket
import time
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from regisseur.actors.downloads import _splice
from regisseur.actors.downloads._dirsync import sync_directory
from regisseur.actors.downloads._http_body import ChunkedReader, SocketBody, Stalled, plain_reader
from regisseur.actors.downloads._http_limits import TooSlow, Watchdog
from regisseur.actors.downloads._http_session import prepare_get, send_get, waiting_for_answer
from regisseur.actors.downloads._http_wire import (
    SCHEMES,
    check_url,
    content_length,
    cross_origin,
    network_reason,
    parse_content_range,
    parse_retry_after,
    retryable,
    status_text,
    unknown_host,
    unreadable_coding,
)
from regisseur.actors.downloads._partfile import (
    CompareStopped,
    PartFile,
    PartInUseError,
    PartNotOwnedError,
    PartSyncError,
    PartWriter,
    ResumePoint,
    Validators,
)
from regisseur.actors.downloads.context import REPORT_INTERVAL
from regisseur.actors.downloads.errors import StaleClaimError
from regisseur.actors.downloads.http_errors import STOPPING, DownloadError, DownloadInterrupted
from regisseur.actors.downloads.names import (
    choose_filename,
    move_into_place,
    name_from_content_disposition,
    name_from_url,
)
from regisseur.actors.log import redact_text
from regisseur.messages.redaction import SENSITIVE_WORDS

if TYPE_CHECKING:
    import hashlib
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    from regisseur.actors.downloads.context import DownloadContext
    from regisseur.actors.downloads.http import HttpSource

__all__ = ["Fetch"]

_MAX_START_OVERS = 3  # a server that keeps changing the file under us
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CROSS_ORIGIN_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
_CREDENTIAL_NAME = re.compile(SENSITIVE_WORDS)  # X-Api-Key, X-Auth-Token (lower case)
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)
# The part's good length is recorded after the first chunk of a body, then
# every _CHECKPOINT_BYTES, or every _CHECKPOINT_SECONDS once _CHECKPOINT_MIN
# bytes came (a slow body). These are not fsynced (the length is checked
# against the part's size at a resume); the complete one is, with ``fsync``.
# A resume in the boot that wrote them continues at the part's size instead
# (see _partfile): a checkpoint is what a resume after a reboot (or on
# another machine sharing the folder) trusts. Each one creates a file
# (0.5 ms of CPU here): every 4 MiB took a third of the copy loop's CPU at
# loopback speed, so a fast body is recorded every 32 MiB, a slow one
# every 5 s.
_CHECKPOINT_BYTES = 32 * 1024 * 1024
_CHECKPOINT_MIN = 256 * 1024
_CHECKPOINT_SECONDS = 5.0
# A checkpoint asks whether this run still owns the download (an ask to the
# keeper, or the database in cluster mode) at most this often: a run taken
# over meanwhile stops within about this long, and the publish always asks.
# At every checkpoint it cost a fast download ~10% of its throughput in round trips.
_OWNER_CHECK_SECONDS = 5.0
# A fresh body whose announced length is at most this is *small*: no meta
# file while it streams (creating one costs as much as the part itself on
# some file systems, and a small body is cheaper to fetch again than to
# resume). If its run ends without the whole body (a retry, a stop, a kept
# partial) its good length is recorded then, as for any body; a crash
# mid-way leaves a part without a meta file, which is never resumed: the
# next run starts it from byte 0.
_SMALL_BODY = _CHECKPOINT_MIN
_LOCK_POLL = 0.2  # seconds between two tries of a part another run holds
# A read of a body gives up after this many real seconds without a byte, so
# what the copy holds is written and reported while a server stalls; the
# read timeout then counts these quiets together.
_QUIET = REPORT_INTERVAL
# A write the local disk refused for want of space (the disk, or the user's
# quota): the part's bytes so far are good and the user can free space, so
# the part is kept for a re-run (see Fetch._kept_for_rerun).
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_ASIDE_AFTER = 15  # tries (about 3 s) before a claimed run writes a part of its own


def _plain_body(response: requests.Response) -> http.client.HTTPResponse | None:
    """The ``http.client`` response under ``response`` if its body can be read
    as is (chunked or not): nothing buffered or decoded by urllib3 yet."""
    raw = response.raw
    body = getattr(raw, "_fp", None)
    if not isinstance(body, http.client.HTTPResponse) or body.fp is None:
        return None
    if body.chunked and (body.chunk_left is not None or raw.chunk_left is not None):
        return None
    if getattr(raw, "_fp_bytes_read", None) != 0 or len(getattr(raw, "_decoded_buffer", ())):
        return None
    return body


def _abort(response: requests.Response) -> None:
    """Shut the response's socket down (any thread) so a blocked read returns."""
    raw = response.raw
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    candidates = [getattr(connection, "sock", None)]
    # With "Connection: close" http.client detaches the socket from the
    # connection; the response's own file still holds it.
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    candidates.append(getattr(fp, "_sock", None))
    for sock in candidates:
        if isinstance(sock, socket.socket):
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """End every blocked read of ``sock`` at once (any thread)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Retry(Exception):
    """An attempt failed in a way worth another try."""

    def __init__(self, text: str, retry_after: float | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.retry_after = retry_after


class _StartOver(Exception):
    """The partial file is unusable: download from byte 0, without waiting."""


def _expected_sha256(extra: Mapping[str, Any]) -> str | None:
    value = extra.get("sha256")
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.fullmatch(value.strip()):
        msg = f"extra['sha256'] must be 64 hex digits, got {value!r}"
        raise DownloadError(msg)
    return value.strip().lower()


def _proxy_of(session: requests.Session, url: str) -> str:
    """The proxy ``session`` sends ``url`` through (its own, else the
    environment's, as ``requests`` picks it), or ``"?"`` (shown redacted)."""
    proxies = dict(session.proxies)
    if session.trust_env:
        for scheme, proxy in requests.utils.get_environ_proxies(url).items():
            proxies.setdefault(scheme, proxy)
    return requests.utils.select_proxy(url, proxies) or "?"


def _credential_headers(names: Iterable[str]) -> list[str]:
    """Of header ``names``, those that carry credentials (never sent to another origin)."""
    fixed = {name.lower() for name in _CROSS_ORIGIN_HEADERS}
    found = {n for n in names if n.lower() in fixed or _CREDENTIAL_NAME.search(n.lower())}
    return [*_CROSS_ORIGIN_HEADERS, *sorted(found)]


def _url_auth(url: str) -> tuple[str, str] | None:
    """The user and password in ``url`` (percent-decoded), or ``None``."""
    user, password = requests.utils.get_auth_from_url(url)
    return (user, password) if user or password else None


def _better(theirs: ResumePoint, ours: ResumePoint) -> bool:
    """True if a run would rather continue the part at ``theirs`` than at ``ours``."""
    if theirs.validators is None:
        return False
    if ours.validators is None:
        return True
    return (theirs.complete, theirs.offset) > (ours.complete, ours.offset)


def _disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or what caused it) is the local disk refusing a write
    for want of space (``_DISK_FULL``), not a failed fsync."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, PartSyncError):
            return False
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return True
        current = current.__cause__
        seen += 1
    return False


def _cancel_reason(ctx: DownloadContext) -> str:
    """Why ``ctx`` was cancelled (``"stopping"`` when the system stops)."""
    return ctx.cancel_reason or "cancelled"


class Fetch:
    """One call of the impl; every method runs on the calling worker thread."""

    def __init__(
        self,
        source: HttpSource,
        session: requests.Session,
        ctx: DownloadContext,
        target_id: str,
        display_name: str,
    ) -> None:
        self.source = source
        self.session = session
        self.ctx = ctx
        self.url = check_url(target_id)
        self._shown: str | None = None
        self.expected_sha256 = _expected_sha256(ctx.extra)
        self.directory = source.download_directory
        self.display_name = display_name
        self.part = PartFile(
            self.directory,
            (ctx.original_filename, name_from_url(self.url), display_name),
            ctx.download_id,
            file_systems=source.file_systems,
        )
        self._shared = self.part  # made from the download's names (see PartFile.set_aside)
        self.server_name: str | None = None
        self.digest: str | None = None
        # This run continued an unfinished part of the download: the run that
        # wrote it never published, so a file under the name is not its
        # (see _finish). False while every attempt started from nothing.
        self._continued_part = False
        self.received = 0
        self.watch = Watchdog(
            ctx,
            max_time=source.max_time,
            speed_limit=source.speed_limit,
            speed_time=source.speed_time,
            url=self.url,
        )
        self.validators = Validators(None, None, None)  # of the body being written
        self._file: PartWriter | None = None  # the part, while the body streams
        self._checkpointed = 0
        self._checkpoint_time = 0.0
        self._owner_checked = ctx.now()  # the run was just handed out: owned
        self._first_checkpoint = False  # due after the first chunk of a body
        self._small = False  # the body being written keeps no meta file (_SMALL_BODY)
        # A part of this download another process held as this run began
        # (the shared one while this run wrote aside, or one set aside):
        # looked at again once the download is published.
        self._left_held = False

    # -- the whole download ----------------------------------------------------

    def run(self) -> str:
        """Download, retrying as configured; return the final path."""
        ctx = self.ctx
        started = ctx.now()
        try:
            self._lock_part()
            self._best_part()
            path = self._attempts()
        except StaleClaimError as exc:
            # Taken over: what this run wrote is nobody's; never published.
            if self.part.locked:
                self._remove_part()
            ctx.log.warning("download_stale_run_discarded", url=self.shown, claim=exc.claim)
            raise
        except DownloadInterrupted as exc:
            # A stop keeps the part for the next start, unless it is empty
            # (stopped before any byte came, while waiting to retry): an
            # empty file is never left in the directory.
            stopped = exc.reason == STOPPING and self.part.size() > 0
            if not stopped and not self.source.keep_partial and self.part.locked:
                self._remove_part()
            raise
        except Exception as exc:
            kept = self._kept_for_rerun(exc)
            if kept is None and not self.source.keep_partial and self.part.locked:
                self._remove_part()
            local = isinstance(exc, OSError) and not isinstance(exc, requests.RequestException)
            if local or kept is not None:
                # The network's errors are judged where they happen; an
                # OSError that gets here is of the local files (the meta
                # file, a rename, a directory sync): a full disk, a removed
                # directory, ...
                text = self._local_error(exc) if local and isinstance(exc, OSError) else str(exc)
                if kept is not None:
                    text = f"{text}; {kept} bytes kept for a re-run"
                raise DownloadError(text) from exc
            raise
        finally:
            self.part.unlock()
        ctx.log.info(
            "download_completed",
            url=self.url,  # the logger redacts its fields, and only if it emits
            bytes=self.received,
            duration=round(ctx.now() - started, 3),
            path=str(path),
        )
        return str(path)

    def _remove_part(self) -> None:
        """Remove the part after a failure; one that cannot be (a directory
        planted at its meta's name, a file system gone read-only) is logged,
        and the failure that ended the run is the one reported."""
        try:
            self.part.remove()
        except OSError as exc:
            self.ctx.log.warning(
                "download_part_not_removed", part=str(self.part.path), error=network_reason(exc)
            )

    def _kept_for_rerun(self, exc: BaseException) -> int | None:
        """The bytes of the part kept for a re-run after ``exc``, or None (removed).

        Kept when the local disk refused a write (``_DISK_FULL``: the bytes
        before the refused one are intact, and freeing space is the fix) and
        the part has a usable resume point of at least one byte, as a stop
        keeps it: a re-run of the same download continues at that offset
        (the part's size: a short write is never followed by a later byte,
        and the meta file is of this boot, even when the full disk refused
        its last update).
        Never after a failed fsync (``PartSyncError``), an I/O error or a
        file system gone read-only: the part's bytes are then not known good.
        """
        if not _disk_full(exc):
            return None
        kept = self.part.kept_offset()
        if kept is not None:
            self.ctx.log.warning("download_part_kept", part=str(self.part.path), bytes=kept)
        return kept

    def _local_error(self, exc: OSError) -> str:
        """``cannot write 'FILE': REASON`` (``in 'DIR'`` when the error names no file)."""
        if isinstance(exc.filename, str):
            return f"cannot write {exc.filename!r}: {network_reason(exc)}"
        return f"cannot write in {str(self.directory)!r}: {network_reason(exc)}"

    def _lock_part(self) -> None:
        """Lock the part for this run; wait while another (stale) run still holds it.

        This run owns the download (its claim), so the holder is a run that
        lost it: one ending in this process, or a frozen process's. After
        ``_ASIDE_AFTER`` tries a claimed run stops waiting and writes a part
        of its own (:meth:`PartFile.aside`), from byte 0. A file of another
        user under the name is never waited for: a claimed run writes aside
        at once, a run without a claim fails naming it.
        """
        tries = 0
        run = self.ctx.claim  # the number of the next part set aside
        made_directory = False
        while True:
            try:
                self.part.lock()
            except PartInUseError:
                held = True
            except OSError as exc:  # PartNotOwnedError among them
                if isinstance(exc, (FileNotFoundError, NotADirectoryError)) and not made_directory:
                    # The directory is missing: made here, not looked for
                    # before every download (one system call less for each).
                    self._make_directory()
                    made_directory = True
                    continue
                held = False
                if not (self.ctx.claim and isinstance(exc, PartNotOwnedError)):
                    msg = f"cannot write {str(self.part.path)!r}: {network_reason(exc)}"
                    raise DownloadError(msg) from exc
            else:
                if self.part is not self._shared:
                    self.ctx.log.info(
                        "download_part_aside", url=self.shown, part=str(self.part.path)
                    )
                return
            if held:
                tries += 1
                if tries == 1:
                    self.ctx.log.info(
                        "download_part_in_use", url=self.shown, part=str(self.part.path)
                    )
                if tries < _ASIDE_AFTER or not self.ctx.claim:
                    # Asked before each wait only: names taken by others
                    # (as many as they care to make) cost no round trip each.
                    self.ctx.ensure_owner()
                    self._wait(_LOCK_POLL)
                    continue
                self._left_held = True
            # Numbered by this run's claim; one a frozen run holds under
            # that number (another node's local epochs may repeat this
            # node's), or another user's file, moves it on to the next
            # number, at once.
            self.part = self._shared.aside(run)
            run += 1

    def _make_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create download directory {str(self.directory)!r}: {network_reason(exc)}"
            raise DownloadError(msg) from exc

    def _best_part(self) -> None:
        """Continue the best of this download's parts this run can lock.

        Runs once the run holds its own part, and only in a later run (a
        claim after the first): only an earlier run can have set a part
        aside. Each part set aside is locked as the shared one is (no
        symlink followed, no other name of a file kept), and taken only if
        it is this user's; one another live process holds is left as it
        is. Of the parts locked, the one whose body is complete, else the
        one with the most bytes known good (validators and a recorded
        length, see ``PartFile.resume_point``) is continued; the others are
        removed: their writers are gone.
        """
        if self.ctx.claim <= 1:
            return
        found = [p for p in self._shared.set_aside() if p.path != self.part.path]
        if not found:
            return
        best = self.part
        point = best.resume_point()
        for part in found:
            if not self._lock_stale(part):
                continue
            candidate = part  # the one of the two to remove
            try:
                theirs = part.resume_point()
                if _better(theirs, point):
                    best, candidate, point = part, best, theirs
                candidate.remove()
            except OSError as exc:  # left as it is; the run goes on with the best so far
                self.ctx.log.warning(
                    "download_part_not_removed", part=str(candidate.path), error=network_reason(exc)
                )
            finally:
                candidate.unlock()
        if best is not self.part:
            self.ctx.log.info(
                "download_part_set_aside_resumed", url=self.shown, part=str(best.path)
            )
            self.part = best

    def _lock_stale(self, part: PartFile) -> bool:
        """Lock ``part``, a part of this download that may be another run's:
        False if a live process holds it (noted for the end), it is gone, or
        it is another user's file (``PartNotOwnedError``: left as it is)."""
        try:
            part.lock(create=False)
        except PartInUseError:
            self._left_held = True
            return False
        except OSError:  # gone meanwhile, or not a file this run may open
            return False
        return True

    def _remove_stale_parts(self) -> None:
        """After the publish: remove the parts of this download that were held
        by another process as this run began and can be locked now."""
        if not self._left_held:
            return
        shared = PartFile.found(self._shared.path, self.ctx.download_id)  # not locked here
        for part in (shared, *self._shared.set_aside()):
            if part.path == self.part.path or not self._lock_stale(part):
                continue
            try:
                part.remove()
            except OSError as exc:  # the download is published: a leftover is no failure
                self.ctx.log.warning(
                    "download_part_not_removed", part=str(part.path), error=network_reason(exc)
                )
            finally:
                part.unlock()

    def _attempts(self) -> Path:
        attempt = 0
        start_overs = 0
        while True:
            attempt += 1
            self.watch.check_deadline()
            try:
                return self._attempt(attempt)
            except _StartOver as exc:
                self.part.discard()
                start_overs += 1
                attempt -= 1  # the server did answer: no backoff, no attempt used
                if start_overs > _MAX_START_OVERS:
                    msg = f"{exc} (gave up after {_MAX_START_OVERS} fresh starts): {self.shown}"
                    raise DownloadError(msg) from None
                self.ctx.log.info("download_restarted", url=self.shown, reason=str(exc))
            except _Retry as exc:
                self.watch.check_deadline()
                if attempt > self.source.retries:
                    text = exc.text if attempt == 1 else f"{exc.text} (after {attempt} attempts)"
                    raise DownloadError(text) from exc.__cause__
                delay = exc.retry_after
                if delay is None:
                    delay = self.source.backoff.delay(attempt)
                delay = min(delay, self.source.max_retry_after)
                left = self.watch.time_left()
                if left is not None and delay >= left:
                    # Waited out, the deadline would end it before the next
                    # attempt: before, a 'retrying in 300 s' line, then a
                    # silent wait to 'took longer than the time limit'.
                    done = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                    msg = (
                        f"{exc.text} (after {done}; the next would start in {delay:g} s, "
                        f"past the time limit of {self.source.max_time:g} s)"
                    )
                    raise DownloadError(msg) from exc.__cause__
                self.ctx.log.warning(
                    "download_retry", url=self.shown, attempt=attempt, delay=delay, error=exc.text
                )
                self._wait(delay)

    def _wait(self, seconds: float) -> None:
        left = self.watch.time_left()
        if left is not None:
            seconds = max(0.0, min(seconds, left))
        if seconds > 0 and self.ctx.sleep(seconds):
            self.watch.check_deadline()
            return
        if self.ctx.cancelled:
            raise self._interrupted()
        self.watch.check_deadline()

    def _interrupted(self) -> DownloadInterrupted:
        return DownloadInterrupted(_cancel_reason(self.ctx))

    @property
    def shown(self) -> str:
        """The URL as errors show it (credentials redacted; made on first use)."""
        if self._shown is None:
            self._shown = redact_text(self.url)
        return self._shown

    # -- one attempt -----------------------------------------------------------

    def _attempt(self, attempt: int) -> Path:
        ctx = self.ctx
        if ctx.cancelled:
            raise self._interrupted()
        offset, stored, complete = self.part.resume_point()
        if complete and stored is not None:
            # The body was whole before an interruption: publish, fetch nothing.
            ctx.log.info("download_part_complete", url=self.shown, bytes=offset)
            self.received = offset
            hasher = self._hasher(offset)
            self.digest = hasher.hexdigest() if hasher is not None else None
            if hasher is not None and self.digest != self.expected_sha256:
                # Complete with other bytes (an earlier version of the file,
                # the run killed before it published): fetched again.
                msg = "the complete part does not have the sha256 asked for"
                raise _StartOver(msg)
            if self.source.fsync:
                # A run killed before its last fsync (its part complete by
                # size alone) left bytes that may be in the page cache only.
                try:
                    self.part.sync()
                except OSError as exc:
                    msg = f"cannot write {str(self.part.path)!r}: {network_reason(exc)}"
                    raise DownloadError(msg) from exc
            return self._finish()
        headers = {"Accept-Encoding": "identity"}
        if stored is not None:
            self._continued_part = True
            headers["Range"] = f"bytes={offset}-"
            validator = stored.if_range()
            if validator:
                headers["If-Range"] = validator
        ctx.log.info("download_started", url=self.url, attempt=attempt, resume_from=offset)
        with self._open(headers) as response:
            if ctx.cancelled:
                raise self._interrupted()
            start, end, total = self._accept(response, offset, stored)
            if total is not None:
                label = "Content-Length" if start == 0 else "Content-Range size"
                self._check_limit(total, f"{label} {total}")
            disposition = response.headers.get("Content-Disposition")
            self.server_name = name_from_content_disposition(disposition) or self.server_name
            self._stream(response, start, end, total)
        return self._finish()

    def _accept(
        self, response: requests.Response, offset: int, stored: Validators | None
    ) -> tuple[int, int | None, int | None]:
        """Judge the answer's status; return (start, end) of this body and the total.

        Raises ``_Retry``/``_StartOver``/``DownloadError`` for answers that
        carry no usable body. After a 200 the part is emptied.
        """
        status = response.status_code
        headers = response.headers
        coding = unreadable_coding(headers.get("Transfer-Encoding"))
        if coding is not None and 200 <= status < 300:
            # http.client reads any coding but chunked as a body to the close:
            # the file would hold the coded bytes (chunk sizes and all), "done".
            msg = (
                f"the server sent the body in a transfer coding that cannot be read "
                f"(Transfer-Encoding: {coding}; only chunked can): {self.shown}"
            )
            raise DownloadError(msg)
        if status == 206 and stored is not None:
            window = parse_content_range(headers.get("Content-Range"))
            if window is None:
                msg = "the 206 answer has no usable Content-Range"
                raise _StartOver(msg)
            now = Validators(headers.get("ETag"), headers.get("Last-Modified"), window.total)
            changed = stored.changed(now)
            if window.first != offset or changed:
                why = f"{', '.join(changed)} changed" if changed else f"got byte {window.first}"
                msg = f"cannot resume at byte {offset}: {why}"
                raise _StartOver(msg)
            total = window.total if window.total is not None else stored.size
            self.validators = Validators(now.etag or stored.etag, now.last_modified, total)
            self._small = False  # resumed: its meta file exists and stays up to date
            return offset, window.last + 1, total
        if status in (200, 203):
            if stored is not None:
                self.ctx.log.info(
                    "download_restarted", url=self.shown, reason="the server sent the whole file"
                )
            total = content_length(response)
            if stored is not None:
                self.part.discard()
            self.validators = Validators(headers.get("ETag"), headers.get("Last-Modified"), total)
            # The meta file is first written after the body's first chunk
            # (``_report``): one with no good byte yet resumes nothing, and
            # each costs a file's creation.
            self._small = total is not None and total <= _SMALL_BODY
            return 0, total, total
        if status == 416 and stored is not None:
            msg = "the server refused the range (416)"
            raise _StartOver(msg)
        if retryable(status):
            wait = parse_retry_after(headers.get("Retry-After"), headers.get("Date"))
            raise _Retry(status_text(response, self.shown), wait)
        raise DownloadError(status_text(response, self.shown), status=status)

    def _open(self, headers: dict[str, str]) -> requests.Response:
        """GET the URL, following redirects by hand (each hop http or https).

        Credentials (``Authorization``, ``Proxy-Authorization``, ``Cookie``
        and any header named like a credential, ``X-Api-Key``,
        ``X-Auth-Token``, ...; a user and password in the URL) go to every
        hop on the URL's origin, as ``requests`` sends them, and to no hop
        after the chain has left it.
        """
        source = self.source
        url = self.url
        send: dict[str, str | None] = dict(headers)
        auth = _url_auth(url)
        for _ in range(source.max_redirects + 1):
            try:
                response = self._get(url, send, auth)
            except (_Retry, DownloadError) as exc:
                if self.watch.expired is not None:  # it shut the socket down
                    raise self._expired() from exc
                raise
            if not response.is_redirect:
                return response
            location = response.headers["Location"]
            response.close()
            del response  # an error below must not keep the connection alive
            url = self._redirect_target(url, location)
            if cross_origin(self.url, url):
                send.update(dict.fromkeys(_credential_headers([*send, *self.session.headers])))
                auth = None
        msg = f"too many redirects (more than {source.max_redirects}): {self.shown}"
        raise DownloadError(msg)

    def _get(
        self, url: str, headers: dict[str, str | None], auth: tuple[str, str] | None
    ) -> requests.Response:
        source = self.source
        session = self.session
        try:
            # What ``session.get`` does, in two steps: the URL is parsed once,
            # and a malformed one is still told apart from a broken answer.
            prepared = prepare_get(session, url, headers, auth)
        except (ValueError, requests.RequestException) as exc:  # InvalidURL, bad IDNA, ...
            msg = f"malformed URL {redact_text(url)!r}: {network_reason(exc)}"
            raise DownloadError(msg) from exc
        timeouts = self._timeouts()
        try:
            verify = source.verify
            if verify is True and url[:6].lower() == "https:":
                # Where requests would take the environment's bundle; a plain
                # http GET does not use it (and skips requests' stat of it).
                verify = getattr(session, "ca_bundle", None) or True
            with waiting_for_answer(self._waiting):
                response = send_get(session, prepared, timeouts, verify)
        except requests.exceptions.SSLError as exc:
            msg = f"TLS error ({network_reason(exc)}): {redact_text(url)}"
            raise DownloadError(msg) from exc
        except requests.exceptions.ConnectTimeout as exc:
            msg = f"connect timed out after {source.connect_timeout:g}s: {redact_text(url)}"
            raise _Retry(msg) from exc
        except requests.exceptions.ReadTimeout as exc:
            msg = f"no response within {source.read_timeout:g}s: {redact_text(url)}"
            raise _Retry(msg) from exc
        except requests.exceptions.ProxyError as exc:
            # Said as the proxy's: "connection failed (Connection refused)"
            # blamed a server that was never asked.
            msg = (
                f"the proxy {redact_text(_proxy_of(session, url))} failed "
                f"({network_reason(exc)}): {redact_text(url)}"
            )
            raise _Retry(msg) from exc
        except requests.exceptions.ConnectionError as exc:
            unknown = unknown_host(exc)
            if unknown is not None:  # asked again, the name stays unknown: not retried
                msg = f"unknown host ({unknown}): {redact_text(url)}"
                raise DownloadError(msg) from exc
            msg = f"connection failed ({network_reason(exc)}): {redact_text(url)}"
            raise _Retry(msg) from exc
        except (UnicodeError, urllib3.exceptions.LocationValueError) as exc:  # a bad host
            msg = f"malformed URL {redact_text(url)!r}: {network_reason(exc)}"
            raise DownloadError(msg) from exc
        except ValueError as exc:  # the URL was checked above: the answer is broken
            msg = f"invalid response or redirect ({network_reason(exc)}): {redact_text(url)}"
            raise DownloadError(msg) from exc
        except requests.RequestException as exc:
            msg = f"request failed ({network_reason(exc)}): {redact_text(url)}"
            raise DownloadError(msg) from exc
        finally:
            self.watch.unwatch()  # the socket may go back to the pool
        if self.watch.expired is not None:
            # Shut down mid-headers, http.client may take what came as a whole
            # answer (no Content-Length: an empty body): never use it.
            response.close()
            raise self._expired()
        return response

    def _waiting(self, sock: socket.socket) -> None:
        """In ``session.get``, the request went out on ``sock``: while the answer
        is awaited, a cancel or a limit shuts the socket down (worker thread)."""
        self.ctx.on_cancel(lambda: _shutdown(sock))
        self.watch.watch(lambda: _shutdown(sock), self.received)

    def _timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts of the next request: never past ``max_time``."""
        source = self.source
        left = self.watch.time_left()
        if left is None:
            return source.connect_timeout, source.read_timeout
        if left <= 0:
            raise self.watch.late()
        return min(source.connect_timeout, left), min(source.read_timeout, left)

    def _redirect_target(self, current: str, location: str) -> str:
        try:
            target = urljoin(current, location.strip())
            parts = urlsplit(target)
        except ValueError:
            msg = f"malformed redirect to {redact_text(location)!r} from {redact_text(current)}"
            raise DownloadError(msg) from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            msg = (
                f"redirect to unsupported scheme {scheme!r} (only http and https): "
                f"{redact_text(current)} -> {redact_text(target)}"
            )
            raise DownloadError(msg)
        if not parts.hostname:
            msg = f"redirect without a host: {redact_text(current)} -> {redact_text(target)}"
            raise DownloadError(msg)
        try:
            requests.models.PreparedRequest().prepare_url(target, None)
        except (ValueError, requests.RequestException):
            msg = f"malformed redirect to {redact_text(location)!r} from {redact_text(current)}"
            raise DownloadError(msg) from None
        return target

    def _check_limit(self, size: int, label: str) -> None:
        limit = self.source.max_bytes
        if limit is not None and size > limit:
            msg = f"body larger than the size limit of {limit} bytes ({label}): {self.shown}"
            raise DownloadError(msg)

    # -- the body --------------------------------------------------------------

    def _stream(
        self, response: requests.Response, offset: int, end: int | None, total: int | None
    ) -> None:
        """Write the body to the part from ``offset``; it must reach ``end``."""
        ctx = self.ctx
        hasher = self._hasher(offset)
        self.received = offset
        # A cancel or a stop must not wait for a stalled server's next byte
        # (up to read_timeout): shutting the socket down ends a blocked read.
        ctx.on_cancel(lambda: _abort(response))
        # Too slow, or past max_time: the watchdog shuts the socket down too.
        self.watch.watch(lambda: _abort(response), offset)
        self._checkpointed = offset
        self._checkpoint_time = ctx.now()
        self._first_checkpoint = not self._small
        try:
            with self.part.open(offset) as file:
                self._file = file
                try:
                    ctx.report(offset, total)
                    body = _plain_body(response)
                    if body is None:
                        self._copy_chunks(response, file, hasher=hasher, end=end, total=total)
                    elif body.chunked:
                        reader = ChunkedReader(body.fp).readinto
                        self._copy_loop(reader, file, hasher=hasher, end=end, total=total)
                    else:
                        self._copy_plain(response, body, file, hasher=hasher, end=end, total=total)
                    if self.watch.expired is not None:  # the body "ended" when the socket was shut
                        raise self._expired()
                    if end is not None and self.received < end:
                        raise self._lost(None, self.received, end)
                    whole = total is None or self.received >= total
                    self.part.checkpoint(
                        file,
                        self.validators,
                        sync=self.source.fsync,
                        complete=whole,
                        # A known size says "complete" by itself in this
                        # boot: one file fewer created per download.
                        record=not self._small
                        and not (whole and total is not None and self.part.size_tells_complete()),
                    )
                except BaseException:
                    # What reached the part stays usable for a resume.
                    with contextlib.suppress(OSError):
                        self.part.checkpoint(file, self.validators, sync=False)
                    raise
                finally:
                    self._file = None
        except OSError as exc:
            # The part, or its meta file at a checkpoint: the file the error names.
            name = exc.filename if isinstance(exc.filename, str) else str(self.part.path)
            msg = f"cannot write {name!r}: {network_reason(exc)}"
            raise DownloadError(msg) from exc
        finally:
            self.watch.unwatch()
        received = self.received
        if total is not None and received < total:
            msg = f"the server sent only bytes {offset}-{received - 1} of {total}: {self.shown}"
            raise _Retry(msg)
        self.digest = hasher.hexdigest() if hasher is not None else None

    def _copy_plain(
        self,
        response: requests.Response,
        body: http.client.HTTPResponse,
        file: PartWriter,
        *,
        hasher: hashlib._Hash | None,
        end: int | None,
        total: int | None,
    ) -> None:
        """Copy a body that is neither chunked nor decoded.

        Spliced inside the kernel where that works (see :meth:`_splice`),
        else read straight from ``http.client`` by :meth:`_copy_loop`. The
        same checks as :meth:`_copy_chunks` run per chunk.
        """
        limit = self.source.max_bytes
        received = self.received
        if (
            hasher is None
            and end is not None
            and end - received >= _splice.MIN_BYTES
            and (limit is None or end <= limit)
        ):
            sock = _splice.plain_socket(body.fp)
            if sock is not None:
                splicer = _splice.Splicer.open(sock, file.fileno())
                if splicer is not None:
                    self._splice(body, sock, splicer, file, end=end, total=total)
                    return
        direct = SocketBody.open(body, received, end)
        if direct is None:
            self._copy_loop(plain_reader(body), file, hasher=hasher, end=end, total=total)
        else:
            self._copy_socket(direct, file, hasher=hasher, total=total)
        if body.isclosed():
            # The whole body was read: the connection can serve the next
            # request (what urllib3 does at the end of a body it reads).
            response.raw.release_conn()

    def _copy_loop(
        self,
        readinto: Callable[[memoryview], int],
        file: PartWriter,
        *,
        hasher: hashlib._Hash | None,
        end: int | None,
        total: int | None,
        first: Callable[[memoryview], int] | None = None,
        patience: float | None = None,
    ) -> None:
        """Read into one reused buffer and write it out when full: the hot loop.

        No bytes object per chunk and none of urllib3's per-read layers; a
        short body ends the loop like a closed connection does, and the
        caller checks the length. No byte past ``end`` is ever asked for: an
        answer longer than its range (its own length, the end of the
        connection or its chunks go further) is left unread there.
        ``first``: the reader of the first reads, until one returns fewer
        bytes than asked or times out (then ``readinto``).
        ``patience``: a read that times out is a pause of the server, not an
        error, until the socket was quiet this long (real seconds, as socket
        timeouts are); what the buffer holds is written at each pause. A
        read that raises :class:`Stalled` waited all of it already.

        ``readinto`` returns after one socket read (one TLS record is 16 KiB),
        so a cancel, the size limit and the low-speed watch are checked as
        bytes arrive, however slowly. The buffer goes to the part (and to the
        progress report, which may checkpoint the part) when it is full, or
        when ``REPORT_INTERVAL`` passed since the last write: a fast body
        costs one write and one report per buffer, not per record, and a
        slow one is still reported every interval (and at each pause, with
        ``patience``: a server that stalls mid-body). Bytes read before an
        error or a cancel are written before it is raised (they are good
        bytes for a resume; bytes whose write failed are not written again,
        the part's length is taken from the file); ``self.received`` counts
        what was handed to the part.
        """
        ctx = self.ctx
        limit = self.source.max_bytes
        view = memoryview(bytearray(self.source.chunk_size))
        size = len(view)
        write = file.write
        report = self._report
        now = ctx.now
        watch = self.watch.progress if self.watch.active else None
        written = received = self.received
        due = now() + REPORT_INTERVAL
        read = first or readinto
        quiet_since: float | None = None  # real time, while reads time out

        def flush() -> None:
            nonlocal written
            chunk = view[: received - written]
            written = received  # handed over once: a failed write is not tried again
            write(chunk)
            if hasher is not None:
                hasher.update(chunk)

        try:
            while True:
                filled = received - written
                want = view[filled:]
                if end is not None:
                    if received >= end:
                        break
                    want = want[: end - received]
                try:
                    count = read(want)
                except TimeoutError as exc:
                    if patience is None or isinstance(exc, Stalled):
                        raise self._read_failed(exc, received, end) from exc
                    clock = time.monotonic()
                    if quiet_since is None:
                        quiet_since = clock - _QUIET
                    if clock - quiet_since >= patience or ctx.cancelled:
                        raise self._read_failed(exc, received, end) from exc
                    read = readinto
                    if received > written:
                        flush()
                        report(received, total)
                        due = now() + REPORT_INTERVAL
                    continue
                except (*_NETWORK_ERRORS, http.client.HTTPException, ValueError) as exc:
                    raise self._read_failed(exc, received, end) from exc
                quiet_since = None
                if read is not readinto and count < len(want):
                    read = readinto
                if ctx.cancelled:
                    raise self._interrupted()
                if not count:
                    break
                if limit is not None and received + count > limit:
                    msg = f"body larger than the size limit of {limit} bytes: {self.shown}"
                    raise DownloadError(msg)
                received += count
                if watch is not None:
                    watch(received)
                if filled + count == size or now() >= due:
                    flush()
                    report(received, total)
                    due = now() + REPORT_INTERVAL
            if received > written:
                flush()
                report(received, total)
        except BaseException:
            if received > written:
                with contextlib.suppress(OSError):
                    flush()
            raise
        finally:
            self.received = written

    def _splice(
        self,
        body: http.client.HTTPResponse,
        sock: socket.socket,
        splicer: _splice.Splicer,
        file: PartWriter,
        *,
        end: int,
        total: int | None,
    ) -> None:
        """Move the rest of a plain body into the part inside the kernel (closes ``splicer``).

        The bytes ``http.client`` has buffered are written first (read from
        its reader, so its own count of the body is left behind: the
        connection is not reused, it closes with the response). If ``sock``
        refuses ``splice`` the rest is copied through user space from it
        (:meth:`_copy_socket`). Same checks as the copy loop: a cancel between
        steps, a read error or stall as a lost connection, the length
        against ``end`` (by the caller).
        """
        ctx = self.ctx
        reader = body.fp
        received = self.received
        if body.length is not None:
            # Never past this response's own Content-Length (a 206 whose
            # Content-Range promises more): the caller then sees a short body.
            end = min(end, received + body.length)
        try:
            with splicer:
                try:
                    buffered = reader.read1(min(end - received, _splice.STEP))
                except (*_NETWORK_ERRORS, ValueError) as exc:
                    raise self._read_failed(exc, received, end) from exc
                file.write(buffered)  # a write error is an OSError for the caller
                file.flush()
                received += len(buffered)
                self._report(received, total)
                while received < end and buffered:
                    if ctx.cancelled:
                        raise self._interrupted()
                    try:
                        moved = splicer.move(min(end - received, _splice.STEP))
                    except _splice.SpliceUnsupported:
                        # The rest the usual way, from the socket (the reader is empty).
                        self.received = received
                        rest = SocketBody.after_splice(body, sock, end)
                        self._copy_socket(rest, file, hasher=None, total=total)
                        received = self.received
                        break
                    except _splice.WriteFailed as failed:
                        raise failed.error from failed
                    except (*_NETWORK_ERRORS, ValueError) as exc:
                        raise self._read_failed(exc, received, end) from exc
                    if not moved:
                        break
                    received += moved
                    self._report(received, total)
                    self.watch.progress(received)
                if ctx.cancelled:
                    raise self._interrupted()
        finally:
            self.received = received

    def _copy_socket(
        self,
        body: SocketBody,
        file: PartWriter,
        *,
        hasher: hashlib._Hash | None,
        total: int | None,
    ) -> None:
        """The copy loop over ``body``'s socket, up to its end, with a quiet
        server's bytes written and reported; the socket settled after."""
        try:
            body.listen(_QUIET)
            self._copy_loop(
                body.then,
                file,
                hasher=hasher,
                end=body.end,
                total=total,
                first=body.start,
                patience=body.patience,
            )
        finally:
            body.settle(self.received)

    def _read_failed(self, exc: BaseException, received: int, end: int | None) -> Exception:
        """What a failed read of the body raises: the cancel, or a lost connection."""
        if self.ctx.cancelled:
            return self._interrupted()
        return self._lost(exc, received, end)

    def _copy_chunks(
        self,
        response: requests.Response,
        file: PartWriter,
        *,
        hasher: hashlib._Hash | None,
        end: int | None,
        total: int | None,
    ) -> None:
        """Copy any other body (chunked, or not plain ``http.client``) via urllib3,
        never past ``end``."""
        ctx = self.ctx
        limit = self.source.max_bytes
        received = self.received
        chunks = response.raw.stream(self.source.chunk_size, decode_content=False)
        try:
            while True:
                try:
                    chunk = next(chunks, None)
                except (*_NETWORK_ERRORS, ValueError) as exc:  # ValueError: a bad chunk size
                    raise self._read_failed(exc, received, end) from exc
                if ctx.cancelled:
                    raise self._interrupted()
                if chunk is None:
                    break
                past = end is not None and received + len(chunk) > end
                if past and end is not None:  # the rest of a longer answer is not its bytes
                    chunk = chunk[: end - received]
                received += len(chunk)
                if limit is not None and received > limit:
                    msg = f"body larger than the size limit of {limit} bytes: {self.shown}"
                    raise DownloadError(msg)
                file.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                self._report(received, total)
                self.watch.progress(received)
                if past:
                    break
        finally:
            self.received = received

    def _report(self, received: int, total: int | None) -> None:
        """Report progress; every ``_CHECKPOINT_BYTES`` also record the part's good
        length and check that this run still owns the download."""
        ctx = self.ctx
        ctx.report(received, total)
        file = self._file
        if file is None or self._small:
            return
        if self._first_checkpoint:
            self._first_checkpoint = False
            if total is None or received < total:  # else the complete one follows
                self._checkpoint(file, received, ctx.now())
            return
        due = received - self._checkpointed
        if due < _CHECKPOINT_MIN:
            return
        now = ctx.now()
        if due >= _CHECKPOINT_BYTES or now - self._checkpoint_time >= _CHECKPOINT_SECONDS:
            self._checkpoint(file, received, now)

    def _checkpoint(self, file: PartWriter, received: int, now: float) -> None:
        """Check ownership (see ``_OWNER_CHECK_SECONDS``), then record how much
        of the part is good. A stale run's record is harmless: the run holds
        the part's lock, and once it learns it is stale it removes both."""
        self._checkpointed = received
        self._checkpoint_time = now
        if now - self._owner_checked >= _OWNER_CHECK_SECONDS:
            self.ctx.ensure_owner()
            self._owner_checked = now
        self.part.checkpoint(file, self.validators, sync=False)

    def _hasher(self, offset: int) -> hashlib._Hash | None:
        if self.expected_sha256 is None:
            return None
        return self.part.sha256(offset)

    def _expired(self) -> Exception:
        """What a limit the watchdog saw exceeded raises (``max_time`` is final)."""
        expired = self.watch.expired
        if isinstance(expired, TooSlow):
            return _Retry(str(expired))
        return expired if expired is not None else DownloadError("expired")

    def _lost(self, exc: BaseException | None, received: int, end: int | None) -> Exception:
        if self.watch.expired is not None:
            return self._expired()
        if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
            of = f" of {end}" if end is not None else ""
            text = f"read timed out after {self.source.read_timeout:g}s: received {received}{of}"
            return _Retry(f"{text} bytes from {self.shown}")
        if end is not None:
            return _Retry(f"truncated: received {received} of {end} bytes from {self.shown}")
        reason = f" ({network_reason(exc)})" if exc is not None else ""
        return _Retry(f"connection lost after {received} bytes{reason}: {self.shown}")

    # -- the end ---------------------------------------------------------------

    def _finish(self) -> Path:
        ctx = self.ctx
        if ctx.cancelled:
            raise self._interrupted()
        expected = self.expected_sha256
        if expected is not None and self.digest != expected:
            msg = f"sha256 mismatch: expected {expected}, got {self.digest}: {self.shown}"
            raise DownloadError(msg)
        name = choose_filename(
            ctx.original_filename, self.server_name, name_from_url(self.url), self.display_name
        )
        ctx.ensure_owner()  # a run that was taken over publishes nothing
        # A run after an earlier keeper's (an earlier process, another node)
        # may find the file a run of that keeper published and was killed
        # before recording: taken as it is rather than copied to ``name (1)``.
        # Never within one keeper: it knows every run before this one, and a
        # file there with the same bytes is the user's own. Nor after this
        # run continued an unfinished part: the run that left it was stopped
        # before its end, and the identical file under the name is another
        # download's (two mirrors of one file stopped with Ctrl-C and resumed
        # were both recorded as that one file) or the user's.
        same = (
            partial(self.part.same_as, stop=lambda: ctx.cancelled)
            if ctx.after_earlier_keeper and not self._continued_part
            else None
        )
        try:
            root = self.source.resolved_directory(self.directory)
            path = move_into_place(
                self.part.path,
                self.directory,
                name,
                root=root,
                same=same,
                numbers=self.source.name_numbers,
            )
        except CompareStopped:  # a stop (Ctrl-C) does not wait for a long comparison
            raise self._interrupted() from None
        except (OSError, ValueError) as exc:
            msg = f"cannot store {name!r} in {str(self.directory)!r}: {network_reason(exc)}"
            raise DownloadError(msg) from exc
        try:
            self.part.remove_meta()
        except OSError as exc:  # published already: a leftover is no failure
            ctx.log.warning("download_meta_not_removed", path=str(path), error=network_reason(exc))
        self._remove_stale_parts()
        if self.source.fsync:
            # The new name made durable; one fsync for the workers that
            # published at about the same time (see _dirsync).
            sync = self.source.directory_sync
            if sync.directory == self.directory:
                sync.sync()
            else:  # the source's directory was replaced after construction
                sync_directory(self.directory)
        return path
