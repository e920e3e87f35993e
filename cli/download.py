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
unusable ``-o`` or a system that cannot start, 130 on Ctrl-C.

Threads: the command runs on the caller's thread and waits for the
download events (delivered on the event bus's thread). The runtime is
imported when a download runs, not for ``--help`` or bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import re
import socket
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from regisseur.cli._download_view import LineView, make_view
from regisseur.cli._interrupts import no_interrupts
from regisseur.cli._records_db import DB_NAME, database_url, records_file
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
    from collections.abc import Callable, Iterable

    from regisseur.actors.system import ActorSystem

__all__ = ["DB_NAME", "add_arguments", "run_download"]

_SOURCE = "http"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_DATABASE_MODULES = frozenset({"sqlalchemy", "sqlite3", "psycopg", "psycopg2"})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
_OWN_HEADERS = ("range", "if-range")  # HttpSource refuses them too (not imported to parse)
_POLL = 0.2  # seconds between two looks at a download another run holds


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _bytes(text: str) -> int:
    """``100``, ``512K``, ``1.5M``, ``2G``, ``10MiB`` (powers of 1024, as curl reads them)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500K, 10M, 2G)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _sha256(text: str) -> str:
    if not _SHA256.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not 64 hex digits: {text!r}")
    return text.strip().lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``download`` command's options."""
    parser.add_argument("urls", nargs="*", metavar="URL", help="http or https URLs")
    parser.add_argument("-o", "--output", default=".", metavar="DIR", help="directory (default: .)")
    parser.add_argument(
        "-j", "--jobs", type=_count(1), default=4, metavar="N", help="parallel downloads (4)"
    )
    parser.add_argument(
        "--retries", type=_count(0), default=3, metavar="N", help="retries per download (3)"
    )
    parser.add_argument(
        "--sha256", type=_sha256, default=None, metavar="HEX", help="expected SHA-256 (one URL)"
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL|FILE",
        help=f"records database: a URL or a SQLite file (default: DIR/{DB_NAME})",
    )
    parser.add_argument("--plain", action="store_true", help="plain lines, no progress bars")
    # Bounds against hostile or broken servers (HttpSource max_bytes, max_time,
    # speed_limit, speed_time).
    parser.add_argument(
        "--max-size",
        type=_bytes,
        default=None,
        metavar="SIZE",
        help="fail a download larger than SIZE (e.g. 500K, 10M, 2G), with or without "
        "Content-Length",
    )
    parser.add_argument(
        "--max-time",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="fail a download that takes longer than this, retries included",
    )
    parser.add_argument(
        "--speed-limit",
        type=_bytes,
        default=None,
        metavar="BYTES",
        help="fail (and retry) a download slower than BYTES per second for --speed-time",
    )
    parser.add_argument(
        "--speed-time",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="the period of --speed-limit (30; alone it means --speed-limit 1)",
    )
    _add_io_arguments(parser)


# -- what a run reads, prints and sends -------------------------------------------


def _add_io_arguments(parser: argparse.ArgumentParser) -> None:
    """``-i``, ``-q``, ``--header``, ``--user-agent``."""
    parser.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        help="read URLs from FILE, one a line ('-': stdin; blank lines and # comments skipped)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress or per-file lines (failures and the files' paths still print)",
    )
    parser.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header (repeatable; never printed or logged)",
    )
    parser.add_argument(
        "--user-agent",
        type=_user_agent,
        default=None,
        metavar="TEXT",
        help="User-Agent (default: regisseur/VERSION)",
    )


def _user_agent(text: str) -> str:
    """A ``--user-agent``: one line, not blank (as ``HttpSource`` takes it)."""
    if not text.strip() or any(char in text for char in "\r\n\0"):
        msg = f"must be one line of text, not blank: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def _header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair; the text is not echoed (often a credential)."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name:
        msg = "expected 'Name: value' (a header name, a colon, the value)"
        raise argparse.ArgumentTypeError(msg)
    if not _HEADER_NAME.fullmatch(name):
        msg = f"{name!r} is not a valid HTTP header name"
        raise argparse.ArgumentTypeError(msg)
    if name.lower() in _OWN_HEADERS:
        msg = f"{name!r} is set by regisseur itself (to resume a download)"
        raise argparse.ArgumentTypeError(msg)
    value = value.strip()
    if any(char in value for char in "\r\n\0"):
        msg = f"the value of header {name!r} has a line break"
        raise argparse.ArgumentTypeError(msg)
    return name, value


