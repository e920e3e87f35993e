"""The demo's live terminal view (needs the optional ``rich`` package).

Three panes, redrawn a few times a second by rich's refresh thread: the
supervision tree (status and restarts of every child, from
``system.health()``), a progress bar per download (bytes, speed, time
remaining) and the last supervision events.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from actors.demo._show import PlainShow, _children
from messages import DownloadProgressed, DownloadStateChanged

if TYPE_CHECKING:
    from actors.system import ActorSystem

__all__ = ["LiveShow"]

_STATUS_STYLE = {
    "running": "green",
    "restarting": "yellow",
    "paused": "cyan",
    "failed": "red",
    "stopped": "dim",
    "starting": "yellow",
}


class LiveShow(PlainShow):
    """A live view; the summary is printed as plain tables after it ends."""

    def __init__(self, out: TextIO, system: ActorSystem) -> None:
        super().__init__(out)
        self.system = system
        self.console = Console(file=out)
        self.progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[state]}"),
            console=self.console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.log: deque[str] = deque(maxlen=12)
        self.live = Live(get_renderable=self._render, console=self.console, refresh_per_second=6)
        self.live.start()

    def line(self, elapsed: float, event: object) -> None:
        if isinstance(event, DownloadStateChanged):
            self._download(event)
            text = f"{event.record.filename}: {event.record.state.value}"
            if event.record.error:
                text += f" ({event.record.error})"
        else:
            name = getattr(event, "name", "")
            extra = getattr(event, "error", None) or getattr(event, "delay", None)
            text = f"{type(event).__name__} {name}" + (f" {extra}" if extra is not None else "")
        with self._lock:
            self.log.append(f"[dim]{elapsed:6.2f}s[/dim] {text}")

    def event(self, elapsed: float, event: object) -> None:
        if isinstance(event, DownloadProgressed):
            self._download(event)
        super().event(elapsed, event)

    def _download(self, event: DownloadStateChanged | DownloadProgressed) -> None:
        record = event.record
        with self._lock:
            task = self.tasks.get(record.id)
            if task is None:
                task = self.progress.add_task(record.filename, total=None, state="")
                self.tasks[record.id] = task
        total = record.size if record.size else None
        self.progress.update(
            task, completed=record.transferred, total=total, state=record.state.value
        )

    def note(self, elapsed: float, text: str) -> None:
        with self._lock:
            self.log.append(f"[dim]{elapsed:6.2f}s[/dim] [bold]{text}[/bold]")

    def _render(self) -> Any:
        tree = Table(show_header=True, header_style="bold", expand=True, box=None)
        tree.add_column("child")
        tree.add_column("status")
        tree.add_column("restarts", justify="right")
        tree.add_column("last error", overflow="fold")
        try:
            report = self.system.health()
        except Exception:  # noqa: BLE001 - the view must never break the demo
            report = None
        if report is not None:
            for depth, child in _children(report):
                style = _STATUS_STYLE.get(child.status, "")
                tree.add_row(
                    "  " * depth + child.name,
                    f"[{style}]{child.status}[/{style}]" if style else child.status,
                    str(child.restarts),
                    child.last_error or "",
                )
        with self._lock:
            log = "\n".join(self.log)
        return Group(
            Panel(tree, title="supervision tree"),
            Panel(self.progress, title="downloads"),
            Panel(log or " ", title="events"),
        )

    def close(self) -> None:
        self.live.stop()
