"""The files SQLite keeps beside a database (``-wal``, ``-shm``, ``-journal``),
opened again by name long after the system checked them at its start.

A database in a directory others may write to (``?nofollow=1``, as the CLI
opens its records in ``-o DIR``): whoever writes there can put a file of
their own, or a link, under a companion's name while the system runs
(where the directory has no sticky bit, in place of ours). SQLite opens the
``-wal`` again for each new connection, looks for a hot ``-journal`` at
each connection's first read, and the ``-shm`` in each new process. The
windows are forced here: the pool is emptied (the next use opens a new
connection), and a ``do_connect`` hook added after the system's own runs
just before SQLite opens the files (after any check made at that moment).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from regisseur.actors.database import Database, DatabaseError

pytestmark = pytest.mark.timeout(30)

SECRET = "https://alice:s3cr3t-pw@example.org/file.bin"
COMPANIONS = ("-wal", "-shm", "-journal")
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
OTHER_USER = 65534


def _opened(path: Path, options: str = "") -> Database:
    """The records database as the CLI opens it, with one row."""
    database = Database(f"sqlite:///{path}?nofollow=1{options}")
    database.open()
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (v TEXT)"))
        connection.execute(text("INSERT INTO t VALUES ('ours')"))
    return database


def _rows(path: Path) -> list[str]:
    """What the database holds, read without touching it or its companions."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as reader:
        return [row[0] for row in reader.execute("SELECT v FROM t ORDER BY rowid")]


