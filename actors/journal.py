"""The event journal: supervision events kept in the database.

``regisseur status`` (and anyone with the database) can then see what the
supervisors did, also after the process has gone. Only the last ``keep``
events are kept.

Threads: the journal is an internal actor of the system (like the event
bus); it writes on its own thread, in groups: a commit when its mailbox
runs dry, through a Core connection taken from the engine's pool for that
transaction only (no ORM: it is never needed here, nor its import).

Failures: a failed write is logged and dropped (the journal is a record of
what happened, not a part of it); the system carries on. So is one whose
new connection regisseur's checks of a records file refuse (``DatabaseError``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy import inspect as sa_inspect

from regisseur.actors._db_refusals import DATABASE_ERRORS
from regisseur.actors.actor import Actor
from regisseur.actors.clock import wall_time
from regisseur.actors.database import create_tables
from regisseur.actors.errors import describe_error
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    ChildStopTimedOut,
    StartupFailed,
    SupervisorEscalated,
    SystemFailed,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection

    from regisseur.actors.events import Subscription

__all__ = [
    "JOURNALED",
    "JournalActor",
    "count_events",
    "events_table",
    "read_events",
]

#: The event types the journal keeps.
JOURNALED: tuple[type, ...] = (
    ChildStarted,
    ChildFailed,
    ChildRestarting,
    ChildRestarted,
    ChildStopped,
    ChildGaveUp,
    ChildStopTimedOut,
    SupervisorEscalated,
    StartupFailed,
    SystemFailed,
)

metadata = MetaData()

events_table = Table(
    "regisseur_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("system", String(200), nullable=False),
    Column("event", String(60), nullable=False),
    Column("name", String(300)),
    Column("error", Text),
    Column("details", Text, nullable=False, default="{}"),
)

_PRUNE_EVERY = 200


def _row(system: str, event: object) -> dict[str, Any]:
    fields = {
        slot: getattr(event, slot)
        for slot in getattr(type(event), "__slots__", ())
        if slot not in ("name", "error")
    }
    return {
        "time": wall_time(),
        "system": system,
        "event": type(event).__name__,
        "name": getattr(event, "name", None),
        "error": getattr(event, "error", None),
        "details": json.dumps(fields, default=str, sort_keys=True),
    }


def ensure_table(connection: Connection) -> None:
    """Create the journal table if it does not exist."""
    create_tables(connection, events_table)


#: Events of a system going about its day (a download run journals a dozen).
_ROUTINE = ("ChildStarted", "ChildStopped")


#: The largest LIMIT a database takes (a signed 64-bit integer).
_MOST_ROWS = 2**63 - 1


def _routine() -> ColumnElement[bool]:
    """An actor's plain start or stop (no error): what ``routine`` leaves out."""
    column = events_table.c
    return and_(column.event.in_(_ROUTINE), or_(column.error.is_(None), column.error == ""))


def read_events(
    connection: Connection, limit: int = 20, *, routine: bool = True
) -> list[dict[str, Any]]:
    """The last ``limit`` events, oldest first, as plain dicts ([] without a table);
    with ``routine`` False, the last ``limit`` that are not an actor's plain
    start or stop. A ``limit`` past the largest SQL integer means all of them
    (it was an ``OverflowError``: the database cannot take the number)."""
    if not sa_inspect(connection).has_table(events_table.name):
        return []
    limit = min(limit, _MOST_ROWS)
    query = select(events_table).order_by(events_table.c.id.desc()).limit(limit)
    if not routine:
        query = query.where(not_(_routine()))
    rows = [dict(row._mapping) for row in connection.execute(query)]
    for row in rows:
        try:
            row["details"] = json.loads(row["details"] or "{}")
        except ValueError:
            row["details"] = {}
    return list(reversed(rows))


def count_events(connection: Connection) -> tuple[int, int]:
    """How many events the journal keeps, and how many of them are an actor's
    plain start or stop ((0, 0) without a table)."""
    if not sa_inspect(connection).has_table(events_table.name):
        return 0, 0
    routine = func.sum(case((_routine(), 1), else_=0))
    row = connection.execute(select(func.count(), routine).select_from(events_table)).one()
    return int(row[0]), int(row[1] or 0)


class JournalActor(Actor):
    """Writes supervision events to ``regisseur_events``; keeps the last ``keep``."""

    def __init__(self, keep: int = 1000) -> None:
        super().__init__()
        self._keep = keep
        self._pending: list[dict[str, Any]] = []
        self._written = 0
        self._subscription: Subscription | None = None

    def _begin(self) -> AbstractContextManager[Connection]:
        """A transaction on a pooled connection: committed, or rolled back on error."""
        assert self.system.database is not None  # the system starts a journal only with one
        return self.system.database.engine.begin()

    def on_start(self) -> None:
        with self._begin() as connection:
            ensure_table(connection)
        self._subscription = self.system.events.subscribe(self.actor_ref, *JOURNALED)

    def on_stop(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
        self._write()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, JOURNALED):
            self._pending.append(_row(self.system.name, message))
            return None
        return super().on_receive(message)

    def on_mailbox_drained(self) -> None:
        """Write the events of the burst in one transaction."""
        self._write()

    def _write(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            with self._begin() as connection:
                connection.execute(events_table.insert(), rows)
                self._written += len(rows)
                if self._written >= _PRUNE_EVERY:
                    self._written = 0
                    self._prune(connection)
        except DATABASE_ERRORS as exc:
            self.log.error("journal_write_failed", events=len(rows), error=describe_error(exc))

    def _prune(self, connection: Connection) -> None:
        newest = connection.execute(select(func.max(events_table.c.id))).scalar()
        if newest is not None:
            stale = events_table.c.id <= newest - self._keep
            connection.execute(delete(events_table).where(stale))
