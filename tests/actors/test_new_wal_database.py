"""A new records file, made an empty database in WAL mode before SQLite opens it.

It is made without any other file: not in a temporary directory (``TMPDIR``
may be one others can write to, where a folder of ours can be renamed away
and replaced by theirs between its creation and SQLite's open: their bytes
would become the records), and a file that cannot take it (a full disk)
says which file, and is left empty to be started again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text

from regisseur.actors.database import Database, DatabaseError, claim_private_sqlite
from tests.test_cli_download import DB_NAME, run

pytestmark = pytest.mark.timeout(60)

# The CLI in a process whose files may not grow past 1,000 bytes (as on a
# disk with that much room left): the new database's page is 4,096 bytes.
_SMALL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
from regisseur.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _sqlite_made(folder: Path) -> bytes:
    """What SQLite itself writes for a new, empty database switched to WAL."""
    made = folder / "by-sqlite.db"
    with contextlib.closing(sqlite3.connect(made)) as connection:
        connection.execute("PRAGMA journal_mode=WAL").fetchall()
    return made.read_bytes()


@pytest.mark.parametrize("how", ["system", "claim"])
def test_a_new_database_is_made_without_a_file_in_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Before: SQLite made the empty WAL database in a folder of TMPDIR, then
    its bytes were copied; in a TMPDIR others can write to (no sticky bit)
    the folder could be swapped for theirs before SQLite opened it."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    os.utime(shared, ns=(0, 0))  # any entry made and removed there changes this
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.setenv("TMPDIR", str(shared))
    ours = tmp_path / "records" / "ours.db"
    ours.parent.mkdir()
    if how == "claim":  # as the CLI does before its system opens the file
        claim_private_sqlite(ours)
    database = Database(f"sqlite:///{ours}?nofollow=1")
    database.open()
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (v TEXT)"))
            connection.execute(text("INSERT INTO t VALUES ('kept')"))
            mode = connection.execute(text("PRAGMA journal_mode")).scalar()
    finally:
        database.close()
    assert os.stat(shared).st_mtime_ns == 0, sorted(os.listdir(shared))
    assert mode == "wal"
    with contextlib.closing(sqlite3.connect(f"file:{ours}?mode=ro", uri=True)) as reader:
        assert reader.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert reader.execute("SELECT v FROM t").fetchall() == [("kept",)]


def test_the_new_database_is_the_page_sqlite_writes(tmp_path: Path) -> None:
    """The bytes written are SQLite's own for an empty WAL database."""
    ours = tmp_path / "ours.db"
    claim_private_sqlite(ours)
    assert ours.read_bytes() == _sqlite_made(tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE")
def test_a_full_disk_at_the_records_creation_names_the_file(tmp_path: Path) -> None:
    """Before: ``regisseur download: [Errno 28] No space left on device`` on a
    full disk (an OSError of a write no one named), or SQLite's "disk I/O
    error" of its template. Now the file and the reason; the file is left
    empty (not part of a header) and the next run starts it."""
    out_dir = tmp_path / "out"
    url = "http://127.0.0.1:9/never-fetched.bin"
    result = run("download", url, "-o", str(out_dir), "-q", script=_SMALL_DISK)
    records = out_dir / DB_NAME
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"regisseur download: cannot write to the records database {records}: file too large"
    ]
    assert records.stat().st_size == 0  # no half header: not taken for a damaged database
    database = Database(f"sqlite:///{records}?nofollow=1")
    database.open()
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        database.close()


def test_a_full_disk_at_a_new_database_is_a_database_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's own creation (``Database.open``) too: a ``DatabaseError``
    naming the file, not an ``OSError`` from ``open()``."""
    ours = tmp_path / "ours.db"
    real = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(ours):
            if offset == 0:
                return real(fd, data[:1000], offset)  # what room was left
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    database = Database(f"sqlite:///{ours}?nofollow=1")
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(DatabaseError) as raised:
        database.open()
    assert str(raised.value) == (
        f"cannot write to the database {str(ours)!r}: no space left on device"
    )
    assert ours.stat().st_size == 0