def _write_secret(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": SECRET})


def _crafted(ours: Path, which: str) -> bytes:
    """A ``-wal`` or hot ``-journal`` SQLite would take as ``ours``'s, holding a row 'planted'.

    Made the way anyone who knows the format can: on a copy of the file.
    """
    copy = ours.with_name(f"copy-{which.strip('-')}.db")
    with contextlib.closing(sqlite3.connect(ours)) as source:
        with contextlib.closing(sqlite3.connect(copy)) as target:
            source.backup(target)
    planted = copy.with_name(copy.name + which)
    connection = sqlite3.connect(copy, isolation_level=None)
    try:
        if which == "-wal":
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute("INSERT INTO t VALUES ('planted')")
            return planted.read_bytes()
        # A journal holds the pages as they were before a transaction: the
        # copy with 'planted' in it, caught while a change is under way.
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("INSERT INTO t VALUES ('planted')")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        connection.execute("DELETE FROM t")
        crafted = planted.read_bytes()
        connection.execute("ROLLBACK")
        return crafted
    finally:
        connection.close()
        for leftover in copy.parent.glob(f"{copy.name}*"):
            leftover.unlink()


def _plant(name: Path, content: bytes = b"", *, foreign: bool = True) -> Any:
    """Put a file (another user's, mode 0666, when root) under ``name``; return
    it opened for reading, as its owner would keep it."""
    if name.exists():  # ours: a directory without the sticky bit lets anyone remove it
        name.unlink()
    name.write_bytes(content)
    name.chmod(0o666)
    if foreign and os.geteuid() == 0:
        os.chown(name, OTHER_USER, OTHER_USER)
    return name.open("rb")


def _after_the_check(database: Database, plant: Any) -> None:
    """Run ``plant()`` just before SQLite opens the next connection's files."""
    database.engine.dispose()  # the next use opens a new connection

    done: list[bool] = []

    def hook(*_args: Any) -> None:
        if not done:
            done.append(True)
            plant()

    event.listen(database.engine, "do_connect", hook)


# -- put there while the system runs: refused at the next connection ----------------


@pytest.mark.parametrize("which", COMPANIONS)
def test_a_companion_link_put_there_while_the_system_runs_is_refused(
    tmp_path: Path, which: str
) -> None:
    """Before: the -journal link was not even looked at, and a -wal or -shm
    link failed as SQLite's 'unable to open database file' (a SQLite that
    follows links wrote the records at the link's target)."""
    ours = tmp_path / "ours.db"
    target = tmp_path / "elsewhere" / "target"
    target.parent.mkdir()
    database = _opened(ours)
    try:
        database.engine.dispose()
        name = Path(f"{ours}{which}")
        with contextlib.suppress(FileNotFoundError):
            name.unlink()
        name.symlink_to(target)
        with pytest.raises(DatabaseError, match=rf"ours.db{which}' is a symbolic link"):
            _write_secret(database)
    finally:
        database.close()
    assert not target.exists()
    assert _rows(ours) == ["ours"]


@ROOT_ONLY
@pytest.mark.parametrize("which", COMPANIONS)
def test_a_companion_of_another_user_put_there_while_the_system_runs_is_refused(
    tmp_path: Path, which: str
) -> None:
    """Before: SQLite used it as it found it: the records (the password)
    went into a -wal its owner reads, or through a -shm its owner maps."""
    ours = tmp_path / "ours.db"
    database = _opened(ours)
    try:
        database.engine.dispose()
        with _plant(Path(f"{ours}{which}")) as held:
            with pytest.raises(DatabaseError, match=rf"ours.db{which}' belongs to another user"):
                _write_secret(database)
            assert b"s3cr3t" not in held.read()
    finally:
        database.close()
    assert _rows(ours) == ["ours"]


# -- slipped in between the check and SQLite's own open ----------------------------


@ROOT_ONLY
@pytest.mark.parametrize("which", ["-wal", "-shm"])
def test_a_companion_swapped_in_after_the_check_is_refused_before_use(
    tmp_path: Path, which: str
) -> None:
    """Before: the new connection wrote the records into the other user's
    -wal (SQLite, running as root, even made the file root's: only its
    identity tells it from ours), and its frames were read as ours."""
    ours = tmp_path / "ours.db"
    database = _opened(ours)
    crafted = _crafted(ours, "-wal") if which == "-wal" else b""
    held: list[Any] = []
    try:
        _after_the_check(database, lambda: held.append(_plant(Path(f"{ours}{which}"), crafted)))
        with pytest.raises(DatabaseError, match=rf"ours.db{which}"):
            _write_secret(database)
        assert held[0].read() == crafted
    finally:
        for file in held:
            file.close()
        database.close()
    assert _rows(ours) == ["ours"]


def test_a_hot_journal_slipped_in_after_the_check_is_never_rolled_into_the_records(
    tmp_path: Path,
) -> None:
    """Before: the next connection rolled the planted journal back into the
    database ('planted' appeared, the records were rewritten)."""
    ours = tmp_path / "ours.db"
    database = _opened(ours, "&timeout=0.2")
    crafted = _crafted(ours, "-journal")
    try:
        _after_the_check(database, lambda: _plant(Path(f"{ours}-journal"), crafted).close())
        with pytest.raises(DatabaseError, match=r"ours.db-journal"):
            _write_secret(database)
    finally:
        database.close()
    assert _rows(ours) == ["ours"]


# -- left there between two runs ------------------------------------------------------


@ROOT_ONLY
@pytest.mark.parametrize("which", ["-wal", "-journal"])
def test_a_wal_or_journal_planted_between_runs_is_refused_not_rolled_in(
    tmp_path: Path, which: str
) -> None:
    """Before: the next start recovered the planted -wal (or rolled the
    journal back) into the records."""
    ours = tmp_path / "ours.db"
    _opened(ours).close()
    _plant(Path(f"{ours}{which}"), _crafted(ours, which)).close()
    before = ours.read_bytes()
    with pytest.raises(DatabaseError, match=rf"ours.db{which}' belongs to another user"):
        _opened(ours)
    assert ours.read_bytes() == before


# -- a new file: never switched to WAL in the directory -------------------------------


@pytest.mark.parametrize("how", ["system", "claim", "empty"])
def test_a_new_file_is_in_wal_mode_and_its_wal_held_before_sqlite_first_opens_it(
    tmp_path: Path, how: str
) -> None:
    """Before: the new file was empty; its first connection switched it to
    WAL in the directory, SQLite making a -journal there and then opening
    a -wal by a name no one held: a -wal put there at that moment (as the
    -journal appeared) was taken, and as root made root's, past any check.
    Now the first time SQLite opens the file, it is in WAL mode and its
    -wal and -shm are files of ours already."""
    from regisseur.actors.database import claim_private_sqlite

    ours = tmp_path / "ours.db"
    if how == "claim":  # as the CLI does before its system opens the file
        claim_private_sqlite(ours)
    elif how == "empty":  # made empty by an older version, say
        ours.touch(mode=0o600)
    database = Database(f"sqlite:///{ours}?nofollow=1")
    seen: list[tuple[bytes, list[str]]] = []
    original = sqlite3.connect

    def first_open(*args: Any, **kwargs: Any) -> Any:
        if not seen and str(ours) in str(args[0]):  # not the template's, made elsewhere
            held = [p.name for p in sorted(tmp_path.iterdir()) if p.stat().st_mode & 0o077 == 0]
            seen.append((ours.read_bytes()[18:20], held))
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", first_open)
        database.open()
    database.close()
    assert seen == [(b"\x02\x02", ["ours.db", "ours.db-shm", "ours.db-wal"])]
