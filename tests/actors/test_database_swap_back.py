"""A ``-wal`` swapped in after the check and swapped back before the check after.

In a directory without the sticky bit, whoever can write there can rename
the system's ``-wal`` aside, put theirs under its name just as a new
connection opens it (inotify tells them when), and put the system's back
once SQLite has opened theirs. The names then look as checked, and the
descriptor SQLite holds on their file is listed under their file's new
name, so the name checks see nothing. While the log holds no frame
(a new database, before its first commit) SQLite reads nothing from that
file, and the connection wrote its commits into it. Now the connection
must hold a new descriptor on the checked ``-wal``: refused before use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

import regisseur.actors.database as database_module
from regisseur.actors.database import Database, DatabaseError

pytestmark = pytest.mark.timeout(30)

SECRET = "https://alice:s3cr3t-pw@example.org/file.bin"


def test_a_wal_swapped_in_and_back_around_sqlite_s_open_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # no sticky bit
    ours = shared / "ours.db"
    database = Database(f"sqlite:///{ours}?nofollow=1")
    database.open()
    wal, aside, theirs = Path(f"{ours}-wal"), shared / "aside", shared / "theirs"
    theirs.write_bytes(b"")
    steps: list[str] = []

    def swap_in(*_args: Any) -> None:  # after the system's check, before SQLite's open
        if not steps:
            steps.append("in")
            os.rename(wal, aside)
            os.rename(theirs, wal)

    real = database_module._check_opened

    def opened_then_swap_back(*args: Any) -> None:  # SQLite has opened theirs
        real(*args)
        if steps == ["in"]:
            steps.append("back")
            os.rename(wal, theirs)
            os.rename(aside, wal)

    monkeypatch.setattr(database_module, "_check_opened", opened_then_swap_back)
    database.engine.dispose()  # the next use opens a new connection
    event.listen(database.engine, "do_connect", swap_in)
    try:
        with pytest.raises(DatabaseError):
            with database.engine.begin() as connection:
                connection.execute(text("CREATE TABLE t (v TEXT)"))
                connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": SECRET})
    finally:
        database.close()
        assert steps == ["in", "back"]
        assert b"s3cr3t-pw" not in theirs.read_bytes()
