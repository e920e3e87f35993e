"""``regisseur download``'s progress bars (needs the optional ``rich`` package).

One bar per download (bytes, speed, time remaining); lines from ``say()``
are printed above the bars. Imported only by
:func:`actors._download_view.make_view`, on a terminal with rich installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from regisseur.actors._download_view import LineView
from regisseur.messages import DownloadState

if TYPE_CHECKING:
    from regisseur.messages import DownloadProgressed, DownloadStateChanged

__all__ = ["BarsView"]

_NAME_WIDTH = 28
_STATE = {
    DownloadState.INITIALIZING: "[dim]queued[/dim]",
    DownloadState.IN_PROGRESS: "",
    DownloadState.SUCCEEDED: "[green]done[/green]",
    DownloadState.ERRORED: "[red]failed[/red]",
    DownloadState.CANCELLED: "[yellow]cancelled[/yellow]",
}


class BarsView(LineView):
    """Rich progress bars, redrawn by rich's refresh thread until ``close()``."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.console = Console(file=out)
        self.bars = Progress(
            TextColumn(f"{{task.description:<{_NAME_WIDTH}}}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[state]}"),
            console=self.console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._closed = False
        self.bars.start()

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def update(self, event: DownloadStateChanged | DownloadProgressed) -> None:
        record = event.record
        with self._lock:
            task = self._tasks.get(record.id)
            if task is None:
                name = record.filename[:_NAME_WIDTH]
                task = self.bars.add_task(name, total=None, state="")
                self._tasks[record.id] = task
        self.bars.update(
            task,
            completed=record.transferred,
            total=record.size or None,
            state=_STATE.get(record.state, ""),
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.bars.stop()
