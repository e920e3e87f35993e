"""``regisseur status DIR`` (the real entry point) reads the records as a run
opens them: no planted companion followed, used or rolled in, nothing created.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli_status import run

pytestmark = pytest.mark.timeout(60)

DB_NAME = ".regisseur-downloads.db"


def _records(directory: Path) -> Path:
    """A directory's records as a run leaves them: WAL mode, closed (no -wal)."""
    directory.mkdir()
    path = directory / DB_NAME
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (v TEXT)")
        connection.execute("INSERT INTO t VALUES ('ours')")
        connection.commit()
    path.chmod(0o600)
    return path


def _rows(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as reader:
        return [row[0] for row in reader.execute("SELECT v FROM t ORDER BY rowid")]


def _hot_journal(path: Path) -> bytes:
    """A journal SQLite would roll back into ``path``, holding a row 'planted'."""
    copy = path.with_name("copy.db")
    with contextlib.closing(sqlite3.connect(path)) as source:
        with contextlib.closing(sqlite3.connect(copy)) as target:
            source.backup(target)
    connection = sqlite3.connect(copy, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("INSERT INTO t VALUES ('planted')")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        connection.execute("DELETE FROM t")
        crafted = Path(f"{copy}-journal").read_bytes()
        connection.execute("ROLLBACK")
    finally:
        connection.close()
        for leftover in copy.parent.glob("copy.db*"):
            leftover.unlink()
    return crafted


def test_status_of_a_directory_creates_and_changes_nothing_there(tmp_path: Path) -> None:
    """Before: status opened the records read-write: SQLite made a -wal and a
    -shm in DIR (and checkpointed and removed them as it closed)."""
    records = _records(tmp_path / "out")
    before = (sorted(os.listdir(records.parent)), records.parent.stat().st_mtime_ns)
    content = records.read_bytes()
    result = run("status", str(records.parent))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (sorted(os.listdir(records.parent)), records.parent.stat().st_mtime_ns) == before
    assert records.read_bytes() == content


def test_status_reads_what_a_live_run_holds_in_its_wal(tmp_path: Path) -> None:
    records = _records(tmp_path / "out")
    with contextlib.closing(sqlite3.connect(records)) as live:  # a run, holding the -wal
        live.execute("PRAGMA wal_autocheckpoint=0")
        live.execute("CREATE TABLE regisseur_journal_probe (v)")  # in the -wal only
        live.commit()
        names = sorted(os.listdir(records.parent))
        result = run("status", str(records.parent), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        assert sorted(os.listdir(records.parent)) == names


def test_status_never_rolls_a_planted_journal_into_the_records(tmp_path: Path) -> None:
    """Before: status rolled the journal back into the records ('planted' in
    them, the file rewritten)."""
    records = _records(tmp_path / "out")
    Path(f"{records}-journal").write_bytes(_hot_journal(records))
    content = records.read_bytes()
    run("status", str(records.parent))
    assert records.read_bytes() == content
    assert _rows(records) == ["ours"]


@pytest.mark.parametrize("which", ["-wal", "-shm", "-journal"])
def test_status_refuses_a_companion_link(tmp_path: Path, which: str) -> None:
    """Before: a -journal link was not looked at; a -wal or -shm link failed
    as 'unable to open database file' (a SQLite that follows links opened the
    target)."""
    records = _records(tmp_path / "out")
    target = tmp_path / "elsewhere"
    Path(f"{records}{which}").symlink_to(target)
    result = run("status", str(records.parent))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{DB_NAME}{which}' is a symbolic link" in result.stderr
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
def test_status_refuses_a_wal_of_another_user(tmp_path: Path) -> None:
    """Before: status recovered the other user's -wal into the records."""
    records = _records(tmp_path / "out")
    planted = Path(f"{records}-wal")
    planted.write_bytes(b"")
    os.chown(planted, 65534, 65534)
    result = run("status", str(records.parent))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "-wal' belongs to another user" in result.stderr


def test_status_db_with_nofollow_reads_as_status_dir_does(tmp_path: Path) -> None:
    """``--db 'sqlite:///DIR/x.db?nofollow=1'`` (as the README advises for a
    download's records in DIR): before, the option was dropped and the file
    opened read-write, a -journal link not looked at; now the records are
    read as ``status DIR`` reads them."""
    records = _records(tmp_path / "out")
    Path(f"{records}-journal").symlink_to(tmp_path / "elsewhere")
    result = run("status", "--db", f"sqlite:///{records}?nofollow=1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{DB_NAME}-journal' is a symbolic link" in result.stderr
    Path(f"{records}-journal").unlink()
    names = sorted(os.listdir(records.parent))
    result = run("status", "--db", f"sqlite:///{records}?nofollow=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(os.listdir(records.parent)) == names


def test_status_says_when_another_process_keeps_every_reader_out(tmp_path: Path) -> None:
    """A process in SQLite's exclusive locking mode (a run stopped with Ctrl-Z
    in its final checkpoint) leaves a -wal without a -shm. Before, status
    blamed "a run that did not end normally" and advised a download there
    (which would wait for the same lock)."""
    records = _records(tmp_path / "out")
    holder = sqlite3.connect(records, isolation_level=None)  # this process, not status's
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("INSERT INTO t VALUES ('held')")  # the -wal, no -shm
        assert Path(f"{records}-wal").exists() and not Path(f"{records}-shm").exists()
        result = run("status", str(records.parent))
    finally:
        holder.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"cannot read '{records}' now: database is locked (another process keeps every "
        "reader out, such as a run stopped with Ctrl-Z as it ended); try again once it lets go"
    ) in result.stderr
    after = run("status", str(records.parent))
    assert after.returncode == 0, after.stdout + after.stderr


def test_a_wal_without_a_shm_and_no_process_is_still_named_as_such(tmp_path: Path) -> None:
    records = _records(tmp_path / "out")
    Path(f"{records}-wal").write_bytes(b"")
    result = run("status", str(records.parent))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is there without" in result.stderr and "database is locked" not in result.stderr
