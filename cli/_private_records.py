"""``regisseur status`` reading the records of a directory others may write to.

The records' companions (``-wal``, ``-shm``, ``-journal``) are checked as a
run checks them (:mod:`regisseur.actors.sqlite_files`): no link, nothing
but a regular file of the database's owner with one name, the very files
SQLite then opened. And the directory is left as it was: SQLite reads the
database without writing to it and without creating a file beside it.
With no ``-wal`` there (no run holds the database) it reads the file alone
(SQLite's ``immutable=1``: no lock, no journal, no ``-wal``), then checks
that no run started meanwhile, else reads again. With a ``-wal`` and a
``-shm`` there (a run holds it, or one stopped abnormally) it reads them
too, read-only (``mode=ro``: a journal is never rolled back, a ``-wal``
never checkpointed). A ``-wal`` without a ``-shm`` is refused: SQLite would
create one. That is also how a process keeping every reader out looks
(SQLite's exclusive locking mode: a run stopped with Ctrl-Z in its final
checkpoint, another program), and the refusal then says so.

Threads: runs on the caller's thread. Failures: ``DatabaseError`` naming
the file and what is wrong with it; SQLAlchemy's errors as they come.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from regisseur.actors.database import DatabaseError
from regisseur.actors.sqlite_files import check_files, verify_opened
from regisseur.cli._sqlite_locks import readers_kept_out

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from regisseur.actors.sqlite_files import Checked

__all__ = ["read_private"]

T = TypeVar("T")
#: Reads while runs keep starting and ending in the directory, before giving up.
_ATTEMPTS = 3


def read_private(path: str, read: Callable[[Connection], T]) -> T:
    """``read(connection)`` on the SQLite file ``path``, changing nothing in its directory."""
    for _ in range(_ATTEMPTS):
        checked = check_files(path, path, reader=True)
        live = checked.identity("-wal") is not None
        if live and checked.identity("-shm") is None:
            if readers_kept_out(path):
                msg = (
                    f"cannot read {path!r} now: database is locked (another process keeps "
                    "every reader out, such as a run stopped with Ctrl-Z as it ended); "
                    "try again once it lets go"
                )
                raise DatabaseError(msg)
            msg = (
                f"cannot read {path!r} without changing its directory: {path + '-wal'!r} "
                f"is there without {path + '-shm'!r}, which SQLite would create "
                "(a run that did not end normally?); run a download in the directory first"
            )
            raise DatabaseError(msg)
        before = _stamp(path)
        engine = create_engine(
            "sqlite://",
            creator=lambda checked=checked, live=live: _connect(checked, live=live),
            poolclass=NullPool,
        )
        try:
            with engine.connect() as connection:
                result = read(connection)
        finally:
            engine.dispose()
        if live or (_stamp(path) == before and not os.path.lexists(path + "-wal")):
            return result
        # A run started while the file was read alone: read what it holds too.
    msg = f"cannot read {path!r}: runs kept starting and ending while it was read; try again"
    raise DatabaseError(msg)


def _connect(checked: Checked, *, live: bool) -> Any:
    """A read-only connection to ``checked.database``, its files checked once open."""
    options = "mode=ro" if live else "immutable=1"
    uri = f"file:{quote(os.fsencode(checked.database), safe='/')}?{options}"
    connection = sqlite3.connect(uri, uri=True)
    try:
        try:
            # The first read: SQLite opens the -wal and -shm for it.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.Error:
            verify_opened(checked)  # a swapped file is refused as such
            raise
        verify_opened(checked)
    except BaseException:
        connection.close()
        raise
    return connection


def _stamp(path: str) -> tuple[int, int, int, int]:
    """Which file ``path`` is and when it last changed."""
    info = os.lstat(path)
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns
