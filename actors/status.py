"""``regisseur status``: download records and recent supervision events.

Reads the database directly (no system is started), so it works while
another process runs the system, and after it has gone. A SQLite file that
does not exist is an error, never created. Every text it returns is
redacted (:func:`actors.log.redact`): credentials stay in the database.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import create_engine
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from regisseur.actors.downloads import store
from regisseur.actors.journal import read_events
from regisseur.actors.log import redact, redact_text

if TYPE_CHECKING:
    from regisseur.messages.downloads import DownloadRecord

__all__ = ["StatusError", "collect", "render_json", "render_table"]


class StatusError(RuntimeError):
    """The database cannot be read (missing file, bad URL, not reachable)."""


def collect(database_url: str, *, events: int = 20) -> dict[str, Any]:
    """Records (oldest first) and the last ``events`` journal entries."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        msg = f"not a database URL: {database_url!r} (e.g. sqlite:///regisseur.db)"
        raise StatusError(msg) from exc
    if url.get_backend_name() == "sqlite":
        path = url.database
        if not path or path == ":memory:" or not Path(path).is_file():
            msg = f"no database file at {path!r}"
            raise StatusError(msg)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            records: list[DownloadRecord] = []
            if sa_inspect(connection).has_table(store.downloads_table.name):
                records = store.read_records(connection)
            journal = read_events(connection, limit=events)
    except SQLAlchemyError as exc:
        safe = redact_text(str(url))
        msg = f"cannot read {safe}: {type(exc).__name__}: {redact_text(str(exc))[:300]}"
        raise StatusError(msg) from exc
    finally:
        engine.dispose()
    # Shown to people and scripts: no URL password or signed-URL signature
    # (in display names, errors, extras), whatever was stored.
    downloads = [redact(r.as_dict() | {"source": r.source}) for r in records]
    return {"downloads": downloads, "events": redact(journal)}


def render_json(data: dict[str, Any], out: TextIO) -> None:
    """One JSON document."""
    json.dump(data, out, indent=2, default=str)
    out.write("\n")


def _size(value: object) -> str:
    if not isinstance(value, int):
        return "?"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return "?"  # pragma: no cover


def render_table(data: dict[str, Any], out: TextIO) -> None:
    """Plain-text tables: downloads, then events."""
    downloads = data["downloads"]
    out.write(f"downloads: {len(downloads)}\n")
    if downloads:
        rows: list[tuple[object, ...]] = [
            (
                d["id"][-12:],  # ids of one run share their prefix
                d["source"],
                d["state"],
                f"{d['progress']:.0f}%",
                _size(d["size"]),
                d["filename"],
                d["error"] or d["file_path"] or "",
            )
            for d in downloads
        ]
        header = ("id", "source", "state", "done", "size", "name", "file / error")
        _table(out, header, rows)
    events = data["events"]
    out.write(f"\nlast supervision events: {len(events)}\n")
    if events:
        rows = [
            (
                datetime.fromtimestamp(e["time"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                e["event"],
                e["name"] or "",
                e["error"] or json.dumps(e["details"], default=str),
            )
            for e in events
        ]
        _table(out, ("time (UTC)", "event", "name", "error / details"), rows)


def _table(out: TextIO, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    widths = [min(48, max(len(str(v)) for v in col)) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [str(v)[:w].ljust(w) for v, w in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")
