"""``regisseur download URL... [-o DIR] [-j N] [--retries N] [--sha256 HEX] [--db URL] [...]``.

A resumable downloader built on the library: one ``HttpSource`` writing to
``DIR`` with ``-j`` downloads at a time, its records in
``DIR/.regisseur-downloads.db`` (or ``--db``). That file is created with
mode 0600 (records keep the URLs, passwords included, to resume them), and
a symbolic link in its place is refused.

* Ctrl-C stops the system: every ``.part`` file is kept and the records stay
  InProgress. The next run in the same ``DIR`` resumes them (the keeper does
  that by itself at start, since the source is registered at start) with
  ``Range`` requests; a URL that is already pending is not submitted again,
  and unfinished downloads of earlier runs in ``DIR`` are finished too.
* A URL already downloaded (its file still on disk) is reported and skipped.
* ``--sha256`` (one URL only) is checked by the source, or here, on the
  file, for a download that was resumed or done before.
* ``--max-size``, ``--max-time``, ``--speed-limit``/``--speed-time`` bound
  each download (the ``HttpSource`` options ``max_bytes``, ``max_time``,
  ``speed_limit``, ``speed_time``).
* URLs are shown with their passwords and signed-URL parameters redacted
  (the records keep them, to resume).

Output: progress bars with rich on a terminal, else plain lines; one
``FAILED <url>: <error>`` line per failure on stderr. Exit codes: 0 when
every download succeeded, 1 when any failed, 2 for bad arguments or a
system that cannot start, 130 on Ctrl-C.

Threads: the command runs on the caller's thread and waits for the
download events (delivered on the event bus's thread).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from regisseur.actors._download_view import LineView, make_view
from regisseur.actors._interrupts import no_interrupts
from regisseur.actors.database import DatabaseError, claim_private_sqlite
from regisseur.actors.downloads.http import HttpSource
from regisseur.actors.downloads.names import display_name_from_url
from regisseur.actors.log import redact_text
from regisseur.actors.system import ActorSystem
from regisseur.messages import (
    ChildGaveUp,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    SystemFailed,
)
from regisseur.supervision import StartupError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["DB_NAME", "add_arguments", "run_download"]

#: The records' SQLite file in the output directory (unless ``--db``).
DB_NAME = ".regisseur-downloads.db"
_SOURCE = "http"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


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
    parser.add_argument("urls", nargs="+", metavar="URL", help="http or https URLs")
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
        "--db", default=None, metavar="URL", help=f"database URL (default: DIR/{DB_NAME})"
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


class _Tracker:
    """Download events of this run: which ended, and how (bus thread -> main thread)."""

    def __init__(self, view: LineView) -> None:
        self._cond = threading.Condition()
        self._view = view
        self.seen: set[str] = set()
        self.ended: dict[str, DownloadRecord] = {}
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
        """Count ``record`` (ended in an earlier run) as ended."""
        with self._cond:
            self.ended.setdefault(record.id, record)

    def touched(self, download_id: str) -> bool:
        """True if the download changed state or made progress in this run."""
        with self._cond:
            return download_id in self.seen

    def wait_for(self, ids: Iterable[str]) -> dict[str, DownloadRecord]:
        """Block until every download in ``ids`` has ended; their final records."""
        wanted = set(ids)
        with self._cond:
            while not wanted <= self.ended.keys():
                if self.broken is not None:
                    raise RuntimeError(self.broken)
                self._cond.wait()
            return {i: self.ended[i] for i in wanted}


def _plan(
    system: ActorSystem,
    urls: list[str],
    sha256: str | None,
    tracker: _Tracker,
    view: LineView,
) -> set[str]:
    """Submit what is needed; return the ids to wait for (resumed ones included)."""
    newest: dict[str, DownloadRecord] = {}
    wanted: set[str] = set()
    for stored in system.downloads.list(source=_SOURCE):  # oldest first
        newest[stored.target_id] = stored
        if not stored.terminal or tracker.touched(stored.id):  # resumed by the keeper
            wanted.add(stored.id)
            view.say(f"resuming {redact_text(stored.target_id)}")
    for url in urls:
        record = newest.get(url)
        if record is not None and record.id in wanted:
            continue
        if (
            record is not None
            and record.state is DownloadState.SUCCEEDED
            and record.file_path
            and Path(record.file_path).is_file()
        ):
            view.say(f"already downloaded {redact_text(url)} -> {record.file_path}")
            wanted.add(record.id)
            tracker.done_before(record)
            continue
        name = display_name_from_url(url)
        extra = {"sha256": sha256} if sha256 else None
        wanted.add(system.downloads.submit(_SOURCE, url, name, extra=extra))
    return wanted


def _failure(record: DownloadRecord, sha256: str | None) -> str | None:
    """Why ``record`` did not give the wanted file, or None."""
    if record.state is not DownloadState.SUCCEEDED:
        return record.error or record.state.value
    if sha256 is None or record.extra.get("sha256") == sha256 or not record.file_path:
        return None  # the source checked it (or nothing to check)
    digest = hashlib.sha256()
    try:
        with open(record.file_path, "rb") as file:
            for block in iter(lambda: file.read(1024 * 1024), b""):
                digest.update(block)
    except OSError as exc:
        return f"cannot read {record.file_path!r} to check its sha256: {exc}"
    got = digest.hexdigest()
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
    """Download ``args.urls``; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    urls = list(dict.fromkeys(args.urls))
    if args.sha256 and len(urls) > 1:
        err.write("regisseur download: --sha256 needs exactly one URL\n")
        return 2
    directory = Path(args.output).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        database_url = args.db or f"sqlite:///{claim_private_sqlite(directory.resolve() / DB_NAME)}"
        source = HttpSource(
            _SOURCE,
            directory=directory,
            concurrency=args.jobs,
            retries=args.retries,
            **_bounds(args),
        )
        system = ActorSystem(
            name="regisseur-download",
            database_url=database_url,
            download_sources=[source],
        )
    except (OSError, TypeError, ValueError, DatabaseError) as exc:
        err.write(f"regisseur download: {exc}\n")
        return 2
    view = make_view(out, plain=args.plain)
    tracker = _Tracker(view)
    code = 0
    final: dict[str, DownloadRecord] = {}
    try:
        # Before start: downloads resumed by the keeper report at once.
        system.downloads.subscribe(tracker)
        system.events.subscribe(tracker, SystemFailed, ChildGaveUp)
        system.start()
        final = tracker.wait_for(_plan(system, urls, args.sha256, tracker, view))
    except KeyboardInterrupt:
        code = 130
    except StartupError as exc:
        code = 2
        view.close()
        err.write(f"regisseur download: cannot start: {exc}\n")
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        code = 1
        view.close()
        err.write(f"regisseur download: {type(exc).__name__}: {redact_text(str(exc))}\n")
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
    failures = [(r, _failure(r, args.sha256)) for r in final.values()]
    for record, why in failures:
        if why is not None:
            err.write(f"FAILED {redact_text(record.target_id)}: {redact_text(why)}\n")
    if final:
        failed = sum(1 for _, why in failures if why is not None)
        view.say(f"{len(final) - failed} of {len(final)} download(s) done in {directory}")
        code = code or (1 if failed else 0)
    return code
