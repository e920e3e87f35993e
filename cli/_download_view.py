"""What ``regisseur download`` shows while it runs: plain lines, or rich bars.

Plain lines: one when a download starts, a progress line at most every
``PROGRESS_EVERY`` seconds per download, one when it is done. Failures are
not shown here: the command prints one ``FAILED`` line each at the end.

Threads: ``update()`` runs on the event bus's thread, ``say()`` and
``close()`` on the command's thread; output is serialised. Once a write
fails (the reader of a pipe went away, the terminal was closed), the view
writes nothing more and the run goes on: what it shows is never what the
downloads depend on.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING, TextIO

from regisseur.actors.clock import monotonic
from regisseur.actors.log import redact_text
from regisseur.cli._printable import printable
from regisseur.messages import DownloadProgressed, DownloadState, DownloadStateChanged

if TYPE_CHECKING:
    from regisseur.messages import DownloadRecord

__all__ = ["PROGRESS_EVERY", "LineView", "make_view", "size_text", "speed_text"]

#: Least seconds between two plain progress lines of one download.
PROGRESS_EVERY = 2.0


def size_text(value: int | None) -> str:
    """``512 KiB``, ``3.0 MiB``, ``1.2 GiB``; ``?`` while unknown."""
    if value is None:
        return "?"
    amount = float(value)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit != "MiB" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def speed_text(value: float) -> str:
    """``2.1 MiB/s``, ``200 KiB/s``, ``0.9 B/s`` (the units of :func:`size_text`;
    a trickle below 10 B/s keeps a decimal, never shown as ``0 B/s``)."""
    if value < 10:
        return f"{value:.1f} B/s"
    return f"{size_text(round(value))}/s"


def progress_text(record: DownloadRecord) -> str:
    """``45% of 3.0 MiB, 2.1 MiB/s, 2s left`` (what is known of it)."""
    parts = [f"{size_text(record.transferred)} of {size_text(record.size)}"]
    if record.size:
        parts[0] = f"{record.progress:.0f}% of {size_text(record.size)}"
    if record.speed > 0:
        parts.append(speed_text(record.speed))
    if record.time_remaining is not None:
        parts.append(f"{record.time_remaining:.0f}s left")
    return ", ".join(parts)


class LineView:
    """Plain lines on ``out``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._gone = False  # a write failed: the stream has no reader any more
        self._resumed: set[str] = set()  # their start is said as "resuming URL"
        self._started: set[str] = set()  # their "downloading URL" line was said

    def say(self, text: str) -> None:
        """One line of its own (control characters shown as ``\\xNN``)."""
        self.tell(text)

    def tell(self, text: str) -> None:
        """Like :meth:`say`, also with ``-q`` (a result, such as a FAILED line).

        Nothing is raised when the stream cannot be written (a closed pipe
        or terminal): the line is dropped, and so are the later ones.
        """
        with self._lock:
            if self._gone:
                return
            try:
                self.out.write(printable(text) + "\n")
                self.out.flush()
            except (OSError, ValueError):  # no reader, or closed
                self._gone = True

    def resumes(self, download_id: str) -> None:
        """The download's start will be said as ``resuming URL``: no ``downloading`` line.

        Told before the download is run again (its start may come at once).
        """
        with self._lock:
            self._resumed.add(download_id)

    def update(self, event: DownloadStateChanged | DownloadProgressed) -> None:
        """A download's state changed or it made progress."""
        record = event.record
        if isinstance(event, DownloadProgressed):
            now = monotonic()
            if now - self._last.setdefault(record.id, now) >= PROGRESS_EVERY:
                self._last[record.id] = now
                self.say(f"  {record.filename}: {progress_text(record)}")
            return
        if record.state is DownloadState.IN_PROGRESS:
            self._last[record.id] = monotonic()
            self._say_started(record.id, redact_text(record.target_id))
        elif record.state is DownloadState.SUCCEEDED:
            url = redact_text(record.target_id)
            self.say(f"done {url} -> {record.file_path} ({size_text(record.size)})")

    def before_retry(self, download_id: str, url: str) -> None:
        """A retry of the download is about to be said (on its worker's thread):
        its ``downloading`` line first, once, while its start may still be on
        its way to the view (through the keeper and the event bus)."""
        self._say_started(download_id, url)

    def _say_started(self, download_id: str, url: str) -> None:
        with self._lock:
            if download_id in self._resumed or download_id in self._started:
                return
            self._started.add(download_id)
        self.say(f"downloading {url}")

    def close(self) -> None:
        """No more updates (idempotent)."""


def make_view(out: TextIO, *, plain: bool) -> LineView:
    """Rich progress bars on a terminal when rich is installed, else plain lines."""
    tty = hasattr(out, "isatty") and out.isatty()
    if plain or not tty or importlib.util.find_spec("rich") is None:
        return LineView(out)
    try:
        from regisseur.cli._download_bars import BarsView  # the only import of rich
    except ImportError:
        return LineView(out)
    return BarsView(out)
