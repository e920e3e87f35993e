"""``regisseur download``'s progress bars (needs the optional ``rich`` package).

A bar per running download (bytes, speed, time remaining), at most
``MAX_BARS`` of them, under a summary line (done, failed, running,
waiting); lines from ``say()`` are printed above. Imported only by
:func:`regisseur.cli._download_view.make_view`, on a terminal with rich installed.

The screen is redrawn on a fixed frame rate (``FRAMES_PER_SECOND``, by
rich's refresh thread), never per event: ``update()`` only keeps the
newest record of each download, and each frame applies what changed since
the last one. A frame's cost is bounded by ``MAX_BARS``, not by the
number of downloads, so a batch of many small files is not slowed down by
its own progress view.

Threads: ``update()`` runs on the event bus's thread, the frames on rich's
refresh thread (started with the process's signals blocked, as the
run's system's threads are, so that Ctrl-C is the main thread's to take),
``say()`` and ``close()`` on the command's thread. A
failure while drawing ends the refresh thread (rich's behaviour); the
downloads go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from regisseur.actors.signals import signals_blocked
from regisseur.cli._download_view import LineView, speed_text
from regisseur.cli._printable import printable
from regisseur.messages import DownloadState

if TYPE_CHECKING:
    from rich.console import RenderableType

    from regisseur.messages import DownloadProgressed, DownloadRecord, DownloadStateChanged

__all__ = ["FRAMES_PER_SECOND", "MAX_BARS", "BarsView"]

#: Redraws per second, whatever the number of events.
FRAMES_PER_SECOND = 8
#: Most bars on screen (the first running downloads); the rest are counted.
MAX_BARS = 10
_NAME_WIDTH = 28


class BarsView(LineView):
    """Rich progress bars, redrawn on a fixed frame rate until ``close()``."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.console = Console(file=out)
        # The bars' model and table maker; never started (it would redraw
        # on every add_task): the Live below draws the frames.
        self.bars = Progress(
            TextColumn(f"{{task.description:<{_NAME_WIDTH}}}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            # The download's own speed, in the units of the sizes beside it
            # (rich's TransferSpeedColumn says kB/s beside MiB).
            TextColumn("[red]{task.fields[speed]}"),
            TimeRemainingColumn(),
            console=self.console,
            auto_refresh=False,
        )
        self._pending: dict[str, DownloadRecord] = {}  # newest record per id, under _lock
        self._tasks: dict[str, TaskID] = {}  # running downloads' bars (frame thread)
        self._states: dict[str, DownloadState] = {}  # every download seen (frame thread)
        self._counts = dict.fromkeys(DownloadState, 0)
        self._closed = False
        self.live = Live(
            console=self.console,
            get_renderable=self._frame,
            refresh_per_second=FRAMES_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with signals_blocked():  # its frame thread leaves Ctrl-C to the main thread
            self.live.start()

    def say(self, text: str) -> None:
        self.tell(text)

    def tell(self, text: str) -> None:
        with self._lock:
            if self._gone:
                return
        try:
            self.console.print(printable(text), markup=False, highlight=False)
        except (OSError, ValueError):  # the terminal was closed: show nothing more
            with self._lock:
                self._gone = True

    def before_retry(self, download_id: str, url: str) -> None:
        """Nothing: the download's bar shows once its start arrives."""

    def update(self, event: DownloadStateChanged | DownloadProgressed) -> None:
        """Keep the newest record of the download (cheap: no drawing here)."""
        record = event.record
        with self._lock:
            self._pending[record.id] = record

    def _frame(self) -> RenderableType:
        """Apply the records that came since the last frame; return the screen.

        Runs under rich's Live lock (refresh thread, or a ``say``/``close``).
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        for record in pending.values():
            self._apply(record)
        running = self._counts[DownloadState.IN_PROGRESS]
        for shown, task in enumerate(self._tasks.values()):
            self.bars.update(task, visible=shown < MAX_BARS)
        summary = (
            f"{self._counts[DownloadState.SUCCEEDED]} done, "
            f"{self._counts[DownloadState.ERRORED]} failed, "
            f"{running} running, {self._counts[DownloadState.INITIALIZING]} waiting"
        )
        if running > MAX_BARS:
            summary += f" ({running - MAX_BARS} running not shown)"
        cancelled = self._counts[DownloadState.CANCELLED]
        if cancelled:
            summary += f", {cancelled} cancelled"
        return Group(self.bars.make_tasks_table(self.bars.tasks), Text(summary, style="dim"))

    def _apply(self, record: DownloadRecord) -> None:
        before = self._states.get(record.id)
        if before is not record.state:
            if before is not None:
                self._counts[before] -= 1
            self._counts[record.state] += 1
            self._states[record.id] = record.state
        task = self._tasks.get(record.id)
        if record.state is not DownloadState.IN_PROGRESS:
            if task is not None:
                self.bars.remove_task(task)
                del self._tasks[record.id]
            return
        if task is None:
            task = self.bars.add_task(
                printable(record.filename)[:_NAME_WIDTH], total=None, speed="?"
            )
            self._tasks[record.id] = task
        speed = speed_text(record.speed) if record.speed > 0 else "?"
        self.bars.update(task, completed=record.transferred, total=record.size or None, speed=speed)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.live.stop()  # draws the last frame
            except (OSError, ValueError):  # the terminal was closed
                self._gone = True
