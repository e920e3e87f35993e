"""``regisseur download URL... [-o DIR] [-j N] [--retries N] [--sha256 HEX] [--db URL]``.

A resumable downloader built on the library: one ``HttpSource`` writing to
``DIR``, its records in a SQLite file in ``DIR`` (or ``--db``). Ctrl-C stops
the system, which keeps every ``.part`` file and leaves the records
InProgress; run the same command again and those downloads resume where
they stopped. A URL already downloaded (and still on disk) is not fetched
again.

Exit codes: 0 when every URL is downloaded, 1 when any failed (one
``FAILED <url>: <error>`` line each), 2 for bad arguments, 130 on Ctrl-C.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from actors.downloads.http import HttpSource
from actors.system import ActorSystem
from messages import DownloadProgressed, DownloadRecord, DownloadState, DownloadStateChanged

if TYPE_CHECKING:
    import argparse

__all__ = ["add_arguments", "run_download"]

_SOURCE = "http"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``download`` command's options."""
    parser.add_argument("urls", nargs="+", metavar="URL", help="http or https URLs")
    parser.add_argument("-o", "--output", default=".", help="directory (default: .)")
    parser.add_argument("-j", "--jobs", type=int, default=4, help="parallel downloads (4)")
    parser.add_argument("--retries", type=int, default=3, help="retries per download (3)")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 (one URL only)")
    parser.add_argument("--db", default=None, help="database URL (default: DIR/.regisseur.db)")
    parser.add_argument("--plain", action="store_true", help="plain lines, no progress bars")


class _Progress:
    """Plain progress: one line per state change (and none per chunk)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def update(self, record: DownloadRecord) -> None:
        return

    def state(self, record: DownloadRecord) -> None:
        if record.state is DownloadState.SUCCEEDED:
            self.write(f"done {record.target_id} -> {record.file_path}")
        elif record.state is DownloadState.IN_PROGRESS:
            self.write(f"downloading {record.target_id}")

    def write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def close(self) -> None:
        return


class _Bars(_Progress):
    """Progress bars with rich (bytes, speed, time remaining)."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(file=out)
        self.bars = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.tasks: dict[str, Any] = {}
        self.bars.start()

    def update(self, record: DownloadRecord) -> None:
        with self._lock:
            task = self.tasks.get(record.id)
            if task is None:
                name = record.original_filename or record.target_id.rsplit("/", 1)[-1]
                task = self.bars.add_task(name[:24], total=None)
                self.tasks[record.id] = task
        self.bars.update(task, completed=record.transferred, total=record.size or None)

    def state(self, record: DownloadRecord) -> None:
        self.update(record)

    def write(self, text: str) -> None:
        self.bars.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.bars.stop()


def _progress(plain: bool, out: TextIO) -> _Progress:
    if not plain and hasattr(out, "isatty") and out.isatty():
        try:
            return _Bars(out)
        except ImportError:
            pass
    return _Progress(out)


def _plan(system: ActorSystem, urls: list[str], sha256: str | None) -> tuple[set[str], list[str]]:
    """Which downloads to wait for (resumed ones included) and what is done already."""
    wanted: set[str] = set()
    done: list[str] = []
    known: dict[str, DownloadRecord] = {}
    for stored in system.downloads.list(source=_SOURCE):
        known[stored.target_id] = stored  # the newest record of a URL wins
    for url in urls:
        found = known.get(url)
        record = found
        if record is not None and not record.terminal:
            wanted.add(record.id)  # resumed by the keeper at start
            continue
        if (
            record is not None
            and record.state is DownloadState.SUCCEEDED
            and record.file_path
            and Path(record.file_path).is_file()
        ):
            done.append(f"already downloaded {url} -> {record.file_path}")
            continue
        extra = {"sha256": sha256} if sha256 else None
        name = url.rstrip("/").rsplit("/", 1)[-1] or url
        wanted.add(system.downloads.submit(_SOURCE, url, name, extra=extra))
    return wanted, done


def run_download(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Download ``args.urls``; return the exit code."""
    out = out or sys.stdout
    err = sys.stderr
    if args.sha256 and len(args.urls) > 1:
        err.write("regisseur download: --sha256 needs exactly one URL\n")
        return 2
    directory = Path(args.output).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        source = HttpSource(
            _SOURCE, directory=directory, concurrency=args.jobs, retries=args.retries
        )
    except (OSError, TypeError, ValueError) as exc:
        err.write(f"regisseur download: {exc}\n")
        return 2
    database_url = args.db or f"sqlite:///{directory.resolve() / '.regisseur.db'}"
    system = ActorSystem(name="download", database_url=database_url, download_sources=[source])
    progress = _progress(args.plain, out)
    ended: dict[str, DownloadRecord] = {}
    cond = threading.Condition()

    def watch(event: object) -> None:
        if isinstance(event, DownloadProgressed):
            progress.update(event.record)
        elif isinstance(event, DownloadStateChanged):
            progress.state(event.record)
            if event.record.terminal:
                with cond:
                    ended[event.record.id] = event.record
                    cond.notify_all()

    try:
        system.start()
        system.downloads.subscribe(watch)
        wanted, done = _plan(system, list(dict.fromkeys(args.urls)), args.sha256)
        for line in done:
            progress.write(line)
        for record in system.downloads.list(source=_SOURCE):
            if record.id in wanted and record.terminal:
                ended[record.id] = record  # ended before we subscribed
        with cond:
            while not wanted.issubset(ended):
                cond.wait(0.5)
        failed = [ended[i] for i in wanted if ended[i].state is not DownloadState.SUCCEEDED]
    except KeyboardInterrupt:
        progress.close()
        system.stop()
        progress.write("interrupted: partial files are kept; run the same command to resume")
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        progress.close()
        system.stop()
        err.write(f"regisseur download: {type(exc).__name__}: {exc}\n")
        return 1
    progress.close()
    system.stop()
    for record in failed:
        progress.write(f"FAILED {record.target_id}: {record.error or record.state.value}")
    return 1 if failed else 0