def _headers(args: argparse.Namespace) -> dict[str, str]:
    """``--header`` pairs as a mapping; ``ValueError`` for a name given twice."""
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in args.headers:
        if name.lower() in seen:
            msg = f"--header {name} is given twice"
            raise ValueError(msg)
        seen.add(name.lower())
        headers[name] = value
    if args.user_agent is not None and "user-agent" in seen:
        msg = "--user-agent and --header 'User-Agent: ...' both set the User-Agent: give one"
        raise ValueError(msg)
    return headers


def _url(text: str) -> str:
    """``text`` as the URL to fetch: trimmed, a literal space sent as ``%20``.

    curl and wget accept ``http://host/my file.pdf`` the same way; any other
    whitespace or control character is refused by the source, naming it.
    """
    return text.strip().replace(" ", "%20")


def _read_list(name: str) -> list[str]:
    """The URLs in ``-i`` file ``name`` (``-``: stdin); ``ValueError`` if unreadable."""
    try:
        if name == "-":
            text = sys.stdin.buffer.read().decode("utf-8-sig")
        else:
            text = Path(name).expanduser().read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"-i {name}: not UTF-8 text (byte {exc.start})"
        raise ValueError(msg) from None
    except OSError as exc:
        msg = f"cannot read -i {name}: {_reason(exc)}"
        raise ValueError(msg) from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _urls(args: argparse.Namespace) -> list[str]:
    """Every URL to fetch, once each, in order; ``ValueError`` if there are none."""
    given = list(args.urls)
    if args.input_file is not None:
        listed = _read_list(args.input_file)
        if not listed and not given:
            msg = f"no URLs in -i {args.input_file} (one a line; # starts a comment)"
            raise ValueError(msg)
        given += listed
    if not given:
        msg = "no URLs: give them as arguments or in a file with -i FILE"
        raise ValueError(msg)
    return list(dict.fromkeys(_url(u) for u in given))


def _reason(exc: OSError) -> str:
    """``permission denied``, ``read-only file system``: the OS's words, in lower case."""
    return exc.strerror.lower() if exc.strerror else str(exc)


def _not_a_directory(path: Path) -> bool:
    """True if ``path`` exists and is not a directory (False if it cannot be looked at)."""
    try:
        return not stat.S_ISDIR(path.stat().st_mode)
    except OSError:  # missing, or in a directory this user may not search
        return False


def _prepare(directory: Path) -> str | None:
    """Create ``directory`` and make sure files can be made in it; why not, else None."""
    if _not_a_directory(directory):
        return f"-o {directory} is a file, not a directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a dangling symlink or a special file
        return f"-o {directory} exists and is not a directory"
    except NotADirectoryError:
        blocker = next((p for p in directory.parents if _not_a_directory(p)), None)
        where = f"{blocker} is a file, not a directory" if blocker else "not a directory"
        return f"cannot create {directory}: {where}"
    except OSError as exc:
        return f"cannot create {directory}: {_reason(exc)}"
    reason = _write_check(directory)
    return None if reason is None else f"cannot write to {directory}: {reason}"


def _write_check(directory: Path) -> str | None:
    """Why no file can be made in ``directory`` (``permission denied``), or None."""
    probe = directory / f".regisseur-write-check-{os.getpid()}-{os.urandom(4).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(probe, flags, 0o600))
    except OSError as exc:
        return _reason(exc)
    with contextlib.suppress(FileNotFoundError):
        probe.unlink()
    return None


def _prepare_records(path: Path) -> str | None:
    """Make sure the records' SQLite file ``path`` can be written; why not, else None.

    SQLite makes files beside it (``-wal``, ``-journal``) and the run its
    ``-owners`` locks, so its directory must take new files too.
    """
    where = path.parent
    if not where.is_dir():
        return f"cannot use the records database {path}: no directory {where}"
    reason = _write_check(where)
    if reason is not None:
        return f"cannot write to {where} (for the records database {path.name}): {reason}"
    owners = path.with_name(f"{path.name}-owners")  # the runs' lock files
    if owners.is_symlink():
        return f"refusing to use {owners}: it is a symbolic link (remove it)"
    try:
        os.close(os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0)))
    except FileNotFoundError:
        return None  # made by the run
    except OSError as exc:
        return f"cannot write to the records database {path}: {_reason(exc)}"
    return None


