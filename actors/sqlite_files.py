"""The files of a SQLite database kept in a directory others may write to.

SQLite keeps companions beside a database ``x.db``: ``x.db-wal``,
``x.db-shm`` and ``x.db-journal``. It opens them by name, and not once:
the ``-wal`` for each new connection, the ``-shm`` in each new process, and
it looks for a hot ``-journal`` at each connection's first read (a journal
it finds there is rolled back into the database). Whoever may write to the
directory can put a file of their own (or a link) under one of these names
whenever it is free (after the last connection closed, and ``-journal``
always, in WAL mode), or in place of ours where the directory has no
sticky bit: the records would go into a file they read, and a crafted
``-wal`` or ``-journal`` would be taken into the database.

So each new connection is checked twice. :func:`check_files`, just before
SQLite opens anything: every companion there must be a regular file of
this user with one link (and the database the very file checked before);
with ``hold``, a missing ``-wal`` and ``-shm`` of a database in WAL mode
are created first (mode 0600), so that the name SQLite opens is ours.
:func:`verify_opened`, once SQLite has opened them: the names still name
the files checked, and every file this process has open under a
companion's name is that file, and the ``-wal`` one SQLite opened for
this connection is the one checked (on Linux, through ``/proc/self/fd``;
elsewhere the names only). A file swapped in between the two (and out
again) is refused before the connection is used.

Threads: runs on the connecting thread; touches only these files.
Failures: :class:`~regisseur.actors.database.DatabaseError`, its message
naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import struct
from dataclasses import dataclass

__all__ = [
    "SQLITE_COMPANIONS",
    "Checked",
    "check_files",
    "refusal",
    "start_in_wal_mode",
    "verify_opened",
]

#: The files SQLite keeps beside a database ``x.db``: ``x.db-wal`` and so on.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
#: Created by :func:`check_files` when missing (``-journal`` never is: in WAL
#: mode SQLite does not use one, and an empty one would stay in the directory).
_HELD = ("-wal", "-shm")
#: The files SQLite keeps open (a hot-journal check closes the journal again).
_OPEN_KEPT = ("", "-wal", "-shm")
_PRIVATE = 0o600
_PAGE_SIZE = 4096  # SQLite's default
_FDS = "/proc/self/fd"
_DELETED = " (deleted)"

#: ``(st_dev, st_ino)``: which file a name or a descriptor is.
Identity = tuple[int, int]


def _error(message: str) -> Exception:
    """The database's error (``DatabaseError``) saying ``message``.

    Imported when raised: ``regisseur.actors.database`` builds on this module.
    """
    from regisseur.actors.database import DatabaseError

    return DatabaseError(message)


@dataclass(frozen=True, slots=True)
class Checked:
    """What :func:`check_files` found: each file's identity, ``None`` where missing.

    ``database`` is the database's path as SQLite names it (its directories
    resolved); ``files`` pairs each suffix (``""`` for the database itself)
    with the identity of the file under that name.
    """

    database: str
    shown: str
    files: tuple[tuple[str, Identity | None], ...]
    wal_mode: bool
    owner: int | None = None  # whose the files must be; None: this process's user
    #: This process's descriptors on files just before SQLite opened them
    #: (``descriptors=True``; None where not asked or not listed).
    descriptors: tuple[tuple[int, Identity], ...] | None = None

    def identity(self, suffix: str) -> Identity | None:
        """The identity checked under ``database + suffix``."""
        return dict(self.files).get(suffix)


def refusal(info: os.stat_result, owner: int | None = None) -> str | None:
    """Why a file (``info``, from ``fstat`` or ``lstat``) may not serve as a private
    database file of user ``owner`` (default: this process's), completing
    ``"<name> ..."``; None if it may."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link (SQLite would follow it out of the directory); remove it"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != (os.geteuid() if owner is None else owner):
        return (
            f"belongs to another user (uid {info.st_uid}), who could "
            "read or change the records; remove it"
        )
    if info.st_nlink != 1:
        return (
            f"has {info.st_nlink} hard links (another name of the same "
            "file, which may be another application's or readable elsewhere); remove it"
        )
    return None


def _refuse(shown: str, name: str, why: str) -> Exception:
    return _error(f"refusing to open the database {shown!r}: {name!r} {why}")


def check_files(
    database: str,
    shown: str,
    *,
    expected: Identity | None = None,
    hold: bool = False,
    reader: bool = False,
    descriptors: bool = False,
) -> Checked:
    """Check the database's files before SQLite opens them; return what was found.

    ``database`` is the file as SQLite names it, ``shown`` the name for
    messages. The database must be a regular private file, and the one
    ``expected`` if given (the file the system opened at its start); each
    companion there must be too. With ``hold``, a missing ``-wal`` and
    ``-shm`` of a database in WAL mode are created (mode 0600, never
    through a link), so that SQLite opens files of ours. Nothing else is
    changed. A ``reader`` (``regisseur status``) may read another user's
    database: its companions must then be that user's. With
    ``descriptors`` (a new connection about to open the files), the
    descriptors this process has open are noted last, for
    :func:`verify_opened` to find the one SQLite opens on the ``-wal``.
    """
    owner = _owner(database) if reader else None
    main = _look(database, shown, database, owner)
    if main is None:
        raise _error(f"cannot open the database {shown!r}: it does not exist")
    identity = (main.st_dev, main.st_ino)
    if expected is not None and identity != expected:
        raise _refuse(shown, database, "was replaced by another file since it was opened")
    wal_mode = hold and _in_wal_mode(database)
    files: list[tuple[str, Identity | None]] = [("", identity)]
    for suffix in SQLITE_COMPANIONS:
        name = database + suffix
        info = _look(name, shown, database, owner)
        if info is None and wal_mode and suffix in _HELD:
            info = _create(name, shown)
        files.append((suffix, None if info is None else (info.st_dev, info.st_ino)))
    before = _identities() if descriptors and wal_mode else None
    return Checked(database, shown, tuple(files), wal_mode, owner, before)


def verify_opened(checked: Checked) -> None:
    """Refuse if SQLite opened other files than those :func:`check_files` found.

    Call once SQLite has opened the connection's files (after its first
    read). Each name checked must still name the same file; a companion
    missing then and there now (SQLite made it) must be private. Every
    file this process has open under one of the names, or under one of
    them since removed, must be the file the name names now. If
    ``checked`` noted the descriptors before the open, one on the checked
    ``-wal`` must be new: SQLite opened that file, not one swapped in and
    out again around its open (which then has another name). A connection
    of the same database closed on another thread at that very moment may
    hand its number to the new one: then a sound connection is refused
    (rare; whoever connects gets the error, as for any refusal).
    """
    database, shown = checked.database, checked.shown
    now: dict[str, Identity | None] = {}
    for suffix, identity in checked.files:
        name = database + suffix
        info = _look(name, shown, database, checked.owner)
        current = None if info is None else (info.st_dev, info.st_ino)
        if identity is not None and current != identity:
            raise _refuse(shown, name, "was replaced by another file as SQLite opened it")
        now[name] = current
    listed = _descriptors()
    if checked.descriptors is not None and listed is not None:
        _verify_new_wal(checked, now[database + "-wal"], listed)
    watched = [database + suffix for suffix in _OPEN_KEPT]
    for name, opened in _open_files(watched, listed or ()):
        if opened != now[name]:
            why = (
                "was removed while SQLite had it open"
                if now[name] is None
                else "is open in this process as another file than the one there now "
                "(replaced as SQLite opened it?)"
            )
            raise _refuse(shown, name, why)


def start_in_wal_mode(fd: int, name: str = "") -> None:
    """Make the empty file open as ``fd`` (``name``, for messages) an empty
    database in WAL mode.

    A new file's first connection would switch it to WAL in the directory:
    SQLite then makes a ``-journal`` and opens a ``-wal`` by name (both
    seen from outside as they appear), with no ``-wal`` of ours there to
    hold the name (for an empty file SQLite removes one). The bytes SQLite
    writes for an empty WAL database (one page: the file header and an
    empty schema) are written into ``fd`` instead: made in memory, never
    in a temporary directory, which may be one others can write to
    (``TMPDIR``), full, or missing. A file that is not empty is left as
    it is. ``DatabaseError`` naming ``name`` if the file cannot take them
    (a full disk): the file is then left empty, to be started again.
    """
    if os.fstat(fd).st_size:
        return
    content = _empty_wal_database()
    try:
        written = 0
        while written < len(content):
            written += os.pwrite(fd, content[written:], written)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # part of a header is no database: started again next time
        reason = (exc.strerror or str(exc)).lower()
        raise _error(f"cannot write to the database {name!r}: {reason}") from exc


def _empty_wal_database() -> bytes:
    """The one page SQLite writes for an empty database switched to WAL mode.

    The file header (https://sqlite.org/fileformat2.html#the_database_header):
    page size 4096, file format versions 2 and 2 (WAL), change counter 1,
    one page, no schema yet (schema format and text encoding 0 until the
    first table), version-valid-for 1 and this SQLite's version number;
    then the empty ``sqlite_schema`` table's leaf page header.
    """
    major, minor, patch = sqlite3.sqlite_version_info
    formats = (2, 2, 0, 64, 32, 32)  # write and read versions 2: WAL; no reserved bytes
    counters = (1, 1) + (0,) * 10  # change counter, pages; no freelist, schema, encoding yet
    version = (1, major * 1_000_000 + minor * 1_000 + patch)  # valid-for, SQLite's version
    header = struct.pack(
        ">16sH6B12I20x2I", b"SQLite format 3\0", _PAGE_SIZE, *formats, *counters, *version
    )
    leaf = struct.pack(">BHHHB", 0x0D, 0, 0, _PAGE_SIZE, 0)  # a table leaf with no cells
    return (header + leaf).ljust(_PAGE_SIZE, b"\0")


def _owner(database: str) -> int | None:
    """The owner of ``database`` (None if missing or not to be looked at)."""
    try:
        return os.lstat(database).st_uid
    except OSError:
        return None


def _look(name: str, shown: str, database: str, owner: int | None = None) -> os.stat_result | None:
    """``lstat`` of ``name``, None if missing; refused unless private (to ``owner``)."""
    try:
        info = os.lstat(name)
    except FileNotFoundError:
        return None
    why = refusal(info, owner)
    if why is None:
        return info
    if name == database:
        raise _error(f"refusing to open the database {shown!r}: it {why}")
    raise _refuse(shown, name, why)


def _create(name: str, shown: str) -> os.stat_result | None:
    """Create ``name`` empty, mode 0600, never through a link; None if it appeared
    meanwhile (then checked like any)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(name, flags | getattr(os, "O_CLOEXEC", 0), _PRIVATE)
    except FileExistsError:
        return _look(name, shown, "")  # checked as this user's: only a holder creates
    except OSError as exc:
        msg = f"cannot open the database {shown!r}: {name!r}: {exc.strerror or exc}"
        raise _error(msg) from exc
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _in_wal_mode(database: str) -> bool:
    """True if the file's header says WAL (bytes 18 and 19 are 2)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(database, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return False  # refused or reported by whoever opens it next
        raise
    try:
        return os.pread(fd, 2, 18) == b"\x02\x02"
    finally:
        os.close(fd)


def _verify_new_wal(
    checked: Checked, wal: Identity | None, listed: tuple[tuple[int, Identity, str], ...]
) -> None:
    """Refuse unless SQLite opened the checked ``-wal``: a connection's first
    read in WAL mode opens it, so a descriptor on it that was not there
    before the open must be there now. Without one, SQLite opened another
    file by that name, swapped in and out again around its open (then
    under another name, which no name check sees); while the log holds no
    frame SQLite reads nothing from it, and its commits would go there."""
    expected = checked.identity("-wal")
    if expected is None or wal != expected:
        return  # not held, or replaced: refused by the name checks
    assert checked.descriptors is not None
    before = set(checked.descriptors)
    if any(identity == expected and (fd, identity) not in before for fd, identity, _ in listed):
        return
    name = checked.database + "-wal"
    why = "is not the file SQLite opened under that name (another was swapped in and out)"
    raise _refuse(checked.shown, name, why)


def _fds() -> list[str] | None:
    """The numbers of this process's open descriptors (as listed in
    ``/proc/self/fd``); None where the system does not list them (not Linux)."""
    try:
        return os.listdir(_FDS)
    except OSError:
        return None


def _identities() -> tuple[tuple[int, Identity], ...] | None:
    """This process's descriptors: (fd, identity of the file), one ``stat`` each
    (the names are not needed). None where the system does not list them."""
    fds = _fds()
    if fds is None:
        return None
    found = []
    for fd in fds:
        try:
            info = os.stat(f"{_FDS}/{fd}")
        except OSError:
            continue  # closed meanwhile
        found.append((int(fd), (info.st_dev, info.st_ino)))
    return tuple(found)


def _descriptors() -> tuple[tuple[int, Identity, str], ...] | None:
    """This process's descriptors on regular files: (fd, identity, name), the
    name without ``(deleted)``. None where the system does not list them
    (not Linux)."""
    fds = _fds()
    if fds is None:
        return None
    found = []
    for fd in fds:
        link = f"{_FDS}/{fd}"
        try:
            target = os.readlink(link)
            info = os.stat(link)
            if os.readlink(link) != target:
                continue  # closed and reused meanwhile: another file
        except OSError:
            continue  # closed meanwhile
        if stat.S_ISREG(info.st_mode):
            found.append((int(fd), (info.st_dev, info.st_ino), target.removesuffix(_DELETED)))
    return tuple(found)


def _open_files(
    names: list[str], listed: tuple[tuple[int, Identity, str], ...]
) -> list[tuple[str, Identity]]:
    """The files of ``listed`` (:func:`_descriptors`) open under ``names`` (or
    under one of them since removed): (name, identity) for each."""
    wanted = set(names)
    return [(name, identity) for _, identity, name in listed if name in wanted]
