"""How the demo shows what happens: plain lines, JSON lines, or a live view.

Threads: ``event()`` is called on the event bus's thread, ``note()`` and
``summary()`` on the demo's main thread; every show is safe for that.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, TextIO

from messages import (
    DeadLetter,
    DownloadProgressed,
    DownloadRecord,
    DownloadStateChanged,
    HealthReport,
)

if TYPE_CHECKING:
    from actors.system import ActorSystem

__all__ = ["JsonShow", "PlainShow", "Show", "make_show", "rich_available"]


def rich_available() -> bool:
    """True if the optional ``rich`` package can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _fields(event: object) -> dict[str, Any]:
    return {
        slot: getattr(event, slot)
        for slot in getattr(type(event), "__slots__", ())
        if not slot.startswith("_")
    }


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} KiB"
    return f"{value / 1024 / 1024:.1f} MiB"


def _children(report: HealthReport, depth: int = 0) -> list[tuple[int, HealthReport]]:
    rows = []
    for child in report.children:
        rows.append((depth, child))
        rows.extend(_children(child, depth + 1))
    return rows


class Show:
    """Base: collects download records for the summary; subclasses print."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()
        self.records: dict[str, DownloadRecord] = {}

    def event(self, elapsed: float, event: object) -> None:
        if isinstance(event, (DownloadStateChanged, DownloadProgressed)):
            with self._lock:
                self.records[event.record.id] = event.record
        if isinstance(event, (DeadLetter, DownloadProgressed)):
            return
        self.line(elapsed, event)

    def line(self, elapsed: float, event: object) -> None:
        """Show one event (not progress)."""

    def note(self, elapsed: float, text: str) -> None:
        """Show what the demo does next."""

    def summary(self, system: ActorSystem) -> None:
        """Show the final tables."""

    def close(self) -> None:
        """End the show (stop a live view)."""

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


class PlainShow(Show):
    """One line per event: ``[  2.13s] ChildRestarting flaky-server delay=0.5``."""

    def line(self, elapsed: float, event: object) -> None:
        if isinstance(event, DownloadStateChanged):
            r = event.record
            detail = r.error if r.error else (r.file_path or r.target_id)
            text = f"Download {r.filename} {r.state.value}: {detail}"
        else:
            fields = _fields(event)
            name = fields.pop("name", "")
            rest = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ()))
            text = f"{type(event).__name__} {name} {rest}".rstrip()
        self._write(f"[{elapsed:6.2f}s] {text}")

    def note(self, elapsed: float, text: str) -> None:
        self._write(f"[{elapsed:6.2f}s] --- {text}")

    def summary(self, system: ActorSystem) -> None:
        self._write("")
        self._write("summary: downloads")
        for r in sorted(self.records.values(), key=lambda r: r.created_at):
            detail = r.error or r.file_path or ""
            self._write(f"  {r.filename:<14} {r.state.value:<22} {_size(r.size):>9}  {detail}")
        self._write("summary: supervision tree")
        for depth, child in _children(system.health()):
            self._write(
                f"  {'  ' * depth}{child.name:<{22 - 2 * depth}} {child.status:<10} "
                f"restarts={child.restarts}"
                + (f"  last error: {child.last_error}" if child.last_error else "")
            )


class JsonShow(Show):
    """One JSON object per line: ``{"t": 2.13, "event": "ChildRestarting", ...}``."""

    def _json(self, payload: dict[str, Any]) -> None:
        self._write(json.dumps(payload, default=str, sort_keys=True))

    def line(self, elapsed: float, event: object) -> None:
        payload: dict[str, Any] = {"t": round(elapsed, 3), "event": type(event).__name__}
        if isinstance(event, DownloadStateChanged):
            payload["record"] = event.record.as_dict()
            payload["previous"] = event.previous.value if event.previous else None
        else:
            payload.update(_fields(event))
        self._json(payload)

    def note(self, elapsed: float, text: str) -> None:
        self._json({"t": round(elapsed, 3), "event": "note", "text": text})

    def summary(self, system: ActorSystem) -> None:
        records = sorted(self.records.values(), key=lambda r: r.created_at)
        self._json(
            {
                "event": "summary",
                "downloads": [r.as_dict() for r in records],
                "children": [
                    {"name": c.name, "status": c.status, "restarts": c.restarts}
                    for _, c in _children(system.health())
                ],
            }
        )


def make_show(mode: str, out: TextIO, system: ActorSystem) -> Show:
    """``"plain"``, ``"json"`` or ``"live"`` (needs rich and a terminal)."""
    if mode == "json":
        return JsonShow(out)
    if mode == "live":
        from actors.demo._live import LiveShow

        return LiveShow(out, system)
    return PlainShow(out)
