"""``regisseur download URL... [-i FILE] [-o DIR] [-j N] [-q] [--header 'N: V'] ...``.

A resumable downloader built on the library: one ``HttpSource`` writing to
``DIR`` with ``-j`` downloads at a time, its records in
``DIR/.regisseur-downloads.db`` (or ``--db``, a URL or a SQLite file). That
file is created with mode 0600 (records keep the URLs, passwords included,
to resume them), and a symbolic link in its place is refused; so is a
link at a SQLite file ``--db`` names inside ``DIR``, which is narrowed to
0600 too.

* URLs come from the arguments and from ``-i FILE`` (one a line, ``-`` for
  stdin, blank lines and ``#`` comments skipped); a literal space in a URL
  is sent percent-encoded, as curl and wget send it.
* Ctrl-C stops the system: every ``.part`` file is kept and the records stay
  InProgress. The next run in the same ``DIR`` resumes them (the keeper does
  that by itself at start, since the source is registered at start) with
  ``Range`` requests; a URL that is already pending is not submitted again,
  and unfinished downloads of earlier runs in ``DIR`` are finished too.
* The stop says so as it begins (``stopping: keeping N partial file(s)
  ...``, a progress line). In the console script a second Ctrl-C or SIGTERM
  while it stops quits at once (one line on what is cut short; the folder
  is left as a SIGKILL leaves it, and the next run resumes each part from
  its last byte); SIGHUP while it stops is ignored.
* A download the local disk refused (full, or over quota) fails, and
  keeps its ``.part`` (the FAILED line says how many bytes); the next run
  naming the URL retries that download under its id
  (``system.downloads.retry``) and resumes it with a ``Range`` request.
* A URL already downloaded is reported and skipped when its file is still
  there with the recorded size (and the ``--sha256`` given, if any);
  otherwise it is downloaded again (to a new name: a file someone changed
  is never overwritten).
* Another run in the same ``DIR`` (same database) at the same time: each
  run does its own downloads; a URL the other run is downloading is not
  fetched again: this run says ``waiting for URL: pid N on host H is
  downloading it`` and waits for that download's end (a failure if that
  run ends without finishing it). The other run's own work is never
  resumed while it lives (see ``regisseur.actors.downloads.owners``).
* ``--sha256`` (one URL only) is checked by the source, or here, on the
  file, for a download that was resumed or done before.
* ``--max-size``, ``--max-time``, ``--speed-limit``/``--speed-time`` bound
  each download (the ``HttpSource`` options ``max_bytes``, ``max_time``,
  ``speed_limit``, ``speed_time``).
* URLs are shown with their passwords and signed-URL parameters redacted
  (the records keep them, to resume).

Output: progress and per-file lines on stderr (bars with rich on a
terminal, else plain lines; none with ``-q``), one ``FAILED <url>:
<error>`` line per failure on stderr, and on stdout the path of each file
the run delivered (one a line, in the order of the URLs). Exit codes: 0
when every download succeeded, 1 when any failed, 2 for bad arguments, an
unusable ``-o`` or a system that cannot start, 130 on Ctrl-C, 143 on
SIGTERM and 129 on SIGHUP (both taken like Ctrl-C: the parts are flushed
and recorded; started under ``nohup``, SIGHUP stays ignored).

Threads: the command runs on the caller's thread and waits for the
download events (delivered on the event bus's thread). The runtime is
imported when a download runs, not for ``--help`` or bad arguments.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import itertools
import os
import socket
import stat
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar
from urllib.parse import parse_qsl, urlsplit

from regisseur.cli._download_args import add_arguments, bounds, read_urls, request_headers
from regisseur.cli._download_places import (
    inside,
    plain_reason,
    prepare_directory,
    prepare_records,
)
from regisseur.cli._download_view import LineView, make_view, size_text
from regisseur.cli._error_text import beside_url, missing_driver
from regisseur.cli._interrupts import (
    cleaning_up,
    cut_short_says,
    exit_code,
    interrupted,
    stopped_by,
)
from regisseur.cli._records_db import (
    DB_NAME,
    database_url,
    records_file,
    shown_database,
    sqlite_url,
)
from regisseur.cli._records_wait import RecordsLocked, records_locked, wait_unlocked
from regisseur.cli._records_watch import RecordsRefused, RecordsWatch
from regisseur.cli._retry_lines import show_retries
from regisseur.messages import (
    ChildGaveUp,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    SystemFailed,
)
from regisseur.messages.redaction import redact_text

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

    from regisseur.actors.system import ActorSystem

__all__ = ["DB_NAME", "add_arguments", "run_download"]

T = TypeVar("T")

_SOURCE = "http"
#: The ``extra`` key that names the directory a download was submitted for
#: (with ``--db``: records shared by several directories).
_DIRECTORY = "directory"
_DATABASE_MODULES = frozenset({"sqlalchemy", "sqlite3", "psycopg", "psycopg2"})
_POLL = 0.2  # seconds between two looks at a download another run holds
#: Longest the main thread sleeps in one wait before it runs the Python
#: signal handlers (and checks the records). The kernel cannot hand Ctrl-C
#: or SIGTERM to another thread of the run (they all block them:
#: ``main_thread_signals``), and one that reaches the main thread in its
#: wait ends the wait at once; but one that lands just before the wait
#: begins only sets Python's flag, and an untimed wait would sleep through
#: it until the downloads end by themselves.
_WAKE = 0.1
#: Seconds between two asks of a keeper that did not answer in time (see
#: ``_patiently``): twice the 5 s the records watch waits before it says
#: why (each of its looks can take a second).
_ASK_PAUSE = 10.0
#: Seconds the plan's first list of the records may take (the facade's default).
_ASK_TIMEOUT = 10.0
# The records URL's option (regisseur's own) for a file claimed in DIR:
# SQLite must open that very file, never a link put in its place.
_NOFOLLOW = "nofollow=1"


def _with_nofollow(db_url: str) -> str:
    """``db_url`` with the option ``nofollow=1`` unless it names one already
    (``--db 'sqlite:///DIR/x.db?nofollow=1'``, as the README advises: a
    second one would be a list of values the database refuses)."""
    query = db_url.partition("?")[2]
    if any(key == "nofollow" for key, _ in parse_qsl(query, keep_blank_values=True)):
        return db_url
    return f"{db_url}{'&' if '?' in db_url else '?'}{_NOFOLLOW}"


# -- what a run reads, prints and sends -------------------------------------------


def _plain_error(exc: BaseException) -> tuple[str, bool]:
    """The innermost cause of ``exc`` in plain words; True if it is the database's.

    A SQLAlchemy error is replaced by its driver's own message (``unable to
    open database file``), without the class names and the documentation link.
    """
    chain = [exc]
    while len(chain) < 20:
        inner = getattr(chain[-1], "cause", None)  # StartupError keeps its cause here
        if not isinstance(inner, BaseException):
            inner = chain[-1].__cause__
        if inner is None:
            break
        chain.append(inner)
    from regisseur.actors.database import DatabaseError  # loaded with the runtime already

    # The driver's, or regisseur's checks' refusal of a records file.
    database = any(
        type(e).__module__.split(".")[0] in _DATABASE_MODULES or isinstance(e, DatabaseError)
        for e in chain
    )
    cause = chain[-1]
    original = getattr(cause, "orig", None)  # SQLAlchemy's wrapper: the driver's error
    if isinstance(original, BaseException):
        cause = original
    if isinstance(cause, OSError) and cause.strerror:
        return plain_reason(cause) + (f": {cause.filename}" if cause.filename else ""), database
    return str(cause) or type(cause).__name__, database


class _Tracker:
    """Download events of this run: which ended, and how (bus thread -> main thread)."""

    def __init__(self, view: LineView) -> None:
        self._cond = threading.Condition()
        self._view = view
        self.seen: set[str] = set()
        self.ended: dict[str, DownloadRecord] = {}
        self.before: set[str] = set()  # ended in an earlier run, its file checked
        self.broken: str | None = None

    def __call__(self, event: object) -> None:
        if isinstance(event, (DownloadProgressed, DownloadStateChanged)):
            # Counted before it is shown: whatever happens to the view, an
            # end is never missed (the run would wait for it forever).
            with self._cond:
                self.seen.add(event.record.id)
                if event.record.terminal:
                    self.ended[event.record.id] = event.record
                    self._cond.notify_all()
            self._view.update(event)
        elif isinstance(event, (SystemFailed, ChildGaveUp)):
            with self._cond:
                name = getattr(event, "name", "the system")
                self.broken = f"{name} failed: {event.error}"
                self._cond.notify_all()

    def done_before(self, record: DownloadRecord) -> None:
        """Count ``record`` (ended in an earlier run, its file checked) as ended."""
        with self._cond:
            self.ended.setdefault(record.id, record)
            self.before.add(record.id)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (real time); True at once if the system broke."""
        with self._cond:
            if self.broken is None:
                self._cond.wait(seconds)
            return self.broken is not None

    def ids(self) -> set[str]:
        """Every download that changed state or made progress in this run."""
        with self._cond:
            return set(self.seen)

    def touched(self, download_id: str) -> bool:
        """True if the download changed state or made progress in this run."""
        with self._cond:
            return download_id in self.seen

    def wait_for(
        self, ids: Iterable[str], check: Callable[[], str | None] | None = None
    ) -> dict[str, DownloadRecord]:
        """Block until every download in ``ids`` has ended; their final records, in order.

        Main thread: Ctrl-C, SIGTERM and SIGHUP end the wait at once, or
        within ``_WAKE`` seconds if they land just before it. ``check`` is asked
        at each wake (outside the lock): a text it returns (the records
        cannot be written, see ``RecordsWatch``) raises ``RecordsRefused``.
        """
        wanted = list(ids)
        while True:
            with self._cond:
                if self.ended.keys() >= set(wanted):
                    return {i: self.ended[i] for i in wanted}
                if self.broken is not None:
                    raise RuntimeError(self.broken)
                self._cond.wait(_WAKE)  # timed: see _WAKE
            problem = check() if check is not None else None
            if problem is not None:
                raise RecordsRefused(problem)


