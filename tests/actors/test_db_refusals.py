"""Which refusals of a write pass by themselves: real SQLite errors, driver codes."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from regisseur.actors._db_refusals import passes_by_itself

if TYPE_CHECKING:
    from pathlib import Path


def _raised(action: object) -> BaseException:
    try:
        action()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
        return exc
    msg = "nothing was raised"
    raise AssertionError(msg)


def test_another_writer_s_lock_passes(tmp_path: Path) -> None:
    database = tmp_path / "r.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        error = _raised(lambda: other.execute("INSERT INTO t VALUES (1)"))
    finally:
        other.close()
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in str(error)
    assert passes_by_itself(error) is True


def test_a_read_only_database_lasts(tmp_path: Path) -> None:
    database = tmp_path / "r.db"
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE t (x)")
    setup.close()
    reader = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        error = _raised(lambda: reader.execute("INSERT INTO t VALUES (1)"))
    finally:
        reader.close()
    assert "readonly" in str(error)
    assert passes_by_itself(error) is False


def test_a_refusal_through_sqlalchemy_is_judged_by_its_driver_s_error(tmp_path: Path) -> None:
    """What the keeper sees: SQLAlchemy's wrapper around SQLite's refusal."""
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x)"))
            connection.execute(
                text(
                    "CREATE TRIGGER full BEFORE INSERT ON t "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                )
            )
        with engine.begin() as connection:
            error = _raised(lambda: connection.execute(text("INSERT INTO t VALUES (1)")))
    finally:
        engine.dispose()
    assert isinstance(error, DBAPIError)
    assert passes_by_itself(error) is False


def test_a_lost_connection_passes() -> None:
    """SQLAlchemy marks an error of a connection it had to drop."""
    lost = OperationalError("UPDATE ...", {}, Exception("server closed the connection"))
    lost.connection_invalidated = True
    assert passes_by_itself(lost) is True


class _ServerError(Exception):
    """A server driver's error with its SQLSTATE (psycopg's ``pgcode``)."""

    def __init__(self, pgcode: str | None) -> None:
        super().__init__("refused")
        self.pgcode = pgcode


class OperationalErrorLike(Exception):
    """A driver's own ``OperationalError`` without a code: no answer from the server."""


OperationalErrorLike.__name__ = "OperationalError"


@pytest.mark.parametrize(
    ("code", "passes"),
    [
        ("57P01", True),  # admin shutdown: the server restarts
        ("57P03", True),  # cannot connect now: still starting
        ("08006", True),  # connection failure
        ("40001", True),  # serialization failure
        ("53300", True),  # too many connections
        ("53100", False),  # disk full
        ("25006", False),  # read-only transaction
        ("42501", False),  # insufficient privilege
        ("23505", False),  # a unique constraint the write breaks
        ("57P04", False),  # the database was dropped: it does not come back by itself
        ("40002", False),  # a constraint checked at commit: the retry breaks it again
        ("55P03", True),  # lock_timeout: another transaction's lock, released in time
    ],
)
def test_a_server_s_code_says_whether_it_passes(code: str, passes: bool) -> None:
    wrapped = DBAPIError("UPDATE ...", {}, _ServerError(code))
    assert passes_by_itself(wrapped) is passes


def test_a_driver_error_without_a_code_passes_only_for_the_connection() -> None:
    assert passes_by_itself(OperationalErrorLike("connection refused")) is True
    assert passes_by_itself(_ServerError(None)) is False


def test_a_records_file_refused_by_regisseur_s_checks_lasts(tmp_path: Path) -> None:
    """A new connection to a records file whose ``-wal`` became a link is
    refused with regisseur's ``DatabaseError``: as it is from
    ``engine.connect()``, wrapped in a ``StatementError`` by a statement
    that reconnects. Both are caught as database errors, and both last."""
    from regisseur.actors._db_refusals import DATABASE_ERRORS
    from regisseur.actors.database import Database, DatabaseError

    path = tmp_path / "records.db"
    database = Database(f"sqlite:///{path}?nofollow=1")
    database.open()
    try:
        connection = database.engine.connect()
        connection.execute(text("SELECT 1"))
        connection.commit()
        database.engine.pool.dispose()  # no idle connection: the next one is new
        wal = tmp_path / "records.db-wal"
        wal.rename(tmp_path / "aside")
        wal.symlink_to(tmp_path / "elsewhere")
        connection.invalidate()
        wrapped = _raised(lambda: connection.execute(text("SELECT 1")))
        connection.close()
        plain = _raised(database.engine.connect)
        wal.unlink()
        (tmp_path / "aside").rename(wal)
    finally:
        database.close()
    assert isinstance(plain, DatabaseError)
    assert isinstance(getattr(wrapped, "orig", None), DatabaseError)
    for error in (plain, wrapped):
        assert isinstance(error, DATABASE_ERRORS)
        assert "is a symbolic link" in str(error)
        assert passes_by_itself(error) is False
