"""The system's database: one SQLAlchemy engine, sessions per actor thread.

SQLite (the embedded default) is opened in WAL mode with a busy timeout so
that several actor threads can read and write; other databases are used as
SQLAlchemy configures them. ``open()`` checks the connection at once so a bad
URL or an unreachable server fails the system's start, not the first query.

A SQLite file the system creates is private to its user (mode 0600; SQLite
gives its ``-wal`` and ``-shm`` files the same mode): download records hold
URLs, and a URL may carry a password or a signature.
:func:`claim_private_sqlite` goes further for a database kept in a directory
others may write to (the CLI's output directory): it refuses a symbolic
or hard link in place of the file or its companions, and any of them that
belongs to another user. A database opened with the URL option
``nofollow=1`` gets the same checks at every new connection, before and
after SQLite opens the companions again (:mod:`regisseur.actors.sqlite_files`),
and a read-only connection kept open while the system runs, so that SQLite
never deletes and re-creates them, nor rolls a journal put there back into
the database.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

from regisseur.actors.errors import RegisseurError
from regisseur.actors.log import redact_text
from regisseur.actors.sqlite_files import (
    SQLITE_COMPANIONS,
    Checked,
    check_files,
    refusal,
    start_in_wal_mode,
    verify_opened,
)

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.orm import Session

__all__ = [
    "PSYCOPG",
    "Database",
    "DatabaseError",
    "claim_private_sqlite",
    "create_tables",
    "lock_schema",
    "sync_every_commit",
    "with_default_driver",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
_PRIVATE = 0o600
#: Where a new connection's checked files wait for its check after the open.
_CHECKED = "regisseur.checked_files"
#: Set on a pooled SQLite connection whose commits are synced (``sync_every_commit``).
_SYNCED = "regisseur.synced_commits"


#: The driver name of psycopg 3 (``pip install 'regisseur[postgres]'``) in a SQLAlchemy URL.
PSYCOPG = "postgresql+psycopg"


def with_default_driver(url: URL) -> URL:
    """``url``, a bare ``postgresql://`` one with the driver regisseur installs named.

    ``pip install 'regisseur[postgres]'`` installs psycopg 3, and cluster
    mode needs it. SQLAlchemy 2.1 opens a bare ``postgresql://`` URL with
    psycopg 3, but 2.0 (the newest release on Python 3.10) with psycopg2:
    there the extra's driver went unused and the error asked for
    ``psycopg2``. A bare URL therefore names psycopg 3, unless only psycopg2
    is installed (an application already running on it keeps working). A
    URL that names its driver (``postgresql+psycopg2://``, ...) is left as
    it is. Looks up which drivers are installed (no import); any thread.
    """
    if url.drivername != "postgresql":
        return url
    if _installed("psycopg2") and not _installed("psycopg"):
        return url
    return url.set(drivername=PSYCOPG)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-installed package
        return False


class DatabaseError(RegisseurError, RuntimeError):
    """The database could not be opened or used; the message says why."""


class Database:
    """Owns the engine for one system. Thread-safe; sessions are not."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        if not isinstance(url, str):
            msg = f"database_url must be a str, got {type(url).__name__} {url!r}"
            raise TypeError(msg)
        self._raw = url
        self._url: URL | None = None
        try:
            self._url = make_url(url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            self._url = None  # reported by open(), as a failed database stage
        self.echo = echo
        self._engine: Engine | None = None
        self._setup: _SqliteSetup | None = None

    @property
    def url(self) -> str:
        """The URL with any password hidden (safe to log)."""
        if self._url is None:
            return redact_text(self._raw)
        try:
            return self._url.render_as_string(hide_password=True)
        except UnicodeEncodeError:  # a file name that is not UTF-8: shown escaped
            database = os.fsencode(self._url.database or "").decode("utf-8", "backslashreplace")
            return self._url.set(database=database).render_as_string(hide_password=True)

    @property
    def parsed(self) -> bool:
        """True if the URL parses as a SQLAlchemy URL (reachable or not)."""
        return self._url is not None

    @property
    def sqlalchemy_url(self) -> URL:
        """The parsed URL, password included (its ``repr`` hides it); never log it."""
        if self._url is None:
            msg = f"database_url {self.url!r} is not a valid SQLAlchemy URL"
            raise DatabaseError(msg)
        return self._url

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite backend."""
        return self._url is not None and self._url.get_backend_name() == "sqlite"

    @property
    def engine(self) -> Engine:
        """The engine; ``DatabaseError`` before ``open()`` or after ``close()``."""
        if self._engine is None:
            msg = "the database is not open (is the system running?)"
            raise DatabaseError(msg)
        return self._engine

    def open(self) -> None:
        """Create the engine and check that a connection works."""
        if self._engine is not None:
            return
        if self._url is None:
            msg = f"database_url {self.url!r} is not a valid SQLAlchemy URL (e.g. sqlite:///app.db)"
            raise DatabaseError(msg)
        url = self._url
        setup = None
        if self.is_sqlite:
            setup = _SqliteSetup(_sqlite_file(url), private=url.query.get("nofollow") is not None)
            url = url.difference_update_query(["nofollow"])  # regisseur's own, not SQLite's
        try:
            engine = create_engine(with_default_driver(url), echo=self.echo, future=True)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            msg = f"cannot use database {self.url}: {exc}"
            raise DatabaseError(msg) from exc
        if setup is not None:
            # The file SQLite will open: a link's target, if the name is one.
            database = setup.file[1] if setup.file is not None else url.database
            _create_private(database, wal=setup.private)
            event.listen(engine, "do_connect", setup.existing_only)
            event.listen(engine, "connect", setup)
            event.listen(engine, "checkin", _restore_synchronous)
        try:
            if setup is not None:
                setup.open_guard()
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if setup is not None:
                setup.hold(engine)
        except Exception as exc:
            engine.dispose()
            if setup is not None:
                setup.release()
            if isinstance(exc, DatabaseError):
                raise  # a refusal: its message names the file
            msg = f"cannot connect to database {self.url}: {type(exc).__name__}: {exc}"
            raise DatabaseError(msg) from exc
        self._engine = engine
        self._setup = setup

    def session(self) -> Session:
        """A new ``Session`` bound to the engine (use it on one thread)."""
        from sqlalchemy.orm import Session  # the ORM loads only for self.db users

        return Session(self.engine, future=True)

    def check(self) -> bool:
        """True if a trivial query works right now."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any error means unhealthy
            return False
        return True

    def close(self) -> None:
        """Dispose of the engine and its pooled connections.

        The connection a ``nofollow`` database keeps closes last: it
        checkpoints the ``-wal``, and SQLite removes it and the ``-shm``.
        """
        engine, self._engine = self._engine, None
        setup, self._setup = self._setup, None
        if engine is not None:
            engine.dispose()
        if setup is not None:
            setup.release()


def sync_every_commit(connection: Connection) -> bool:
    """Make every commit on ``connection`` durable once it returns (SQLite).

    The system's SQLite files run in WAL mode with ``synchronous=NORMAL``:
    a commit survives a crash of the process, but a power loss or a kernel
    crash can drop the last ones. After this call each commit on this
    connection also flushes the ``-wal`` to the disk (``synchronous=FULL``;
    about 0.5-1 ms per commit on a disk), for as long as the connection is
    checked out: back in the pool it gets ``NORMAL`` again, so the next
    user of the pooled connection keeps the system's setting. For a writer
    that groups many changes per commit (the download keeper), whose
    commits others act on.

    Call it on the connection's thread, outside a transaction (SQLite
    refuses the change inside one: SQLAlchemy's ``OperationalError``,
    nothing changed). Cheap once applied (a dict lookup): True if it was
    applied now, False if it already was, or for another database (its
    commits are as durable as its server's settings make them). A
    connection the pool replaced after an error has to be set again: call
    it before each write.
    """
    if connection.dialect.name != "sqlite" or connection.info.get(_SYNCED):
        return False
    connection.exec_driver_sql("PRAGMA synchronous=FULL")
    connection.info[_SYNCED] = True
    return True


def _restore_synchronous(dbapi_connection: Any, record: Any) -> None:
    """Pool ``checkin``: a connection ``sync_every_commit`` set goes back to ``NORMAL``.

    Runs on the thread that returns the connection, after the pool rolled
    it back. A connection that refuses keeps ``FULL`` (slower, never less
    durable).
    """
    if dbapi_connection is None or not record.info.pop(_SYNCED, False):
        return
    try:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        pass


def create_tables(connection: Connection, *tables: Table) -> None:
    """Create the missing ones of ``tables``; safe when processes start at once.

    Several processes (cluster nodes, app workers, two CLI runs on one
    directory) may open one new database at the same moment. The caller's
    transaction takes the schema lock (:func:`lock_schema`), then checks
    and creates what is missing, with its indexes; on SQLite that is one
    transaction, so another process sees the table with all its indexes or
    not at all, and a process that dies halfway leaves nothing behind.
    On PostgreSQL the lock is always taken (a cheap transaction-level
    lock), so whatever the caller checks and changes next in the same
    transaction (a column, a sequence) is decided under it too. On SQLite
    it is taken only when a table is missing: a complete database is not
    written (a read-only one still opens); the caller takes the lock itself
    before another change (see ``store.ensure_table``). On a database
    without a lock, a table that appeared between the check and the create
    is accepted as created. Runs in the caller's transaction: nothing is
    committed here; the caller's commit releases the lock.
    """
    if connection.dialect.name != "postgresql" and all(
        _has_table(connection, table) for table in tables
    ):
        return
    lock_schema(connection)
    for table in tables:
        try:
            table.create(connection, checkfirst=True)
        except (OperationalError, ProgrammingError) as exc:
            if "already exists" not in str(exc):
                raise


def lock_schema(connection: Connection) -> None:
    """Hold the database's schema lock until the caller's transaction ends.

    Whoever changes the schema (creates a table, adds a column) checks and
    changes it under this lock, so two processes never both decide to make
    the same change. PostgreSQL: a transaction-level advisory lock.
    SQLite: the write lock, taken at once with ``BEGIN IMMEDIATE`` (waiting
    for another writer up to the busy timeout; ``database is locked``
    after it); SQLite runs DDL inside that transaction, so the change
    commits whole. A connection already inside a transaction keeps it
    (pysqlite opens one only for a write, which holds the write lock
    already). Other databases: nothing (their DDL is checked for
    "already exists" instead). Idempotent within one transaction.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('regisseur:schema'))"))
    elif dialect == "sqlite":
        dbapi = connection.connection.dbapi_connection
        if not getattr(dbapi, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _has_table(connection: Connection, table: Table) -> bool:
    return bool(connection.dialect.has_table(connection, table.name, schema=table.schema))


def claim_private_sqlite(path: str | Path) -> Path:
    """Make ``path`` a private SQLite file that is safe to open; return it.

    For a database in a directory other users may write to. Refuses (with a
    ``DatabaseError`` saying so) a symbolic link at ``path`` or at its
    ``-wal``/``-shm``/``-journal`` companions, dangling or not: SQLite
    follows links, so a planted link would create the database elsewhere or
    turn another application's SQLite file into ours. Refuses as well, for
    the file and each companion that exists: anything but a regular file,
    a file with another hard link (the same kind of second name), and a
    file of another user (SQLite writes into an existing ``-wal`` as it
    finds it: its owner would read every record, and a planted journal
    would be rolled back into the database). Creates a missing file with
    mode 0600 without following links, an empty database in WAL mode (so
    that SQLite never switches it in the directory: see
    :func:`start_in_wal_mode`), and narrows the caller's own files to 0600.
    Runs on the caller's thread; touches only these files.
    """
    path = Path(path)
    companions = [Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS]
    for candidate in (path, *companions):
        if candidate.is_symlink():
            msg = (
                f"refusing to open the database {str(path)!r}: {str(candidate)!r} is a "
                f"symbolic link (SQLite would follow it out of the directory); remove it"
            )
            raise DatabaseError(msg)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), _PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link appeared since the check
            msg = f"refusing to open the database {str(path)!r}: it is a symbolic link"
        else:
            msg = f"cannot open the database {str(path)!r}: {exc.strerror or exc}"
        raise DatabaseError(msg) from exc
    try:
        _claim_open(fd, path, path)
        start_in_wal_mode(fd, str(path))
    finally:
        os.close(fd)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    for companion in companions:
        try:
            fd = os.open(companion, flags | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            continue
        except OSError as exc:
            msg = f"refusing to open the database {str(path)!r}: {str(companion)!r}: "
            msg += "it is a symbolic link" if exc.errno == errno.ELOOP else str(exc.strerror)
            raise DatabaseError(msg) from exc
        try:
            _claim_open(fd, path, companion)
        finally:
            os.close(fd)
    return path


def _claim_open(fd: int, path: Path, candidate: Path) -> None:
    """Check the open file ``candidate`` (of database ``path``) is ours alone; narrow it."""
    info = os.fstat(fd)
    why = refusal(info)
    if why is not None:
        name = "it" if candidate == path else repr(str(candidate))
        raise DatabaseError(f"refusing to open the database {str(path)!r}: {name} {why}")
    if info.st_mode & 0o077:
        os.fchmod(fd, _PRIVATE)


def _create_private(database: str | None, *, wal: bool = False) -> None:
    """Create a missing SQLite file with mode 0600 (SQLite would use 0644).

    Only a plain path: not ``:memory:``, not a ``file:`` URI. An existing
    name (a file, or a link: SQLite decides what to do with it) is left as
    it is, and so is a path SQLite will refuse anyway (no such directory).
    With ``wal`` (a private database) a new or empty file of this user
    becomes an empty database in WAL mode (see :func:`start_in_wal_mode`).
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(database, flags, _PRIVATE)
    except FileExistsError:
        if not wal:
            return
        flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(database, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return  # a link, or unwritable: the checks of the first connection say so
    except OSError:
        return  # SQLite will report why it cannot be opened
    try:
        if wal and refusal(os.fstat(fd)) is None:  # else refused by the first check
            start_in_wal_mode(fd, database)
    finally:
        os.close(fd)


def _sqlite_file(url: URL) -> tuple[str, str] | None:
    """The file a SQLite ``url`` must open: (as configured, as SQLite will
    name it once open), or ``None`` for ``:memory:``, ``file:`` URIs and
    URLs with ``uri=true``: SQLite names those itself (``x.db?mode=ro``
    with ``uri=true`` opens a file of that very name), unchecked.

    Taken when the system opens its database. A path that is a symbolic
    link then stays a link to that target; any other must be opened as
    itself (its directories' links resolved, not its own name): a link
    planted in its place later is refused at the next connection. With the
    URL's ``nofollow=1`` (regisseur's own option) a link is refused even
    now. Raises ``DatabaseError`` for that, or for another ``nofollow``.
    """
    database = url.database
    nofollow = url.query.get("nofollow")
    if nofollow not in (None, "1", "true"):
        msg = f"database_url option nofollow must be 1 or true, got {nofollow!r}"
        raise DatabaseError(msg)
    uri = str(url.query.get("uri", "")).lower() in ("1", "true", "yes", "on", "t", "y")
    if not database or database == ":memory:" or database.startswith("file:") or uri:
        if nofollow is not None:  # never silently unprotected
            msg = "database_url option nofollow is for a file path, not memory or a SQLite URI"
            raise DatabaseError(msg)
        return None
    path = os.path.abspath(database)
    if os.path.islink(path):
        if nofollow is not None:
            msg = f"refusing to open the database {database!r}: it is a symbolic link"
            raise DatabaseError(msg)
        return database, os.path.realpath(path)
    folder, name = os.path.split(path)
    return database, os.path.join(os.path.realpath(folder), name)


class _SqliteSetup:
    """Settings and checks of every new SQLite connection (runs on the
    connecting thread, before the connection is used).

    ``private`` (the URL's ``nofollow=1``): the database lies in a directory
    others may write to. Each new connection's files are checked before
    SQLite opens them and what it opened is checked after
    (:mod:`regisseur.actors.sqlite_files`); and from the system's start to
    its end one connection (the anchor) stays open, out of the pool. While
    it is, SQLite neither removes the ``-wal`` and ``-shm`` (no free name to
    put another file under), nor rolls a ``-journal`` back into the database
    (that needs the file to itself), nor checkpoints into the database a
    ``-wal`` slipped in under a refused connection as it closes it. Until
    the anchor is open, a read-only connection (the guard) does the same
    for the first one: it can neither roll back nor checkpoint.
    """

    def __init__(self, file: tuple[str, str] | None, *, private: bool = False) -> None:
        self.file = file
        self.private = private and file is not None
        self._main: tuple[int, int] | None = None  # the database file opened at the start
        self._guard: sqlite3.Connection | None = None
        self._anchor: Any = None  # a DB-API connection, out of the pool

    def existing_only(self, _dialect: Any, record: Any, cargs: list[Any], cparams: Any) -> None:
        """Open the file as it exists, never create it (``mode=rw``).

        The file exists by now (created at the system's start): a dangling
        symbolic link put in its place since would have SQLite create its
        target, another file anywhere this user may write, before the check
        of the connection could refuse it. Not for ``:memory:``, a
        ``file:`` name, or a URL with ``uri=true`` (its own URI options,
        ``mode`` among them, stand as written). A private database's files
        are checked here, just before SQLite opens them.
        """
        if self.file is None or cparams.get("uri") or not cargs or not isinstance(cargs[0], str):
            return
        if self.private:
            record.info[_CHECKED] = self._check(hold=True, descriptors=True)
        path = quote(os.fsencode(cargs[0]), safe="/")
        cargs[0] = f"file://{path}?mode=rw"
        cparams["uri"] = True

    def __call__(self, dbapi_connection: Any, record: Any) -> None:
        checked = record.info.pop(_CHECKED, None)
        if self.file is not None:
            self._first_read(dbapi_connection, checked)
        _sqlite_pragmas(dbapi_connection)
        if checked is not None and not checked.wal_mode:
            # This connection may just have switched a new file to WAL:
            # the -wal and -shm SQLite made for it must be private too.
            self._verify(dbapi_connection, self._check(hold=False))

    def open_guard(self) -> None:
        """Check the files and open a read-only connection (a private database
        only; on the opening thread), kept until :meth:`hold`: the first
        pooled connection opens beside it, so that it cannot roll back a
        journal, and closing it refused checkpoints nothing."""
        if not self.private or self.file is None:
            return
        expected = self.file[1]
        checked = self._check(hold=True)
        uri = f"file:{quote(os.fsencode(expected), safe='/')}?mode=ro"
        guard = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            self._first_read(guard, checked)
        except BaseException:
            guard.close()
            raise
        self._main = checked.identity("")
        self._guard = guard

    def hold(self, engine: Engine) -> None:
        """Take one connection out of ``engine``'s pool and keep it open until
        :meth:`release` (checked like any); then close the read-only guard."""
        if self._guard is None:
            return
        fairy = engine.raw_connection()
        anchor = fairy.dbapi_connection
        fairy.detach()  # closed by release(), never by the pool
        self._anchor = anchor
        # Its first read in WAL mode opens the -wal (a file that was not in
        # WAL mode is only since this connection switched it): checked.
        self._first_read(anchor, self._check(hold=True))
        self._close_guard()

    def release(self) -> None:
        """Close the kept connections (any thread; idempotent). Call after the
        pool's: the anchor is then the last, and checkpoints the ``-wal``."""
        self._close_guard()
        anchor, self._anchor = self._anchor, None
        if anchor is not None:
            anchor.close()

    def _close_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.close()

    def _first_read(self, dbapi_connection: Any, checked: Checked | None) -> None:
        """The connection's first read (SQLite opens the companions for it),
        then the check of what it opened. A read that failed on a file
        swapped in is refused as such (SQLite took it for its own); one that
        failed before SQLite opened the ``-wal`` is not asked for its descriptor."""
        assert self.file is not None
        try:
            _first_read(dbapi_connection, *self.file, private=self.private)
        except sqlite3.Error:
            if checked is not None:
                self._verify(dbapi_connection, replace(checked, descriptors=None))
            raise
        if checked is not None:
            self._verify(dbapi_connection, checked)

    def _check(self, *, hold: bool, descriptors: bool = False) -> Checked:
        assert self.file is not None
        configured, expected = self.file
        return check_files(
            expected, configured, expected=self._main, hold=hold, descriptors=descriptors
        )

    @staticmethod
    def _verify(dbapi_connection: Any, checked: Checked) -> None:
        try:
            verify_opened(checked)
        except DatabaseError:
            dbapi_connection.close()
            raise


def _first_read(dbapi_connection: Any, configured: str, expected: str, *, private: bool) -> None:
    """The connection's first statement (SQLite opens the companions for it),
    checking it opened ``expected``; for a private database, a journal there
    that SQLite could not roll back is named (one put there while the
    database was held: SQLite would have rolled it into the records)."""
    try:
        _check_opened(dbapi_connection, configured, expected)
    except sqlite3.OperationalError as exc:
        journal = f"{expected}-journal"
        if not private or not os.path.lexists(journal):
            raise
        dbapi_connection.close()
        msg = (
            f"refusing to open the database {configured!r}: {journal!r} is there, a "
            f"rollback journal SQLite would roll into the records ({exc}); remove it"
        )
        raise DatabaseError(msg) from exc


def _check_opened(dbapi_connection: Any, configured: str, expected: str) -> None:
    """Refuse a connection SQLite opened on another file than ``expected``.

    SQLite names the file it opened with its links resolved, so a symbolic
    link planted under the database's name (to another application's
    database, or dangling: a new file elsewhere) shows here before anything
    is written through it. A SQLite that does not resolve links names the
    path as given: accepted, unchecked. The name is compared as bytes: a
    path that is not UTF-8 (``café`` in Latin-1) is a file name like any.
    """
    row = dbapi_connection.execute(
        "SELECT hex(file) FROM pragma_database_list WHERE name = 'main'"
    ).fetchone()
    named = bytes.fromhex(row[0]) if row is not None and row[0] else b""
    if not named or named in (os.fsencode(expected), os.fsencode(os.path.abspath(configured))):
        return
    opened = os.fsdecode(named)
    dbapi_connection.close()
    msg = (
        f"refusing the database {configured!r}: SQLite opened {opened!r} instead of "
        f"{expected!r} (a symbolic link put in its place since the system opened it?)"
    )
    raise DatabaseError(msg)


def _sqlite_pragmas(dbapi_connection: Any) -> None:
    """Settings of every new SQLite connection (runs on the connecting thread).

    The busy timeout comes first, so that the statements after it wait for
    another process's lock like any write. Switching a file to WAL needs a
    lock SQLite does not wait for with its busy handler: when another
    process holds the file at that moment (several processes opening one
    new file together), the switch is tried again until the busy timeout,
    then fails with SQLite's own ``database is locked``.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        # Durable across a crash of the process; only a power loss can drop
        # the last commits (never corrupt the file). The usual WAL setting.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        # Another process's lock, not an event of ours: wait for it to go.
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
