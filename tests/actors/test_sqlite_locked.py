"""sqlite_locked: whether another process's lock keeps readers out right now.

The second process is real (locks are per process): it takes the lock,
prints ``locked`` and holds it until its stdin closes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from regisseur.actors.database import claim_private_sqlite, sqlite_locked
from tests.downloads.helpers import holding_process

pytestmark = pytest.mark.timeout(60)

# Every reader is kept out: a process stopped while it checkpointed does the same.
_EXCLUSIVE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA locking_mode=EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("COMMIT")  # the exclusive lock stays (locking_mode)
print("locked", flush=True)
sys.stdin.read()
"""

# Only the write lock (WAL mode): readers go on.
_WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO t VALUES (2)")
print("locked", flush=True)
sys.stdin.read()
"""


def _database(tmp_path: Path) -> Path:
    """A records file in WAL mode, private, as the command line makes it."""
    import sqlite3

    path = claim_private_sqlite(tmp_path / "records.db")
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x INTEGER)")
    connection.close()
    return path


@pytest.mark.parametrize("option", ["", "?nofollow=1"])
def test_a_process_keeping_readers_out_is_seen_at_once(tmp_path: Path, option: str) -> None:
    database = _database(tmp_path)
    url = f"sqlite:///{database}{option}"
    assert sqlite_locked(url) is None
    with holding_process(_EXCLUSIVE, database):
        started = time.monotonic()
        assert sqlite_locked(url) == "database is locked"
        assert time.monotonic() - started < 2.0, "asked without SQLite's busy timeout"
    assert sqlite_locked(url) is None, "free again once the other process let go"


def test_a_writer_does_not_keep_readers_out(tmp_path: Path) -> None:
    database = _database(tmp_path)
    with holding_process(_WRITER, database):
        assert sqlite_locked(f"sqlite:///{database}?nofollow=1") is None


def test_what_is_no_lock_is_left_to_the_start(tmp_path: Path) -> None:
    database = _database(tmp_path)
    assert sqlite_locked(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists(), "the look creates nothing"
    assert sqlite_locked("sqlite://") is None
    assert sqlite_locked("postgresql+psycopg://u@127.0.0.1:9/x") is None
    assert sqlite_locked("not a url") is None
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    assert sqlite_locked(f"sqlite:///{tmp_path / 'text.db'}") is None
    wal = Path(f"{database}-wal")
    if wal.exists():
        wal.unlink()
    os.symlink(tmp_path / "elsewhere", wal)  # refused by the checks, not a lock
    assert sqlite_locked(f"sqlite:///{database}?nofollow=1") is None
    assert not (tmp_path / "elsewhere").exists(), "nothing went through the link"
