"""cli._sqlite_locks: another process's SQLite locks, asked of the OS (and
cli._records_wait.records_locked, what a run waits for before it starts).

The holders are real second processes (POSIX locks are per process): each
takes its lock, prints ``locked`` and holds it until its stdin closes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from regisseur.cli._records_wait import records_locked
from regisseur.cli._sqlite_locks import readers_kept_out, writer_active
from tests.downloads.helpers import holding_process

pytestmark = pytest.mark.timeout(60)

_HOLDERS = {
    "writer": """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO t VALUES (2)")
print("locked", flush=True)
sys.stdin.read()
""",
    "reader": """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM t").fetchall()
print("locked", flush=True)
sys.stdin.read()
""",
    "exclusive": """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA locking_mode=EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("COMMIT")
print("locked", flush=True)
sys.stdin.read()
""",
}


def _wal_database(tmp_path: Path) -> Path:
    path = tmp_path / "records.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
    return path


@pytest.mark.parametrize(
    ("holder", "writing", "kept_out"),
    [("writer", True, False), ("reader", False, False), ("exclusive", False, True)],
)
def test_what_another_process_holds_is_seen(
    tmp_path: Path, holder: str, writing: bool, kept_out: bool
) -> None:
    database = _wal_database(tmp_path)
    with holding_process(_HOLDERS[holder], database):
        assert writer_active(str(database)) is writing
        assert readers_kept_out(str(database)) is kept_out
    assert not writer_active(str(database)) and not readers_kept_out(str(database))


def test_nothing_is_held_on_a_file_that_is_not_there(tmp_path: Path) -> None:
    assert not writer_active(str(tmp_path / "missing.db"))
    assert not readers_kept_out(str(tmp_path / "missing.db"))


def test_what_is_no_lock_is_left_to_the_start(tmp_path: Path) -> None:
    """Not a file, not a database, a link or a FIFO planted under a
    companion's name: no lock (the start reports those in its own words),
    nothing written through the link, no wait on the FIFO."""
    assert records_locked(None) is None
    assert records_locked(tmp_path / "missing.db") is None
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    assert records_locked(tmp_path / "text.db") is None
    database = _wal_database(tmp_path)
    Path(f"{database}-shm").symlink_to(tmp_path / "elsewhere")
    assert records_locked(database) is None
    assert not (tmp_path / "elsewhere").exists(), "nothing went through the link"
    Path(f"{database}-shm").unlink()
    os.mkfifo(f"{database}-shm")
    assert records_locked(database) is None


@pytest.mark.parametrize("holder", ["writer", "exclusive"])
def test_a_run_s_records_are_locked_while_another_process_holds_them(
    tmp_path: Path, holder: str
) -> None:
    database = _wal_database(tmp_path)
    with holding_process(_HOLDERS[holder], database):
        assert records_locked(database) == "database is locked"
    assert records_locked(database) is None, "free again once the other process let go"