class _Quiet(LineView):
    """``-q``: no progress or per-file lines."""

    def say(self, text: str) -> None:
        return

    def update(self, event: DownloadStateChanged | DownloadProgressed) -> None:
        return


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _changed(record: DownloadRecord, sha256: str | None) -> str | None:
    """Why the file of ``record`` (a success) is not the one downloaded, or None."""
    path = record.file_path or ""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is not a regular file"
        if record.size is not None and info.st_size != record.size:
            return f"{path} has {info.st_size} bytes, not the {record.size} downloaded"
        if sha256 is not None:
            got = _file_sha256(path)
            if got != sha256:
                return f"the sha256 of {path} is {got}, not {sha256}"
    except FileNotFoundError:
        return f"{path} is gone"
    except OSError as exc:
        return f"cannot read {path}: {plain_reason(exc)}"
    return None


def _in_home(record: DownloadRecord, home: Path | None) -> DownloadRecord:
    """``record`` (a success) with its file looked for in ``home``, the
    directory whose own records these are, under the name it was published
    as: the records go with the directory when it is moved or copied, and
    the absolute path they keep names the place it had then. Unchanged
    without ``home`` (``--db``: the records may serve other directories)."""
    if home is None or not record.file_path:
        return record
    recorded = Path(record.file_path)
    if recorded.parent == home:
        return record
    return record.evolve(file_path=str(home / recorded.name))


