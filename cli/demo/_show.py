"""How the demo shows what happens: plain lines, JSON lines, or a live view.

Threads: ``event()`` is called on the event bus's thread (and on download
worker threads for ``DownloadRetrying``); ``note()``, ``summary()`` and
``close()`` on the demo's main thread. Every show serialises its output.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from regisseur.messages import (
    DeadLetter,
    DownloadProgressed,
    DownloadRecord,
    DownloadStateChanged,
    HealthReport,
)

if TYPE_CHECKING:
    from regisseur.actors.system import ActorSystem

__all__ = [
    "QUIET",
    "JsonShow",
    "PlainShow",
    "Show",
    "Summary",
    "describe",
    "download_detail",
    "fields_of",
    "make_show",
    "rich_available",
    "size_text",
    "tree_rows",
]


@dataclass(frozen=True)
class Summary:
    """What the demo ends with: this run's downloads (by state) and the tree."""

    downloads: tuple[DownloadRecord, ...]
    tree: HealthReport
    elapsed: float


def rich_available() -> bool:
    """True if the optional ``rich`` package is installed (without importing it)."""
    return importlib.util.find_spec("rich") is not None


def fields_of(event: object) -> dict[str, Any]:
    """An event's fields, by name (records as their flat dicts)."""
    out: dict[str, Any] = {}
    for slot in getattr(type(event), "__slots__", ()):
        if slot.startswith("_"):
            continue
        value = getattr(event, slot)
        if isinstance(value, DownloadRecord):
            value = value.as_dict() | {"source": value.source, "target_id": value.target_id}
        out[slot] = value
    return out


def size_text(value: int | None) -> str:
    """``512 KiB``, ``3.0 MiB``; ``?`` while unknown."""
    if value is None:
        return "?"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} KiB"
    return f"{value / 1024 / 1024:.1f} MiB"


def download_detail(record: DownloadRecord, *, sized: bool = True) -> str:
    """The file, the error, or how far a cancelled download got."""
    if record.error:
        return record.error
    if record.file_path:
        if not sized:
            return record.file_path
        return f"{record.file_path} ({size_text(record.transferred or record.size)})"
    if record.terminal:
        done, size = size_text(record.transferred), size_text(record.size)
        return f"at {record.progress:.0f}% ({done} of {size})"
    return record.target_id


def describe(event: object) -> str:
    """One line for an event: ``ChildRestarting flaky-server delay=1.0``."""
    if isinstance(event, DownloadStateChanged):
        record = event.record
        return f"download {record.filename} {record.state.value}: {download_detail(record)}"
    fields = fields_of(event)
    name = fields.pop("name", None) or fields.pop("recipient", "")
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ()))
    return f"{type(event).__name__} {name} {rest}".rstrip()


def tree_rows(report: HealthReport, depth: int = 0) -> list[tuple[int, HealthReport]]:
    """Every descendant of ``report`` with its depth, depth first."""
    rows = []
    for child in report.children:
        rows.append((depth, child))
        rows.extend(tree_rows(child, depth + 1))
    return rows


#: Not shown as lines: progress (many a second) and dead letters (each
#: failure's message; the ChildFailed line that follows says the same).
QUIET = (DownloadProgressed, DeadLetter)


class Show:
    """Base: does nothing; subclasses print."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def event(self, elapsed: float, event: object) -> None:
        """Show one event (progress too: subclasses choose what to skip)."""

    def note(self, elapsed: float, text: str) -> None:
        """Show what the demo does next."""

    def summary(self, summary: Summary) -> None:
        """Show the final tables."""

    def close(self) -> None:
        """End the show once the system has stopped (a live view ends); notes may follow."""

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


class PlainShow(Show):
    """One line per event (no progress): ``[  2.13s] ChildRestarting flaky-server delay=1.0``."""

    def event(self, elapsed: float, event: object) -> None:
        if not isinstance(event, QUIET):
            self._write(f"[{elapsed:6.2f}s] {describe(event)}")

    def note(self, elapsed: float, text: str) -> None:
        self._write(f"[{elapsed:6.2f}s] --- {text}")

    def summary(self, summary: Summary) -> None:
        self._write("")
        self._write(f"summary: downloads ({len(summary.downloads)})")
        state = None
        for r in summary.downloads:
            if r.state is not state:
                state = r.state
                count = sum(1 for d in summary.downloads if d.state is state)
                self._write(f"  {state.value} ({count})")
            detail = download_detail(r, sized=False)
            self._write(f"    {r.filename:<14} {size_text(r.size):>9}  {detail}")
        self._write("summary: supervision tree")
        for depth, child in tree_rows(summary.tree):
            name = "  " * depth + child.name
            error = f"  last error: {child.last_error}" if child.last_error else ""
            self._write(f"  {name:<26} {child.status:<10} restarts={child.restarts}{error}")


class JsonShow(Show):
    """One JSON object per line: ``{"type": "ChildRestarting", "time": 2.13, "fields": {...}}``."""

    def _json(self, kind: str, elapsed: float, fields: dict[str, Any]) -> None:
        line = {"type": kind, "time": round(elapsed, 3), "fields": fields}
        self._write(json.dumps(line, default=str))

    def event(self, elapsed: float, event: object) -> None:
        self._json(type(event).__name__, elapsed, fields_of(event))

    def note(self, elapsed: float, text: str) -> None:
        self._json("note", elapsed, {"text": text})

    def summary(self, summary: Summary) -> None:
        downloads = [r.as_dict() | {"source": r.source} for r in summary.downloads]
        children = [
            {"name": c.name, "status": c.status, "restarts": c.restarts, "error": c.last_error}
            for _, c in tree_rows(summary.tree)
        ]
        self._json("summary", summary.elapsed, {"downloads": downloads, "children": children})


def make_show(mode: str, out: TextIO, system: ActorSystem, title: str) -> Show:
    """``"plain"``, ``"json"`` or ``"live"``; live falls back to plain without rich."""
    if mode == "json":
        return JsonShow(out)
    if mode == "live":
        try:
            from regisseur.cli.demo._live import LiveShow  # the only import of rich
        except ImportError:
            return PlainShow(out)
        return LiveShow(out, system, title)
    return PlainShow(out)
