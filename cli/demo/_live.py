"""The demo's live terminal view (needs the optional ``rich`` package).

Three panes under a title line, redrawn by rich's refresh thread: the
supervision tree (status and restarts of every child, from
``system.health()``, asked on a thread of its own since an actor that is
busy, such as a download worker, answers only after its current message),
a progress bar per download (bytes, speed, time remaining) and the last
events. After
``close()`` notes and the summary are printed below the last frame.

Only :func:`regisseur.cli.demo._show.make_show` imports this module, and only
when rich is installed and the output is a terminal.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
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

from regisseur.actors.clock import monotonic
from regisseur.cli.demo._show import (
    QUIET,
    Show,
    Summary,
    describe,
    download_detail,
    size_text,
    tree_rows,
)
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarting,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    HealthReport,
)

if TYPE_CHECKING:
    from regisseur.actors.system import ActorSystem

__all__ = ["LiveShow"]

_STATUS_STYLE = {
    "running": "green",
    "restarting": "yellow",
    "starting": "yellow",
    "paused": "cyan",
    "failed": "bold red",
    "stopped": "dim",
}
_STATE_STYLE = {
    DownloadState.INITIALIZING: "dim",
    DownloadState.IN_PROGRESS: "blue",
    DownloadState.SUCCEEDED: "green",
    DownloadState.ERRORED: "red",
    DownloadState.CANCELLED: "yellow",
}
_EVENT_STYLE: dict[type, str] = {
    ChildFailed: "red",
    ChildGaveUp: "bold red",
    ChildRestarting: "yellow",
}
_HEALTH_EVERY = 0.25  # seconds between two health() calls of the view
_HEALTH_JOIN = 3.0  # health() answers within about a second per supervisor level
_LOG_LINES = 12


def _styled(text: str, style: str) -> str:
    return f"[{style}]{escape(text)}[/{style}]" if style else escape(text)


class LiveShow(Show):
    """The live view; the summary is printed as tables after it ends."""

    def __init__(self, out: TextIO, system: ActorSystem, title: str) -> None:
        super().__init__(out)
        self.system = system
        self.title = title
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
        self._tasks: dict[str, TaskID] = {}
        self._log: deque[str] = deque(maxlen=_LOG_LINES)
        self._tree: HealthReport | None = None  # replaced whole, read without a lock
        self._started = monotonic()
        self._closed = False
        self._closing = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_health, name="regisseur:demo-health", daemon=True
        )
        self.live = Live(get_renderable=self._render, console=self.console, refresh_per_second=8)
        self._poller.start()
        self.live.start()

    # -- input (bus thread, main thread) ----------------------------------------
    def event(self, elapsed: float, event: object) -> None:
        if isinstance(event, (DownloadStateChanged, DownloadProgressed)):
            self._download(event.record)
        if isinstance(event, QUIET):
            return
        line = describe(event)
        if isinstance(event, DownloadStateChanged):
            style = _STATE_STYLE.get(event.record.state, "")
        else:
            style = _EVENT_STYLE.get(type(event), "")
        self._add(elapsed, _styled(line, style))

    def note(self, elapsed: float, text: str) -> None:
        if self._closed:
            self.console.print(f"[dim]{elapsed:6.2f}s[/dim] {escape(text)}")
            return
        self._add(elapsed, _styled(text, "bold"))

    def _add(self, elapsed: float, markup: str) -> None:
        with self._lock:
            self._log.append(f"[dim]{elapsed:6.2f}s[/dim] {markup}")

    def _download(self, record: DownloadRecord) -> None:
        with self._lock:
            task = self._tasks.get(record.id)
            if task is None:
                task = self.progress.add_task(record.filename, total=None, state="")
                self._tasks[record.id] = task
        state = record.state.value if not record.error else f"{record.state.value}: {record.error}"
        self.progress.update(
            task,
            completed=record.transferred,
            total=record.size or None,
            state=_styled(state[:60], _STATE_STYLE.get(record.state, "")),
        )

    # -- the tree (its own thread: health() waits for busy actors) ----------------
    def _poll_health(self) -> None:
        while not self._closing.is_set():
            try:
                self._tree = self.system.health()
            except Exception as exc:  # noqa: BLE001 - the view keeps its last tree
                self._add(monotonic() - self._started, _styled(f"health(): {exc}", "red"))
            self._closing.wait(_HEALTH_EVERY)

    def _render(self) -> Any:
        tree = Table(expand=True, box=None, header_style="bold")
        tree.add_column("child")
        tree.add_column("status")
        tree.add_column("restarts", justify="right")
        tree.add_column("last error", overflow="fold", ratio=2)
        report = self._tree
        for depth, child in tree_rows(report) if report is not None else ():
            tree.add_row(
                "  " * depth + escape(child.name),
                _styled(child.status, _STATUS_STYLE.get(child.status, "")),
                str(child.restarts),
                escape(child.last_error or ""),
            )
        with self._lock:
            log = "\n".join(self._log)
        title = f"[bold]{escape(self.title)}[/bold]  [dim]{monotonic() - self._started:5.1f}s[/dim]"
        return Group(
            title,
            Panel(tree, title="supervision tree"),
            Panel(self.progress, title="downloads"),
            Panel(log or " ", title="events"),
        )

    # -- the end (main thread) -------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._closing.set()
            self.live.stop()
            self._poller.join(_HEALTH_JOIN)

    def summary(self, summary: Summary) -> None:
        downloads = Table(title=f"downloads ({len(summary.downloads)})", title_justify="left")
        for column in ("state", "name", "size", "file / error"):
            downloads.add_column(column)
        for r in summary.downloads:
            downloads.add_row(
                _styled(r.state.value, _STATE_STYLE.get(r.state, "")),
                escape(r.filename),
                size_text(r.size),
                escape(download_detail(r, sized=False)),
            )
        children = Table(title="supervision tree", title_justify="left")
        for column in ("child", "status", "restarts", "last error"):
            children.add_column(column)
        for depth, child in tree_rows(summary.tree):
            children.add_row(
                "  " * depth + escape(child.name),
                _styled(child.status, _STATUS_STYLE.get(child.status, "")),
                str(child.restarts),
                escape(child.last_error or ""),
            )
        self.console.print(downloads)
        self.console.print(children)
