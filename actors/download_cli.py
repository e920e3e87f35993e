"""``regisseur download URL... [-o DIR] [-j N] [--retries N] [--sha256 HEX] [--db URL]``.

A resumable downloader built on the library: one ``HttpSource`` writing to
``DIR`` with ``-j`` downloads at a time, its records in
``DIR/.regisseur-downloads.db`` (or ``--db``).

* Ctrl-C stops the system: every ``.part`` file is kept and the records stay
  InProgress. The next run in the same ``DIR`` resumes them (the keeper does
  that by itself at start, since the source is registered at start) with
  ``Range`` requests; a URL that is already pending is not submitted again,
  and unfinished downloads of earlier runs in ``DIR`` are finished too.
* A URL already downloaded (its file still on disk) is reported and skipped.
* Another run in the same ``DIR`` (same database) at the same time: each
  run does its own downloads; a URL the other run is downloading is not
  fetched again: this run says ``waiting for URL: pid N on host H is
  downloading it`` and waits for that download's end (a failure if that
  run ends without finishing it). The other run's own work is never
  resumed while it lives (see ``downloads._owners``).
* ``--sha256`` (one URL only) is checked by the source, or here, on the
  file, for a download that was resumed or done before.

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
import os
import re
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from regisseur.actors._download_view import LineView, make_view
from regisseur.actors._interrupts import no_interrupts
from regisseur.actors.downloads import store
from regisseur.actors.downloads._owners import (
    describe_owner,
    lock_directory,
    owner_alive,
    planning,
)
from regisseur.actors.downloads.http import HttpSource
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
        """Block until every download in ``ids`` has ended; their final records."""
        wanted = set(ids)
        with self._cond:
            while not wanted <= self.ended.keys():
                if self.broken is not None:
                    raise RuntimeError(self.broken)
                self._cond.wait()
            return {i: self.ended[i] for i in wanted}


def _others(system: ActorSystem, records: list[DownloadRecord]) -> dict[str, str]:
    """Of the unfinished ``records``, those another live process holds: id -> owner."""
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
) -> tuple[set[str], dict[str, str]]:
    """Submit what is needed; return the ids to wait for (resumed ones included)
    and, apart, the wanted downloads another run holds (id -> its owner)."""
    newest: dict[str, DownloadRecord] = {}
    wanted: set[str] = set()
    stored_records = system.downloads.list(source=_SOURCE)  # oldest first
    others = _others(system, stored_records)
    for stored in stored_records:
        newest[stored.target_id] = stored
        if stored.id in others:
            continue  # another live run's download: never resumed here
        if not stored.terminal or tracker.touched(stored.id):  # resumed by the keeper
            wanted.add(stored.id)
            view.say(f"resuming {stored.target_id}")
    elsewhere: dict[str, str] = {}
    for url in urls:
        record = newest.get(url)
        if record is not None and record.id in wanted:
            continue
        if record is not None and record.id in others:
            owner = others[record.id]
            view.say(f"waiting for {url}: {describe_owner(owner)} is downloading it")
            elsewhere[record.id] = owner
            continue
        if (
            record is not None
            and record.state is DownloadState.SUCCEEDED
            and record.file_path
            and Path(record.file_path).is_file()
        ):
            view.say(f"already downloaded {url} -> {record.file_path}")
            wanted.add(record.id)
            tracker.done_before(record)
            continue
        name = url.rstrip("/").rsplit("/", 1)[-1] or url
        extra = {"sha256": sha256} if sha256 else None
        wanted.add(system.downloads.submit(_SOURCE, url, name, extra=extra))
    return wanted, elsewhere


def _wait_elsewhere(
    system: ActorSystem, elsewhere: dict[str, str], tracker: _Tracker
) -> dict[str, DownloadRecord]:
    """Wait for the downloads other runs hold (polling their records); their ends.

    One whose owner ends without finishing it comes back as an Errored
    copy saying so (the next run in the directory resumes it).
    """
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
        source = HttpSource(
            _SOURCE, directory=directory, concurrency=args.jobs, retries=args.retries
        )
        system = ActorSystem(
            name="regisseur-download",
            database_url=args.db or f"sqlite:///{directory.resolve() / DB_NAME}",
            download_sources=[source],
        )
    except (OSError, TypeError, ValueError) as exc:
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
        database = system.database
        locks = lock_directory(database.sqlalchemy_url) if database is not None else None
        # One run at a time plans: a run started at the same moment sees
        # this run's submits (stored before the lock is let go) and waits.
        with planning(locks, lambda: view.say("waiting for another run to queue its downloads")):
            wanted, elsewhere = _plan(system, urls, args.sha256, tracker, view)
            if wanted:
                system.downloads.status(next(iter(wanted)))  # an ask: answered once stored
        final = tracker.wait_for(wanted)
        final.update(_wait_elsewhere(system, elsewhere, tracker))
    except KeyboardInterrupt:
        code = 130
    except StartupError as exc:
        code = 2
        view.close()
        err.write(f"regisseur download: cannot start: {exc}\n")
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        code = 1
        view.close()
        err.write(f"regisseur download: {type(exc).__name__}: {exc}\n")
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
            err.write(f"FAILED {record.target_id}: {why}\n")
    if final:
        failed = sum(1 for _, why in failures if why is not None)
        view.say(f"{len(final) - failed} of {len(final)} download(s) done in {directory}")
        code = code or (1 if failed else 0)
    return code
