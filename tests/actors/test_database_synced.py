"""``sync_every_commit``: a connection whose commits reach the disk, and a
pool that gives the next user the system's setting back.

SQLite reports the setting as a number: 1 is ``NORMAL`` (the system's WAL
default: a commit survives a crash of the process, not a power loss), 2 is
``FULL`` (each commit flushes the ``-wal``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from regisseur.actors.database import Database, sync_every_commit

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NORMAL, FULL = 1, 2


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'app.db'}")
    db.open()
    try:
        yield db
    finally:
        db.close()


def setting(connection: object) -> int:
    return int(connection.execute(text("PRAGMA synchronous")).scalar())  # type: ignore[attr-defined]


def test_commits_are_synced_while_the_connection_is_out_and_the_pool_gets_normal_back(
    database: Database,
) -> None:
    with database.engine.connect() as connection:
        assert setting(connection) == NORMAL
        connection.rollback()
        assert sync_every_commit(connection) is True
        assert sync_every_commit(connection) is False  # already set: nothing run
        assert setting(connection) == FULL
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
        connection.commit()
        pooled = connection.connection.dbapi_connection
    with database.engine.connect() as again:
        assert again.connection.dbapi_connection is pooled  # the same connection, reused
        assert setting(again) == NORMAL


def test_inside_a_transaction_sqlite_refuses_and_nothing_changes(database: Database) -> None:
    with database.engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
        connection.commit()
        connection.execute(text("INSERT INTO t VALUES (1)"))  # a write transaction is open
        with pytest.raises(OperationalError, match="inside a transaction"):
            sync_every_commit(connection)
        connection.rollback()
        assert setting(connection) == NORMAL
        assert sync_every_commit(connection) is True  # outside one it works


def test_a_connection_the_pool_replaced_is_set_again(database: Database) -> None:
    with database.engine.connect() as connection:
        assert sync_every_commit(connection) is True
        connection.rollback()
        connection.invalidate()  # as after an error the driver called fatal
        assert setting(connection) == NORMAL  # a new connection, the system's setting
        connection.rollback()
        assert sync_every_commit(connection) is True
        assert setting(connection) == FULL


def test_other_databases_are_left_to_their_own_settings() -> None:
    # A PostgreSQL commit is as durable as its server makes it: nothing is run.
    def refuse(statement: str) -> None:
        raise AssertionError(f"ran {statement!r} on PostgreSQL")

    connection = SimpleNamespace(
        dialect=SimpleNamespace(name="postgresql"), info={}, exec_driver_sql=refuse
    )
    assert sync_every_commit(connection) is False  # type: ignore[arg-type]
    assert connection.info == {}