def _inside(path: Path, directory: Path) -> bool:
    """True if ``path`` (absolute, directories resolved) lies in ``directory`` or below."""
    top = directory.resolve()
    return path.parent == top or top in path.parent.parents


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
    database = any(type(e).__module__.split(".")[0] in _DATABASE_MODULES for e in chain)
    cause = chain[-1]
    original = getattr(cause, "orig", None)  # SQLAlchemy's wrapper: the driver's error
    if isinstance(original, BaseException):
        cause = original
    if isinstance(cause, OSError) and cause.strerror:
        return _reason(cause) + (f": {cause.filename}" if cause.filename else ""), database
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
            self._view.update(event)
            with self._cond:
                self.seen.add(event.record.id)
                if event.record.terminal:
                    self.ended[event.record.id] = event.record
                    self._cond.notify_all()
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

    def touched(self, download_id: str) -> bool:
        """True if the download changed state or made progress in this run."""
        with self._cond:
            return download_id in self.seen

    def wait_for(self, ids: Iterable[str]) -> dict[str, DownloadRecord]:
        """Block until every download in ``ids`` has ended; their final records, in order."""
        wanted = list(ids)
        with self._cond:
            while not self.ended.keys() >= set(wanted):
                if self.broken is not None:
                    raise RuntimeError(self.broken)
                self._cond.wait()
            return {i: self.ended[i] for i in wanted}


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
        return f"cannot read {path}: {_reason(exc)}"
    return None


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


def _plan(
    system: ActorSystem,
    urls: list[str],
    sha256: str | None,
    tracker: _Tracker,
    view: LineView,
) -> tuple[list[str], dict[str, str]]:
    """Submit what is needed; return the ids to wait for (resumed ones first)
    and, apart, the wanted downloads another run holds (id -> its owner)."""
    from regisseur.actors.downloads.names import display_name_from_url
    from regisseur.actors.downloads.owners import describe_owner

    newest: dict[str, DownloadRecord] = {}
    wanted: dict[str, None] = {}
    stored_records = system.downloads.list(source=_SOURCE)  # oldest first
    others = _others(system, stored_records)
    for stored in stored_records:
        newest[stored.target_id] = stored
        if stored.id in others:
            continue  # another live run's download: never resumed here
        if not stored.terminal or tracker.touched(stored.id):  # resumed by the keeper
            wanted[stored.id] = None
            view.say(f"resuming {redact_text(stored.target_id)}")
    elsewhere: dict[str, str] = {}
    for url in urls:
        record = newest.get(url)
        if record is not None and record.id in wanted:
            continue
        if record is not None and record.id in others:
            owner = others[record.id]
            view.say(f"waiting for {redact_text(url)}: {describe_owner(owner)} is downloading it")
            elsewhere[record.id] = owner
            continue
        if record is not None and record.state is DownloadState.SUCCEEDED and record.file_path:
            why = _changed(record, sha256)
            if why is None:
                view.say(f"already downloaded {redact_text(url)} -> {record.file_path}")
                wanted[record.id] = None
                tracker.done_before(record)
                continue
            view.say(f"downloading {redact_text(url)} again: {why}")
        name = display_name_from_url(url)
        extra = {"sha256": sha256} if sha256 else None
        wanted[system.downloads.submit(_SOURCE, url, name, extra=extra)] = None
    return list(wanted), elsewhere


def _wait_elsewhere(
    system: ActorSystem, elsewhere: dict[str, str], tracker: _Tracker
) -> dict[str, DownloadRecord]:
    """Wait for the downloads other runs hold (polling their records); their ends.

    One whose owner ends without finishing it comes back as an Errored
    copy saying so (the next run in the directory resumes it).
    """
    from regisseur.actors.downloads.owners import describe_owner, lock_directory, owner_alive

    database = system.database
    locks = lock_directory(database.sqlalchemy_url) if database is not None else None
    ended: dict[str, DownloadRecord] = {}
    pending = dict(elsewhere)
    while pending:
        for download_id, owner in list(pending.items()):
            record = system.downloads.status(download_id)
            if record is None:
                del pending[download_id]
                continue
            if record.terminal:
                ended[download_id] = record
                del pending[download_id]
            elif not owner_alive(locks, owner):
                record = system.downloads.status(download_id) or record
                if not record.terminal:
                    why = (
                        f"{describe_owner(owner)} ended without finishing it; "
                        "run the command again to resume it"
                    )
                    record = record.evolve(state=DownloadState.ERRORED, error=why)
                ended[download_id] = record
                del pending[download_id]
        if pending and tracker.pause(_POLL):
            raise RuntimeError(tracker.broken)
    return ended


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