def _others(system: ActorSystem, records: list[DownloadRecord]) -> dict[str, str]:
    """Of the unfinished ``records``, those another live process holds: id -> owner."""
    from regisseur.actors.downloads import store
    from regisseur.actors.downloads.owners import lock_directory, owner_alive

    database = system.database
    pending = [r.id for r in records if not r.terminal]
    if database is None or not pending:
        return {}
    with database.engine.connect() as connection:
        owners = store.owners_of(connection, pending)
    mine = f"{socket.gethostname()}:{os.getpid()}:"
    locks = lock_directory(database.sqlalchemy_url)
    return {
        i: owner
        for i, owner in owners.items()
        if owner is not None and not owner.startswith(mine) and owner_alive(locks, owner)
    }


def _resumable(record: DownloadRecord, kept: set[str], sha256: str | None) -> bool:
    """True if ``record`` is an Errored download whose part was kept (a full
    disk: its id is in ``kept``), asked for with the same ``--sha256`` (the
    record keeps its own)."""
    if record.state is not DownloadState.ERRORED or record.extra.get("sha256") != sha256:
        return False
    return record.id in kept


def _patiently(
    ask: Callable[[], T],
    watch: RecordsWatch | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``ask()``, a question to the download keeper, asked again while the
    keeper is too busy to answer in time (main thread).

    Another process holding the records database (another run stopped
    with Ctrl-Z while it wrote) keeps each commit of the keeper waiting
    for SQLite's busy timeout, and an ask waits for one or two of them:
    before, the plan gave up after 20 s (``no reply from
    'download-keeper' within 10s``, exit 1). That lock is waited out as
    while the downloads run: ``watch`` says once that the run waits and
    why, and raises ``RecordsRefused`` (via its text) for a refusal that
    lasts until someone acts. Only for asks that may be asked twice
    (a look, a list). Ctrl-C ends the wait.

    After each ask that timed out the keeper is left alone for
    ``_ASK_PAUSE`` seconds, the watch asked meanwhile (about once a second):
    asked again at once, the keeper would go from one commit to the next,
    and the watch would never see the refusal last its 5 s grace. The pause
    ends early once the watch finds the keeper answering with its writes
    stored (the lock was let go): before, the run sat up to 10 s longer.
    """
    from regisseur.actors.errors import WaitTimeoutError

    while True:
        try:
            return ask()
        except WaitTimeoutError:
            if watch is None:
                raise
        paused = clock()
        until = paused + _ASK_PAUSE
        while True:
            problem = watch.problem()
            if problem is not None:
                raise RecordsRefused(problem)
            if watch.stored_since(paused):
                break
            left = until - clock()
            if left <= 0:
                break
            sleep(min(_WAKE, left))


def _longer_each_time(system: ActorSystem) -> Callable[[], list[DownloadRecord]]:
    """The plan's list of every record, each ask allowed twice the time of the
    one before (10 s, 20 s, ... up to 640 s).

    A keeper busy with the downloads an interrupted run left (100,000 of
    them: its workers running while it reads) took longer than 10 s to list
    them; each ask that timed out was asked again with the same 10 s, the
    keeper still working through the ones before: the plan took 132 s
    instead of 20. Twice the time each time, the plan waits at most about
    twice what the list takes.
    """
    asks = itertools.count()

    def ask() -> list[DownloadRecord]:
        timeout = _ASK_TIMEOUT * 2 ** min(next(asks), 6)
        return system.downloads.list(source=_SOURCE, timeout=timeout)

    return ask


def _plan(
    system: ActorSystem,
    urls: list[str],
    sha256: str | None,
    tracker: _Tracker,
    view: LineView,
    *,
    kept: Callable[[list[str]], set[str]] = lambda _ids: set(),
    home: Path | None = None,
    shared_from: str | None = None,
    watch: RecordsWatch | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Submit what is needed; return the ids to wait for (resumed ones first)
    and, apart, the wanted downloads another run holds (id -> its owner).

    ``home``: the download directory when the records are its own
    (``DIR/.regisseur-downloads.db``), resolved; a file downloaded before is
    then looked for there, wherever the directory was then (see ``_in_home``).

    ``shared_from``: with ``--db`` (records several directories may share),
    this run's directory, resolved: its submits name it, and an unfinished
    download submitted for another is left to a run there (see
    ``_submitted_for``).

    ``kept``: of the downloads asked about, those whose part is in the
    directory (asked once, about every URL's newest record that is Errored:
    each ask is a look at the whole directory); a URL whose newest record is
    Errored with its part kept (a full disk) is retried under its id, so it
    resumes where it stopped.

    ``watch``: the keeper's looks are asked again while another process
    holds the records (see ``_patiently``)."""
    from regisseur.actors.downloads.names import display_name_from_url
    from regisseur.actors.downloads.owners import describe_owner

    newest: dict[str, DownloadRecord] = {}
    wanted: dict[str, None] = {}
    stored_records = _patiently(_longer_each_time(system), watch)
    others = _others(system, stored_records)
    ours = None if shared_from is None else _submitted_for(shared_from)
    resumed: set[str] = set()  # URLs an unfinished download of this run's covers
    for stored in stored_records:
        newest[stored.target_id] = stored
        if stored.id in others:
            continue  # another live run's download: never resumed here
        if ours is not None and not stored.terminal and not ours(stored):
            continue  # left for a run in its own directory (the keeper declined it)
        if not stored.terminal or tracker.touched(stored.id):  # resumed by the keeper
            wanted[stored.id] = None
            resumed.add(stored.target_id)
            view.resumes(stored.id)  # a retry already held back: no downloading line
            view.say(f"resuming {redact_text(stored.target_id)}")
    elsewhere: dict[str, str] = {}
    failed = [r.id for r in map(newest.get, urls) if r and r.state is DownloadState.ERRORED]
    with_parts = kept(failed) if failed else set()
    for url in urls:
        record = newest.get(url)
        if url in resumed or (record is not None and record.id in wanted):
            continue
        if record is not None and record.id in others:
            owner = others[record.id]
            view.say(f"waiting for {redact_text(url)}: {describe_owner(owner)} is downloading it")
            elsewhere[record.id] = owner
            continue
        if record is not None and record.state is DownloadState.SUCCEEDED and record.file_path:
            record = _in_home(record, home)
            why = _changed(record, sha256)
            if why is None:
                view.say(f"already downloaded {redact_text(url)} -> {record.file_path}")
                wanted[record.id] = None
                tracker.done_before(record)
                continue
            view.say(f"downloading {redact_text(url)} again: {why}")
        if record is not None and _resumable(record, with_parts, sha256):
            # Run again under its id: its source resumes the part. False:
            # reopened meanwhile by another process (a library user; runs
            # of this command plan one at a time), which is waited for.
            view.resumes(record.id)  # said as "resuming", not "downloading" too
            if system.downloads.retry(record.id):
                view.say(f"resuming {redact_text(url)}")
                wanted[record.id] = None
                continue
            current = _patiently(partial(system.downloads.status, record.id), watch)
            holder = _others(system, [current]).get(record.id) if current is not None else None
            if holder is not None:
                view.say(f"waiting for {redact_text(url)}: {describe_owner(holder)} is resuming it")
                elsewhere[record.id] = holder
                continue
        name = _directory_index(url) or display_name_from_url(url)
        extra = {"sha256": sha256} if sha256 else {}
        if shared_from is not None:
            extra[_DIRECTORY] = shared_from
        wanted[system.downloads.submit(_SOURCE, url, name, extra=extra or None)] = None
    return list(wanted), elsewhere


def _submitted_for(directory: str) -> Callable[[DownloadRecord], bool]:
    """With ``--db``: whether an unfinished download is this run's to resume,
    that is, submitted for ``directory`` (a record from before runs named
    theirs: any). Before, a run in one directory took over the unfinished
    downloads a stopped run had left for another and fetched them anew into
    its own, the other run's parts left behind (the ``resumes`` of its
    source, on the keeper's thread, and the plan, on the main thread)."""

    def resumes(record: DownloadRecord) -> bool:
        wanted_in = record.extra.get(_DIRECTORY)
        return wanted_in is None or wanted_in == directory

    return resumes


def _directory_index(url: str) -> str | None:
    """``index.html`` for a URL whose path ends in ``/`` or is empty (the name
    wget and aria2c give such a page when its server names none), else None.
    Before, ``http://host/docs/`` was saved as ``docs`` and ``http://host/``
    under the host's name."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    return "index.html" if path.endswith("/") or not path else None


def _wait_elsewhere(
    system: ActorSystem,
    elsewhere: dict[str, str],
    tracker: _Tracker,
    view: LineView,
    *,
    max_time: float | None = None,
    unfinished: set[str] | None = None,
    watch: RecordsWatch | None = None,
) -> dict[str, DownloadRecord]:
    """Wait for the downloads other runs hold (polling their records); their ends.

    One whose owner ends without finishing it is taken over
    (``system.downloads.take_over``: of several runs waiting for it,
    exactly one gets it) and finished here, resumed from the part that
    run left; a run that did not get it waits for the one that did. One
    still unfinished ``max_time`` seconds (``--max-time``) after this wait
    began comes back as an Errored copy saying so: a stopped or stuck run
    (which keeps its owner lock: never taken over) never holds this one
    past its bound. So does one whose owner is gone but that no run could
    take over. The ids of those copies are added to ``unfinished``: their
    parts (if any) are the other run's, not kept by this one.
    """
    if unfinished is None:
        unfinished = set()
    from regisseur.actors.downloads.owners import describe_owner, lock_directory, owner_alive

    database = system.database
    locks = lock_directory(database.sqlalchemy_url) if database is not None else None
    ended: dict[str, DownloadRecord] = {}
    pending = dict(elsewhere)
    taken: list[str] = []  # taken over: this run's now, their end comes as an event
    deadline = None if max_time is None else time.monotonic() + max_time
    while pending:
        if deadline is not None and time.monotonic() >= deadline:
            for download_id, owner in pending.items():
                record = _patiently(partial(system.downloads.status, download_id), watch)
                if record is None:
                    continue
                if not record.terminal:
                    why = (
                        f"{describe_owner(owner)} is still downloading it after the "
                        f"--max-time of {max_time:g} s; not waited for longer"
                    )
                    record = record.evolve(state=DownloadState.ERRORED, error=why)
                    unfinished.add(download_id)
                ended[download_id] = record
            break
        for download_id, owner in list(pending.items()):
            record = _patiently(partial(system.downloads.status, download_id), watch)
            if record is None:
                del pending[download_id]
                continue
            if record.terminal:
                ended[download_id] = record
                del pending[download_id]
                if record.state is DownloadState.SUCCEEDED:  # a failure: its FAILED line
                    view.say(
                        f"done {redact_text(record.target_id)} -> {record.file_path} "
                        f"({size_text(record.size)}, by {describe_owner(owner)})"
                    )
            elif not owner_alive(locks, owner):
                del pending[download_id]
                if system.downloads.take_over(download_id):
                    view.say(
                        f"taking over {redact_text(record.target_id)}: "
                        f"{describe_owner(owner)} ended without finishing it"
                    )
                    taken.append(download_id)
                    continue
                found = _held_now(system, download_id, owner, locks)
                if found is None:
                    continue
                if isinstance(found, str):  # another waiting run took it over
                    view.say(
                        f"waiting for {redact_text(record.target_id)}: "
                        f"{describe_owner(found)} is downloading it"
                    )
                    pending[download_id] = found
                    continue
                if not found.terminal:  # gone, and no run could take it over
                    why = (
                        f"{describe_owner(owner)} ended without finishing it; "
                        "run the command again to resume it"
                    )
                    found = found.evolve(state=DownloadState.ERRORED, error=why)
                    unfinished.add(download_id)
                ended[download_id] = found
        pause = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
        if pending and tracker.pause(pause):
            raise RuntimeError(tracker.broken)
    if taken:  # bounded by this run's own --max-time, as its other downloads
        ended.update(tracker.wait_for(taken, None if watch is None else watch.problem))
    return ended


def _held_now(
    system: ActorSystem, download_id: str, gone: str, locks: Path | None
) -> DownloadRecord | str | None:
    """After a take-over this run did not get: the live owner that holds the
    download now (another waiting run took it over), else its record (None:
    it is gone from the records)."""
    from regisseur.actors.downloads import store
    from regisseur.actors.downloads.owners import owner_alive

    record = system.downloads.status(download_id)
    database = system.database
    if record is None or record.terminal or database is None:
        return record
    with database.engine.connect() as connection:
        owner = store.owners_of(connection, [download_id]).get(download_id)
    if owner is not None and owner != gone and owner_alive(locks, owner):
        return owner
    return record


def _failure(record: DownloadRecord, sha256: str | None, checked: set[str]) -> str | None:
    """Why ``record`` did not give the wanted file, or None."""
    if record.state is not DownloadState.SUCCEEDED:
        return record.error or record.state.value
    if (
        sha256 is None
        or record.id in checked
        or record.extra.get("sha256") == sha256
        or not record.file_path
    ):
        return None  # checked already (by the source, or by _changed), or nothing to check
    try:
        got = _file_sha256(record.file_path)
    except OSError as exc:
        return f"cannot read {record.file_path!r} to check its sha256: {exc}"
    if got != sha256:
        return f"sha256 mismatch: expected {sha256}, got {got}: {record.file_path}"
    return None


def _say_failed(view: LineView, exc: Exception, db_url: str) -> None:
    """One plain line for an error that ended the run (no traceback)."""
    text, of_database = _plain_error(exc)
    if of_database:  # a read the records refuse (SQLAlchemy's wrapper dropped)
        text = f"cannot use the records database {shown_database(db_url)}: {text}"
    elif not isinstance(exc, OSError):
        text = f"{type(exc).__name__}: {exc}"
    view.tell(f"regisseur download: {redact_text(text)}")


def _failed_line(url: str, why: str) -> str:
    """``FAILED <url>: <why>``, both redacted, without the URL said twice
    (see ``beside_url``)."""
    shown = redact_text(url)
    return f"FAILED {shown}: {beside_url(redact_text(why), shown)}"


def _deliver(paths: list[str], out: TextIO | None) -> str | None:
    """Write ``paths`` to ``out``, one a line; why they could not be, or None.

    ``BrokenPipeError`` is raised: the reader went away on purpose
    (``| head -1``), and the console script ends quietly. Any other
    failure (``>&-``, ``>/dev/full``) is returned, and ``sys.stdout`` is
    pointed at ``os.devnull`` so that the interpreter's own flush at exit
    does not fail again with a traceback.
    """
    if not paths:
        return None
    if out is None:
        return "stdout is closed"
    try:
        for path in paths:
            out.write(f"{path}\n")
        out.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        if out is sys.stdout:
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return plain_reason(exc) if isinstance(exc, OSError) else str(exc)
    return None


def _with_bytes(parts: Iterable[Path]) -> int:
    """How many of ``parts`` hold a byte to resume from: one a download made
    before its body came (stopped while it waited to retry) has none."""
    count = 0
    for part in parts:
        with contextlib.suppress(OSError):  # gone meanwhile: not kept
            count += os.lstat(part).st_size > 0
    return count


def _stopping_line(parts: int) -> str:
    """What a run says as its stop begins (silenced by ``-q``, as progress is)."""
    return (
        f"stopping: keeping {parts} partial file(s) "
        "(Ctrl-C again quits at once; they still resume from their last byte)"
    )


#: What a second Ctrl-C or SIGTERM during the stop says (see cli/_interrupts.py).
_CUT_SHORT = (
    "quit at once: the records may be behind; the partial files resume from their "
    "last byte when the same command runs again"
)


def run_download(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Download ``args.urls`` (and ``-i``'s); return the exit code.

    Main thread. In the console script, a second Ctrl-C or SIGTERM while the
    run stops ends the process at once with :data:`_CUT_SHORT` on stderr
    (see :mod:`regisseur.cli._interrupts`).
    """
    cut_short_says(_CUT_SHORT)
    # A stream the shell closed (`>&-`, `2>&-`) is None in sys: nothing to
    # show there; results that cannot be delivered are an error (below).
    out = out or sys.stdout
    err = err or sys.stderr or io.StringIO()
    try:
        urls = read_urls(args)
        headers = request_headers(args)
    except ValueError as exc:
        err.write(f"regisseur download: {exc}\n")
        return 2
    if args.sha256 and len(urls) > 1:
        err.write("regisseur download: --sha256 needs exactly one URL\n")
        return 2
    directory = Path(args.output).expanduser()
    problem = prepare_directory(directory)
    if problem is not None:
        err.write(f"regisseur download: {problem}\n")
        return 2
    # Imported here: --help and bad arguments do not load the runtime.
    from regisseur.actors.database import DatabaseError, claim_private_sqlite
    from regisseur.actors.downloads.http import HttpSource
    from regisseur.actors.downloads.owners import PlanningTimeoutError
    from regisseur.actors.system import ActorSystem
    from regisseur.supervision.errors import StartupError

    try:
        db_file = records_file(args.db) if args.db else directory.resolve() / DB_NAME
        claimed = db_file is not None and inside(db_file, directory)
        if db_file is not None and claimed:
            # Private, and never through a link planted in DIR (whoever can
            # write to DIR could point it at another application's database).
            try:
                claim_private_sqlite(db_file)
            except DatabaseError as exc:
                cause = exc.__cause__
                if not isinstance(cause, OSError) or cause.errno == errno.ELOOP:
                    raise  # a link or not a file: its message says so
                # The same words as for a --db file it cannot write (below).
                problem = f"cannot write to the records database {db_file}: {plain_reason(cause)}"
                err.write(f"regisseur download: {problem}\n")
                return 2
        problem = prepare_records(db_file) if db_file is not None else None
        if problem is not None:
            err.write(f"regisseur download: {problem}\n")
            return 2
        db_url = database_url(args.db) if args.db or db_file is None else sqlite_url(db_file)
        # Claimed: a link put there since is refused when the system opens it.
        system_url = _with_nofollow(db_url) if claimed else db_url
        # As many workers as this run's URLs need, up to -j: each is a
        # thread with its own HTTP session to start and stop. Downloads an
        # earlier run left unfinished may add to them (see below).
        workers = min(args.jobs, max(1, len(urls)))
        # Records others may share (--db): this run's unfinished ones are those
        # submitted for this directory.
        shared_from = str(directory.resolve()) if args.db else None
        source = HttpSource(
            _SOURCE,
            directory=directory,
            concurrency=workers,
            retries=args.retries,
            headers=headers,
            user_agent=args.user_agent,
            resumes=None if shared_from is None else _submitted_for(shared_from),
            fsync=args.fsync,
            verify=args.ca_certificate or True,
            **bounds(args),
        )
        system = ActorSystem(
            name="regisseur-download",
            database_url=system_url,
            download_sources=[source],
            # Its threads never take Ctrl-C or SIGTERM: the main thread does,
            # and a second one quits at once even while the stop waits.
            main_thread_signals=True,
        )
    except (OSError, TypeError, ValueError, DatabaseError) as exc:
        text = redact_text(str(exc))
        if isinstance(exc, DatabaseError) and not args.db:
            # "remove it" may not be in the user's power (another user's
            # file in a sticky folder such as /tmp): the other way out.
            text += " (or keep this run's records elsewhere: --db FILE)"
        err.write(f"regisseur download: {text}\n")
        return 2
    view = _Quiet(err) if args.quiet else make_view(err, plain=args.plain)
    # A run waiting to retry says so (its own retries only: see _retry_lines).
    retries = show_retries(view.say, args.retries + 1, system.threads, view.before_retry)
    retries.hold_lines()  # until the plan has said which downloads are resumed
    tracker = _Tracker(view)
    code = 0
    stopped: str | None = None  # how a signal stopped the run: "interrupted", ...
    unfinished: set[str] = set()  # downloads other runs still held when this run gave up
    final: dict[str, DownloadRecord] = {}
    wanted: list[str] = []  # this run's downloads, once planned
    try:
        # Before start: downloads resumed by the keeper report at once.
        system.downloads.subscribe(tracker)
        system.events.subscribe(tracker, SystemFailed, ChildGaveUp)
        from regisseur.actors.downloads.owners import lock_directory, planning

        database = system.database
        locks = lock_directory(database.sqlalchemy_url) if database is not None else None
        # One run at a time starts and plans: two runs starting at once on a
        # new records file raced on its schema ("database is locked"), and a
        # run started at the same moment sees this run's submits (stored
        # before the lock is let go) and waits.
        waiting = "waiting for another run to start and queue its downloads"
        # Whether the records can be written: asked while the run waits for
        # the keeper, here and for the downloads' ends (see _patiently).
        shown = shown_database(db_url)
        watch = RecordsWatch(system, shown, notice=view.tell)
        with planning(locks, lambda: view.say(waiting), timeout=args.max_time):
            # Another process holding the records' locks would fail the start,
            # or hold its first write in silence (see _records_wait).
            locked = partial(records_locked, db_file)
            wait_unlocked(locked, shown, view.tell, args.max_time)
            system.start()
            wanted, elsewhere = _plan(
                system,
                urls,
                args.sha256,
                tracker,
                view,
                kept=source.with_partial_files,
                home=None if args.db else directory.resolve(),
                shared_from=shared_from,
                watch=watch,
            )
            retries.release_lines()
            if min(args.jobs, len(wanted)) > workers:  # resumed ones too: up to -j
                system.downloads.configure(_SOURCE, concurrency=min(args.jobs, len(wanted)))
            if wanted:  # an ask: answered once stored (or the commit failed)
                _patiently(partial(system.downloads.status, next(iter(wanted))), watch)
        over = getattr(args, "startup_over", None)  # the console script's collector
        if over is not None:
            over()
        final = tracker.wait_for(wanted, watch.problem)
        final.update(
            _wait_elsewhere(
                system,
                elsewhere,
                tracker,
                view,
                max_time=args.max_time,
                unfinished=unfinished,
                watch=watch,
            )
        )
    except KeyboardInterrupt as interrupt:  # Ctrl-C; SIGTERM, SIGHUP from the console script
        code, stopped = exit_code(interrupt), stopped_by(interrupt)
    except RecordsRefused as refused:  # a full disk: what ends cannot be recorded
        code = 1
        stopped = f"regisseur download: {refused}; stopped"
    except RecordsLocked as locked:  # another process held the records past --max-time
        code = 1
        view.close()
        view.tell(f"regisseur download: {redact_text(str(locked))}")
    except PlanningTimeoutError:  # another run stopped or stuck while it starts
        code = 1
        view.close()
        view.tell(
            f"regisseur download: another run in {directory} is still starting after the "
            f"--max-time of {args.max_time:g} s (stopped?); nothing was downloaded"
        )
    except StartupError as exc:
        code = 2
        view.close()
        text, of_database = _plain_error(exc)
        text = missing_driver(exc) or text
        if of_database or exc.child == "database":  # also: its driver is not installed
            shown = shown_database(db_url)
            problem = redact_text(f"cannot use the records database {shown}: {text}")
            view.tell(f"regisseur download: {problem}")
        else:
            view.tell(f"regisseur download: cannot start: {exc.child}: {text}")
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        ended = interrupted(exc)  # a lock's error raised as the interrupt unwound?
        if ended is not None:
            code, stopped = ended
        else:
            code = 1
            view.close()
            _say_failed(view, exc, db_url)
    finally:
        with cleaning_up():
            retries.close()
            view.close()
            if stopped is not None:  # the stop may take seconds: say so at once
                parts = _with_bytes(source.partial_files(tracker.ids() | set(wanted)))
                view.say(_stopping_line(parts))
            system.stop()
    if stopped is not None:
        # This run's parts only: another live run's in DIR are not ours to resume.
        parts = _with_bytes(source.partial_files(tracker.ids() | set(wanted)))
        view.tell(
            f"{stopped}: {parts} partial file(s) kept in {directory}; "
            "run the same command again to resume"
        )
        return code
    # In the order of the URLs (resumed ones and those another run held were
    # waited for first or apart); an earlier run's downloads this run did not
    # name come after them.
    place = {url: index for index, url in enumerate(urls)}
    ordered = sorted(final.values(), key=lambda r: place.get(r.target_id, len(place)))
    failures = [(r, _failure(r, args.sha256, tracker.before)) for r in ordered]
    for record, why in failures:
        if why is not None:
            view.tell(_failed_line(record.target_id, why))
    delivered = [r.file_path for r, why in failures if why is None and r.file_path]
    lost = _deliver(delivered, out)
    if final:
        failed = sum(1 for _, why in failures if why is not None)
        view.say(f"{len(final) - failed} of {len(final)} download(s) done in {directory}")
        code = code or (1 if failed else 0)
        # A full disk keeps what the failed downloads had fetched: say so.
        # Not the parts of downloads another run still holds (or left when
        # it died): those are not this run's, and no disk was full.
        kept = source.partial_files(
            r.id for r, why in failures if why is not None and r.id not in unfinished
        )
        if kept:
            view.tell(
                f"{len(kept)} partial file(s) kept in {directory}; "
                "free some space and run the same command again to resume"
            )
    if lost is not None:
        view.tell(f"regisseur download: cannot write the paths of the files to stdout: {lost}")
        code = code or 1
    return code
