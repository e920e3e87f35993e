"""``HttpSource``: a download source that fetches ``http`` and ``https`` URLs.

``HttpSource(directory=...)`` is a :class:`DownloadSource` whose impl
downloads the URL given as ``target_id`` with ``requests``:

* one ``requests.Session`` per worker (``open_worker`` / ``close_worker``),
  TLS verified, connect and read timeouts, redirects followed by hand so
  that every hop must stay ``http``/``https`` (at most ``max_redirects``);
* the body streams to ``<safe name>.<download id>.part`` in ``directory``
  (see :mod:`actors.downloads._partfile`), is checked against
  ``Content-Length`` (a short body is never a success), ``max_bytes`` and
  ``extra["sha256"]`` if given, fsynced, then moved to a free safe final
  name (never overwriting: ``name (1).ext``);
* a ``.part`` left by an interrupted run of the same download id is resumed
  with ``Range`` (+ ``If-Range``); the server's validators are kept beside
  it in ``<part>.meta``, with the part's last checkpoint and the boot of
  the machine that wrote it: within that boot the part resumes at its last
  byte (a killed run loses none), after a reboot at the checkpoint; a
  server that ignores the range (200), answers 416 or changed the file
  makes the download start over;
* ``max_bytes`` bounds every body, ``max_time`` the whole download, and
  ``speed_limit``/``speed_time`` the slowest acceptable answer (checked by
  a timer while a read blocks, headers included:
  :mod:`actors.downloads._http_limits`, :mod:`actors.downloads._http_session`);
* connection errors, timeouts, a cut body, 408, 429 and 5xx (but 501 and
  505) are retried ``retries`` times after the server's ``Retry-After``
  (capped at ``max_retry_after``) or the ``backoff``, waiting on the system
  clock (``ctx.sleep``), so a ``ManualClock`` drives the waits in tests;
* on Linux, a plain-HTTP body of at least 1 MiB with a known length and
  no checksum to compute moves socket → pipe → file with ``splice(2)``
  (:mod:`actors.downloads._splice`): one copy in the kernel instead of two
  through Python; anything else takes the copy loop;
* a cancel is seen between chunks: a user cancel removes the ``.part``
  (unless ``keep_partial``), a stop (reason ``"stopping"``) keeps it so the
  next start resumes it.

Bytes are stored as sent: ``Accept-Encoding: identity`` is asked for, and
a ``Content-Encoding`` applied anyway is not undone, so ``Content-Length``
and ``Range`` offsets always refer to the bytes on disk. Without a
``Content-Length`` a cut body can only be told from the end when the body
is chunked.

Errors are :class:`DownloadError`; the message is the user-visible text
(``"HTTP 404 Not Found: http://host/x"``). URLs in texts and logs have
their credentials redacted, and the extra request ``headers`` are never
logged. The file-level steps are in :mod:`actors.downloads._http_fetch`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from regisseur.actors._version import user_agent as default_user_agent
from regisseur.actors.clock import check_duration
from regisseur.actors.downloads._dirsync import DirectorySync
from regisseur.actors.downloads._http_fetch import Fetch
from regisseur.actors.downloads._http_log import ClientLogRedaction
from regisseur.actors.downloads._http_session import Session, new_session
from regisseur.actors.downloads._http_wire import parse_retry_after
from regisseur.actors.downloads._localfs import FileSystems
from regisseur.actors.downloads._partfile import downloads_with_parts, parts_of
from regisseur.actors.downloads.http_errors import DownloadError, DownloadInterrupted
from regisseur.actors.downloads.names import NameNumbers
from regisseur.actors.downloads.source import DownloadSource
from regisseur.actors.http_headers import (
    BODY_HEADER_PROBLEM,
    BODY_HEADERS,
    HEADER_NAME,
    OWN_HEADERS,
    value_problem,
)
from regisseur.supervision.backoff import Backoff

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from regisseur.actors.downloads.context import DownloadContext
    from regisseur.messages.downloads import DownloadRecord

__all__ = ["DownloadError", "DownloadInterrupted", "HttpSource", "parse_retry_after"]

_DEFAULT_BACKOFF = Backoff(initial=1.0, multiplier=2.0, maximum=30.0)


class HttpSource(DownloadSource):
    """Download ``http``/``https`` URLs (the ``target_id``) into ``directory``.

    Options (all keyword-only):

    * ``directory``: where files land (created if missing); required.
    * ``concurrency`` (4), ``delay`` (0), ``username``: as for
      :class:`DownloadSource`.
    * ``retries`` (3): extra attempts after a retryable failure;
      ``backoff`` (1 s, doubling, at most 30 s) spaces them unless the server sent
      ``Retry-After`` (capped at ``max_retry_after``, 300 s).
    * ``connect_timeout`` (10 s), ``read_timeout`` (30 s without a byte).
      Progress is reported as bytes arrive, however slowly (at least every
      0.1 s while bytes come, at most ten reports a second).
    * ``chunk_size`` (256 KiB): the copy buffer, the most bytes one read
      asks for; it goes to the part, the checksum and the progress report
      when full or every 0.1 s, whichever comes first (a TLS read brings one
      16 KiB record). A cancel is seen at each read (a spliced body moves
      1 MiB per step, and a cancel also shuts the socket, so a waiting read
      ends at once).
    * ``max_bytes`` (``None``): refuse bodies larger than this, whatever
      their framing: a ``Content-Length`` above it fails before the body is
      read, and a chunked or close-delimited body fails as soon as it
      passes it (no more than ``max_bytes`` bytes are ever written).
    * ``max_time`` (``None``): the most seconds one download may take, all
      attempts and the waits between them included; then it fails with
      ``took longer than the time limit of ... s`` (not retried). Each connect and read
      timeout is also cut to the time left.
    * ``speed_limit`` (``None``, bytes per second) and ``speed_time`` (30 s):
      the low-speed limit, as curl's ``--speed-limit``/``--speed-time``: an
      attempt whose body brings fewer than ``speed_limit * speed_time``
      bytes within ``speed_time`` seconds fails with ``too slow: ...`` and
      is retried like a read timeout. Without ``speed_limit`` a server that
      sends a byte just before each ``read_timeout`` is bounded only by
      ``max_time``.
    * ``keep_partial`` (False): keep the ``.part`` after a user cancel or an
      error (it is always kept when the system stops).
    * ``headers``: extra request headers (never logged; ``Authorization``
      and ``Cookie`` are not sent to another host after a redirect).
    * ``user_agent``: the ``User-Agent`` sent (default ``regisseur/VERSION``,
      or the one in ``headers``; giving both is an error).
    * ``verify`` (True): TLS verification, or the path of a CA bundle
      (``False`` turns verification off; don't, outside tests).
    * ``max_redirects`` (10).
    * ``fsync`` (True): flush each file (and the directory entry) to disk
      before it counts as done, so a crash never leaves a short file under
      the final name. Costs disk bandwidth: ``False`` trades that safety
      for speed when the disk is the bottleneck.
    * ``cluster_limit`` (None): in cluster mode, the most downloads of this
      source running on all nodes together.
    * ``resumes`` (None): which unfinished downloads left by a process that
      is gone this source takes over at the start, as for
      :class:`DownloadSource` (e.g. only those submitted for its
      ``directory``, when several directories share one database).

    Per download, ``extra["sha256"]`` (64 hex digits) is checked. The file
    name is the submit's ``original_filename``, else the server's
    ``Content-Disposition``, else the URL's last path segment, else the
    display name, made safe by :func:`~actors.downloads.names.safe_filename`.

    The impl (:meth:`fetch`) and the session hooks run on worker threads;
    the source itself holds only configuration and may be shared.
    """

    def __init__(
        self,
        name: str = "http",
        *,
        directory: str | Path,
        concurrency: int = 4,
        delay: float = 0.0,
        username: str | None = None,
        retries: int = 3,
        backoff: Backoff = _DEFAULT_BACKOFF,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        chunk_size: int = 256 * 1024,
        max_bytes: int | None = None,
        max_time: float | None = None,
        speed_limit: int | None = None,
        speed_time: float = 30.0,
        keep_partial: bool = False,
        headers: Mapping[str, str] | None = None,
        user_agent: str | None = None,
        verify: bool | str | Path = True,
        max_redirects: int = 10,
        max_retry_after: float = 300.0,
        fsync: bool = True,
        cluster_limit: int | None = None,
        resumes: Callable[[DownloadRecord], bool] | None = None,
    ) -> None:
        if directory is None:
            msg = f"HttpSource {name!r}: directory is required"
            raise TypeError(msg)
        super().__init__(
            name,
            self.fetch,
            concurrency=concurrency,
            delay=delay,
            username=username,
            directory=directory,
            open_worker=self.open_session,
            close_worker=self.close_session,
            cluster_limit=cluster_limit,
            resumes=resumes,
        )
        what = f"HttpSource {name!r}"
        self.retries = _count(retries, f"{what} retries", 0, 100)
        if not isinstance(backoff, Backoff):
            msg = f"{what}: backoff must be a Backoff, got {backoff!r}"
            raise TypeError(msg)
        self.backoff = backoff
        self.connect_timeout = _wait(connect_timeout, f"{what} connect_timeout")
        self.read_timeout = _wait(read_timeout, f"{what} read_timeout")
        self.chunk_size = _count(chunk_size, f"{what} chunk_size", 1, 64 * 1024 * 1024)
        self.max_bytes = None if max_bytes is None else _count(max_bytes, f"{what} max_bytes", 0)
        self.max_time = (
            None
            if max_time is None
            else check_duration(max_time, f"{what} max_time", allow_zero=False)
        )
        self.speed_limit = (
            None
            if speed_limit is None
            else _count(speed_limit, f"{what} speed_limit", 1, _MOST_BYTES)
        )
        self.speed_time = _wait(speed_time, f"{what} speed_time")
        if not isinstance(keep_partial, bool):
            msg = f"{what}: keep_partial must be a bool, got {keep_partial!r}"
            raise TypeError(msg)
        self.keep_partial = keep_partial
        if not isinstance(fsync, bool):
            msg = f"{what}: fsync must be a bool, got {fsync!r}"
            raise TypeError(msg)
        self.fsync = fsync
        # Workers publishing at the same time share one fsync of the directory.
        self.directory_sync = DirectorySync(self.download_directory)
        # Whether a part's file system keeps a dead run's bytes (_localfs).
        self.file_systems = FileSystems()
        # Where the search for a free "name (N)" starts, per name (names).
        self.name_numbers = NameNumbers()
        self._resolved: tuple[Path, Path] | None = None  # see resolved_directory
        self.headers = _with_user_agent(_check_headers(headers, what), user_agent, what)
        self.verify = _check_verify(verify, what)
        self.max_redirects = _count(max_redirects, f"{what} max_redirects", 0, 100)
        self.max_retry_after = check_duration(max_retry_after, f"{what} max_retry_after")

    @property
    def download_directory(self) -> Path:
        """The download directory (``directory``, never ``None`` here)."""
        if self.directory is None:  # pragma: no cover - set in __init__
            msg = f"HttpSource {self.name!r} has no directory"
            raise RuntimeError(msg)
        return self.directory

    def resolved_directory(self, directory: Path) -> Path:
        """``directory`` with its symlinks followed, resolved again only when that changed.

        Any worker thread: each publish needs it, and resolving walks the
        path with a system call per component. The last answer is kept while
        ``directory`` and it still lead to the same directory (two stats): a
        download directory that is a link switched to another directory
        (``current -> release-2``) is resolved anew, so a file is published
        beside its part, never into where the link led before. The pair
        (path, resolved) is replaced whole, so a reader sees one or the
        other; a directory assigned after construction is resolved anew.
        A directory that had no link to follow is its own answer, without
        the stats (they would be of one path, so always the same).
        """
        known = self._resolved
        if known is not None and known[0] == directory:
            if known[1] == directory:
                return directory
            try:
                if os.path.samestat(os.stat(directory), os.stat(known[1])):
                    return known[1]
            except OSError:
                pass  # gone or unreadable: resolve (the publish says what failed)
        resolved = directory.resolve()
        self._resolved = (directory, resolved)
        return resolved

    def partial_files(self, download_ids: Iterable[str]) -> list[Path]:
        """The ``.part`` files in the directory of the downloads ``download_ids``
        (sorted; any thread). Parts of other downloads, another live run's
        among them, are not listed; an unreadable directory lists none."""
        return parts_of(self.download_directory, download_ids)

    def with_partial_files(self, download_ids: Iterable[str]) -> set[str]:
        """Of ``download_ids``, those with a ``.part`` file in the directory (any
        thread): :meth:`partial_files` asked about each, in one look at the
        directory (asked id by id, 100,000 failed downloads of a list run again
        took 100,000 looks at it, minutes before the first request)."""
        return downloads_with_parts(self.download_directory, download_ids)

    def open_session(self) -> Session:
        """Make this worker's session (runs on the worker thread at its start).

        The session also holds the redaction of urllib3's log lines (their
        URLs carry the secrets every other line redacts) until it is closed.
        """
        session = new_session(self.headers)
        session.log_redaction = ClientLogRedaction()
        return session

    def close_session(self, session: requests.Session) -> None:
        """Close a session made by :meth:`open_session` (at the worker's stop)."""
        try:
            session.close()
        finally:
            redaction = getattr(session, "log_redaction", None)
            if isinstance(redaction, ClientLogRedaction):
                redaction.close()

    def fetch(
        self, download_id: str, target_id: str, display_name: str, context: DownloadContext
    ) -> str:
        """Download ``target_id``; return the final path (the impl; worker thread).

        Raises :class:`DownloadError` (or :class:`DownloadInterrupted` on a
        cancel). Uses ``context.worker_state`` as the session, or a session
        of its own for this call when there is none.
        """
        state = context.worker_state
        session = state if isinstance(state, requests.Session) else None
        own = session is None
        if session is None:
            session = self.open_session()
        try:
            return Fetch(self, session, context, target_id, display_name).run()
        finally:
            if own:
                self.close_session(session)

    def __repr__(self) -> str:
        return (
            f"<HttpSource {self.name!r} directory={str(self.directory)!r} "
            f"concurrency={self.concurrency} retries={self.retries}>"
        )


#: The longest a socket or a lock can wait (about 292 years): a longer
#: connect or read timeout failed every download with ``OverflowError``.
_LONGEST_WAIT = threading.TIMEOUT_MAX

#: The largest low-speed limit: with any ``speed_time`` up to
#: ``_LONGEST_WAIT`` the bytes it asks of a window stay a finite float.
_MOST_BYTES = 2**63 - 1


def _wait(value: object, what: str) -> float:
    """A timeout or window in seconds: > 0 and at most :data:`_LONGEST_WAIT`."""
    seconds = check_duration(value, what, allow_zero=False)
    if seconds > _LONGEST_WAIT:
        msg = (
            f"{what} must be at most {_LONGEST_WAIT:.0f} s (the longest a socket can "
            f"wait), got {value!r}"
        )
        raise ValueError(msg)
    return seconds


def _count(value: object, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{what} must be an int, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        msg = f"{what} must be {bound}, got {value}"
        raise ValueError(msg)
    return value


def _check_headers(headers: object, what: str) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        msg = f"{what}: headers must be a mapping of str to str, got {type(headers).__name__}"
        raise TypeError(msg)
    checked: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            msg = f"{what}: headers must map str to str (bad entry for {key!r})"
            raise TypeError(msg)
        if not HEADER_NAME.fullmatch(key):
            msg = f"{what}: {key!r} is not a valid HTTP header name"
            raise ValueError(msg)
        if key.lower() in OWN_HEADERS:
            msg = f"{what}: {key!r} is set by the source itself (to resume); it cannot be given"
            raise ValueError(msg)
        if key.lower() in BODY_HEADERS:
            msg = f"{what}: {key!r} {BODY_HEADER_PROBLEM}"
            raise ValueError(msg)
        if value != value.strip() or any(c in value for c in "\r\n\0"):
            # The value itself is not shown: it is often a credential.
            msg = (
                f"{what}: the value of header {key!r} has a line break or surrounding "
                f"spaces (a token read from a file with its newline?)"
            )
            raise ValueError(msg)
        problem = value_problem(value)
        if problem is not None:
            msg = f"{what}: the value of header {key!r} has {problem}"
            raise ValueError(msg)
        checked[key] = value
    return checked


def _with_user_agent(headers: dict[str, str], user_agent: object, what: str) -> dict[str, str]:
    """``headers`` with exactly one ``User-Agent`` (the default unless given)."""
    given = [key for key in headers if key.lower() == "user-agent"]
    if user_agent is None:
        if not given:
            headers["User-Agent"] = default_user_agent()
        return headers
    if not isinstance(user_agent, str):
        msg = f"{what}: user_agent must be a str, got {type(user_agent).__name__} {user_agent!r}"
        raise TypeError(msg)
    if given:
        msg = f"{what}: give the User-Agent once: as user_agent or in headers, not both"
        raise ValueError(msg)
    if not user_agent.strip() or any(c in user_agent for c in "\r\n\0"):
        msg = f"{what}: user_agent must be one line of text, got {user_agent!r}"
        raise ValueError(msg)
    problem = value_problem(user_agent)
    if problem is not None:
        msg = f"{what}: user_agent has {problem}"
        raise ValueError(msg)
    headers["User-Agent"] = user_agent.strip()
    return headers


def _check_verify(verify: object, what: str) -> bool | str:
    if isinstance(verify, bool):
        return verify
    if isinstance(verify, (str, Path)):
        path = Path(verify)
        if not path.exists():
            msg = f"{what}: CA bundle {str(path)!r} does not exist"
            raise ValueError(msg)
        return str(path)
    msg = f"{what}: verify must be a bool or a CA bundle path, got {verify!r}"
    raise TypeError(msg)