def _bounds(args: argparse.Namespace) -> dict[str, Any]:
    """HttpSource's limits from the options (curl's: --speed-time alone means 1 byte/s)."""
    speed_limit = args.speed_limit
    if speed_limit is None and args.speed_time is not None:
        speed_limit = 1
    return {
        "max_bytes": args.max_size,
        "max_time": args.max_time,
        "speed_limit": speed_limit,
        "speed_time": 30.0 if args.speed_time is None else args.speed_time,
    }


def run_download(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Download ``args.urls`` (and ``-i``'s); return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        urls = _urls(args)
        headers = _headers(args)
    except ValueError as exc:
        err.write(f"regisseur download: {exc}\n")
        return 2
    if args.sha256 and len(urls) > 1:
        err.write("regisseur download: --sha256 needs exactly one URL\n")
        return 2
    directory = Path(args.output).expanduser()
    problem = _prepare(directory)
    if problem is not None:
        err.write(f"regisseur download: {problem}\n")
        return 2
    # Imported here: --help and bad arguments do not load the runtime.
    from regisseur.actors.database import DatabaseError, claim_private_sqlite
    from regisseur.actors.downloads.http import HttpSource
    from regisseur.actors.system import ActorSystem
    from regisseur.supervision.errors import StartupError

    try:
        db_file = records_file(args.db) if args.db else directory.resolve() / DB_NAME
        if db_file is not None and _inside(db_file, directory):
            # Private, and never through a link planted in DIR (whoever can
            # write to DIR could point it at another application's database).
            claim_private_sqlite(db_file)
        problem = _prepare_records(db_file) if db_file is not None else None
        if problem is not None:
            err.write(f"regisseur download: {problem}\n")
            return 2
        db_url = database_url(args.db) if args.db else f"sqlite:///{db_file}"
        # As many workers as this run's URLs need, up to -j: each is a
        # thread with its own HTTP session to start and stop. Downloads an
        # earlier run left unfinished may add to them (see below).
        workers = min(args.jobs, max(1, len(urls)))
        source = HttpSource(
            _SOURCE,
            directory=directory,
            concurrency=workers,
            retries=args.retries,
            headers=headers,
            user_agent=args.user_agent,
            **_bounds(args),
        )
        system = ActorSystem(
            name="regisseur-download",
            database_url=db_url,
            download_sources=[source],
        )
    except (OSError, TypeError, ValueError, DatabaseError) as exc:
        err.write(f"regisseur download: {redact_text(str(exc))}\n")
        return 2
    view = _Quiet(err) if args.quiet else make_view(err, plain=args.plain)
    tracker = _Tracker(view)
    code = 0
    final: dict[str, DownloadRecord] = {}
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
        with planning(locks, lambda: view.say(waiting)):
            system.start()
            wanted, elsewhere = _plan(system, urls, args.sha256, tracker, view)
            if min(args.jobs, len(wanted)) > workers:  # resumed ones too: up to -j
                system.downloads.configure(_SOURCE, concurrency=min(args.jobs, len(wanted)))
            if wanted:
                system.downloads.status(next(iter(wanted)))  # an ask: answered once stored
        over = getattr(args, "startup_over", None)  # the console script's collector
        if over is not None:
            over()
        final = tracker.wait_for(wanted)
        final.update(_wait_elsewhere(system, elsewhere, tracker))
    except KeyboardInterrupt:
        code = 130
    except StartupError as exc:
        code = 2
        view.close()
        text, of_database = _plain_error(exc)
        if of_database or exc.child == "database":  # also: its driver is not installed
            shown = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:") else db_url
            problem = redact_text(f"cannot use the records database {shown}: {text}")
            err.write(f"regisseur download: {problem}\n")
        else:
            err.write(f"regisseur download: cannot start: {exc.child}: {text}\n")
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        code = 1
        view.close()
        text = _plain_error(exc)[0] if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        err.write(f"regisseur download: {redact_text(text)}\n")
    finally:
        with no_interrupts():
            view.close()
            system.stop()
    if code == 130:
        parts = len(list(directory.glob("*.part")))
        err.write(
            f"interrupted: {parts} partial file(s) kept in {directory}; "
            "run the same command again to resume\n"
        )
        return code
    failures = [(r, _failure(r, args.sha256, tracker.before)) for r in final.values()]
    for record, why in failures:
        if why is not None:
            err.write(f"FAILED {redact_text(record.target_id)}: {redact_text(why)}\n")
    for record, why in failures:
        if why is None and record.file_path:
            out.write(f"{record.file_path}\n")
    out.flush()
    if final:
        failed = sum(1 for _, why in failures if why is not None)
        view.say(f"{len(final) - failed} of {len(final)} download(s) done in {directory}")
        code = code or (1 if failed else 0)
    return code
