"""Whether a database's refusal of a write passes by itself.

A commit the database refused is kept in memory and retried (see the
download keeper). Some refusals end without anyone acting: another writer
lets go of its lock, a server that restarted takes connections again, a
lost connection is made anew. Others stay until a person acts: a full
disk, a read-only or unreadable file, missing rights, a constraint the
write breaks. A caller waiting for the retry (the command line) waits out
the first kind and gives up on the second.

A database regisseur's own checks refuse (a records file in a directory
others may write to, whose ``-wal`` became a link: see
:mod:`regisseur.actors.sqlite_files`) raises its ``DatabaseError``, not a
SQLAlchemy error, whenever a connection is opened anew: :data:`DATABASE_ERRORS`
is what a user of the database catches, and that refusal lasts.

Threads: any (it only reads the exception). Failures: none; an error of an
unknown kind counts as lasting unless it comes from a lost connection.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors.database import DatabaseError

__all__ = ["DATABASE_ERRORS", "passes_by_itself"]

#: What reading or writing the database raises when it refuses: SQLAlchemy's
#: errors, and the ``DatabaseError`` of a new connection regisseur's checks
#: refused (raised as it is by ``engine.connect()``, wrapped in a
#: ``StatementError`` by a statement that reconnected).
DATABASE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, DatabaseError)

# SQLite's primary result codes (``sqlite_errorname`` without its extended
# part) of a lock another connection holds.
_SQLITE_PASSING = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
# PostgreSQL SQLSTATEs (classes by their first characters) that end by
# themselves: connection exceptions, an administrator's or a crash's
# shutdown and "cannot connect now", too many connections, and a
# serialization failure or deadlock (the retry runs alone).
_PG_PASSING_PREFIXES = ("08", "57P", "40")
_PG_PASSING_CODES = frozenset({"53300", "55P03"})  # too many connections; a lock's timeout
# ... but not these of those classes: the database was dropped (57P04), a
# constraint the transaction breaks (40002). They stay until a person acts.
_PG_LASTING_CODES = frozenset({"57P04", "40002"})


def passes_by_itself(error: BaseException) -> bool:
    """True if the database's refusal ``error`` is expected to end without a person.

    ``error`` is what a commit raised: a SQLAlchemy ``DBAPIError`` (its
    driver's exception is read), the driver's exception itself, or a
    ``DatabaseError`` of regisseur's checks (lasting).
    """
    if getattr(error, "connection_invalidated", False):
        return True  # SQLAlchemy saw a lost connection: the next one is new
    orig = getattr(error, "orig", None) or error
    if isinstance(orig, DatabaseError):
        return False  # refused by regisseur's checks: a file to remove, by a person
    if type(orig).__module__ == "sqlite3":
        name = getattr(orig, "sqlite_errorname", None)  # Python 3.11 and later
        if isinstance(name, str):
            primary = "_".join(name.split("_")[:2])  # SQLITE_BUSY_TIMEOUT -> SQLITE_BUSY
            return primary in _SQLITE_PASSING
        text = str(orig)  # SQLite's fixed words for those codes
        return "database is locked" in text or "table is locked" in text or "busy" in text
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if isinstance(code, str) and code:
        if code in _PG_LASTING_CODES:
            return False
        return code.startswith(_PG_PASSING_PREFIXES) or code in _PG_PASSING_CODES
    # No code at all: a driver's error from outside the server's answer,
    # such as a refused or broken connection ("OperationalError").
    return type(orig).__name__ in ("OperationalError", "InterfaceError")
