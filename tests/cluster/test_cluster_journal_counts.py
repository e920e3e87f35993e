"""The journal's reads ``status`` uses, on PostgreSQL (the same queries as on SQLite)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, insert

from regisseur.actors.journal import count_events, ensure_table, events_table, read_events

pytestmark = pytest.mark.timeout(60)


def test_routine_events_are_counted_and_left_out_on_postgresql(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.begin() as connection:
            assert count_events(connection) == (0, 0)  # no table yet
            ensure_table(connection)
            rows = [("ChildStarted", None), ("ChildFailed", "OSError: boom")]
            rows += [("ChildStopped", ""), ("ChildStopped", "stop timed out")]
            connection.execute(
                insert(events_table),
                [
                    {"time": 1.0, "system": "s", "event": event, "name": "a", "error": error}
                    for event, error in rows
                ],
            )
        with engine.connect() as connection:
            assert count_events(connection) == (4, 2)
            others = read_events(connection, limit=20, routine=False)
            assert [(e["event"], e["error"]) for e in others] == [
                ("ChildFailed", "OSError: boom"),
                ("ChildStopped", "stop timed out"),
            ]
            assert len(read_events(connection, limit=20)) == 4
    finally:
        engine.dispose()
