"""``regisseur status``: download records and recent supervision events.

Reads the database directly (no system is started), so it works while
another process runs the system, and after it has gone. A SQLite file that
does not exist is an error, never created.

The table shows each download's number in the database (``#``, its order
of submission: distinct across runs), state, size, when it last changed
(local time), URL and file or error; ``--json`` gives every field, the full
id, and every time (the records' and the events') in ISO 8601 UTC. Every
text it returns is redacted (:func:`regisseur.actors.log.redact`):
credentials stay in the database.

Threads: runs on the caller's thread. Failures: :class:`StatusError` with
a one-line reason (a missing file, a bad URL, a database that cannot be
read).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from sqlalchemy import create_engine, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from regisseur.actors.database import DatabaseError, with_default_driver
from regisseur.actors.downloads import store
from regisseur.actors.downloads.owners import lock_directory, owner_running
from regisseur.actors.errors import RegisseurError
from regisseur.actors.journal import count_events, read_events
from regisseur.actors.log import redact, redact_text
from regisseur.cli._error_text import beside_url, missing_driver
from regisseur.cli._printable import printable
from regisseur.cli._private_records import read_private
from regisseur.cli._records_db import shown_database

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import URL, Connection

__all__ = ["StatusError", "collect", "render_json", "render_table"]

T = TypeVar("T")
#: Times before this (2001) were written by versions that stored monotonic
#: seconds: they say nothing about when, so they are shown as unknown.
_EPOCH_FLOOR = 1e9
_UNFINISHED = ("Initializing", "InProgress, Downloading")


class StatusError(RegisseurError, RuntimeError):
    """The database cannot be read (missing file, bad URL, not reachable)."""


def collect(database_url: str, *, events: int = 20, routine: bool = True) -> dict[str, Any]:
    """Records (oldest first) and the last ``events`` journal entries.

    With ``routine`` False, the last ``events`` that are not an actor's plain
    start or stop, and ``events_kept`` and ``routine_events``: how many the
    journal keeps, and how many of those are starts and stops.
    """
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is no number
        shown = redact_text(database_url)
        msg = f"not a database URL: {shown!r} (e.g. sqlite:///regisseur.db)"
        raise StatusError(msg) from exc
    if url.get_backend_name() == "sqlite":
        path = url.database
        if path and Path(path).is_dir():  # `--db DIR`, meant as a download directory
            msg = (
                f"{path} is a directory, not a database file (to read the records "
                f"of a download directory: regisseur status {path})"
            )
            raise StatusError(msg)
        if not path or path == ":memory:" or not Path(path).is_file():
            msg = f"no database file at {path!r}"
            raise StatusError(msg)
        try:
            Path(path).open("rb").close()
        except OSError as exc:  # SQLite would only say "unable to open database file"
            reason = exc.strerror.lower() if exc.strerror else str(exc)
            msg = f"cannot read {path}: {reason}"
            raise StatusError(msg) from exc

    locks = lock_directory(url)

    def running(owner: str | None) -> bool | None:
        return owner_running(locks, owner)

    def read(
        connection: Connection,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], tuple[int, int] | None]:
        downloads: list[dict[str, Any]] = []
        if sa_inspect(connection).has_table(store.downloads_table.name):
            downloads = _downloads(connection, running)
        journal = read_events(connection, limit=events, routine=routine)
        return downloads, journal, None if routine else count_events(connection)

    try:
        if url.get_backend_name() == "sqlite" and "nofollow" in url.query and url.database:
            # Records in a directory others may write to: read as a run opens them.
            downloads, journal, counts = read_private(os.path.abspath(url.database), read)
        else:
            downloads, journal, counts = _read_engine(url, read)
    except DatabaseError as exc:  # a file of the records that may not be used
        raise StatusError(str(exc)) from exc
    except SQLAlchemyError as exc:
        msg = f"cannot read {shown_database(str(url))}: {redact_text(_driver_message(exc))[:300]}"
        raise StatusError(msg) from exc
    # Shown to people and scripts: no URL password or signed-URL signature
    # (in display names, errors, extras), whatever was stored.
    dated = [{**e, "time": _iso(e["time"])} for e in journal]
    data = {"downloads": [redact(d) for d in downloads], "events": redact(dated)}
    if counts is not None:
        data["events_kept"], data["routine_events"] = counts
    return data


def _read_engine(url: URL, read: Callable[[Connection], T]) -> T:
    """``read(connection)`` on the database at ``url``, as SQLAlchemy opens it."""
    try:
        engine = create_engine(with_default_driver(url))
    except (SQLAlchemyError, ImportError) as exc:  # no such dialect, driver not installed
        why = missing_driver(exc) or _driver_message(exc)
        msg = f"cannot read {shown_database(str(url))}: {redact_text(why)}"
        raise StatusError(msg) from exc
    try:
        with engine.connect() as connection:
            return read(connection)
    finally:
        engine.dispose()


def _driver_message(exc: Exception) -> str:
    """The database driver's own first line (``connection failed: ... Connection
    refused``), without SQLAlchemy's class names and documentation link."""
    original = getattr(exc, "orig", None)
    text = str(original if isinstance(original, BaseException) else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _downloads(
    connection: Connection, running: Callable[[str | None], bool | None]
) -> list[dict[str, Any]]:
    """Every record as its JSON form, in submission order.

    ``running``: whether a record's owner (a run, a process) still runs
    (None: cannot tell); asked for the downloads that have not ended, whose
    ``running`` field says it (False: stopped or killed, resumed by the next
    run); an ended one's is False.
    """
    table = store.downloads_table
    out = []
    for row in connection.execute(select(table).order_by(table.c.seq)):
        record = store.record_from_row(row)
        flat = record.as_dict()
        flat["running"] = False if record.terminal else running(row._mapping.get("owner"))
        flat.update(
            seq=row.seq,
            source=record.source,
            target_id=redact_text(record.target_id),
            error=redact_text(record.error) if record.error else record.error,
            created_at=_iso(record.created_at),
            updated_at=_iso(record.updated_at),
        )
        out.append(flat)
    return out


def _iso(seconds: float | None) -> str | None:
    """``2026-12-06T13:05:12+00:00`` (UTC), or None for an unknown time."""
    if seconds is None or seconds < _EPOCH_FLOOR:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _local(iso: str | None) -> str:
    """An ISO 8601 time as this machine's local time, ``?`` if unknown."""
    if not iso:
        return "?"
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


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


def _state(download: dict[str, Any]) -> str:
    """The state; a download that has not ended and whose run is gone says "stopped"."""
    state = str(download["state"])
    if download.get("running") is False and state in _UNFINISHED:
        return f"{state.partition(',')[0]}, stopped"
    return state


def _amount(download: dict[str, Any]) -> str:
    """The size; for a download that has not ended, how far it got too."""
    size = _size(download["size"])
    if download["state"] in _UNFINISHED:
        return f"{download['progress']:.0f}% of {size}"
    return size


def render_table(data: dict[str, Any], out: TextIO) -> None:
    """Plain-text tables: downloads, then events (times in local time).

    Events read without the starts and stops (``collect(routine=False)``)
    come with those counted: every start and stop of each actor is
    journaled (a download run adds a dozen).
    """
    downloads = data["downloads"]
    out.write(f"downloads: {len(downloads)}\n")
    if downloads:
        several = len({d["source"] for d in downloads}) > 1
        rows: list[tuple[object, ...]] = [
            (
                d["seq"],
                *((d["source"],) if several else ()),
                _state(d),
                _amount(d),
                _local(d["updated_at"]),
                d["target_id"],
                beside_url(d["error"], d["target_id"]) if d["error"] else d["file_path"] or "",
            )
            for d in downloads
        ]
        source = ("source",) if several else ()
        header = ("#", *source, "state", "size", "when", "url", "file / error")
        _table(out, header, rows)
    events = data["events"]
    if "events_kept" not in data:
        out.write(f"\nlast supervision events: {len(events)}\n")
    else:
        kept, routine = data["events_kept"], data["routine_events"]
        out.write(
            f"\nsupervision events kept: {kept} ({routine} plain starts and stops, "
            "not listed: --events N lists the last N)\n"
        )
        if kept - routine > len(events):
            out.write(f"the last {len(events)} of the {kept - routine} others:\n")
    if events:
        rows = [
            (
                _local(e["time"]),
                e["event"],
                e["name"] or "",
                e["error"] or json.dumps(e["details"], default=str),
            )
            for e in events
        ]
        _table(out, ("time", "event", "name", "error / details"), rows)


def _table(out: TextIO, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    widths = [
        min(60, max(len(printable(str(v))) for v in col)) for col in zip(header, *rows, strict=True)
    ]
    for row in (header, *rows):
        cells = [_fit(printable(str(v)), w).ljust(w) for v, w in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle (a URL's or path's
    end names the file), the cut marked with an ellipsis."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
