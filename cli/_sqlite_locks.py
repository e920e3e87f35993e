"""Whether another process holds a SQLite file's locks, asked of the OS.

SQLite locks byte ranges of its files with POSIX advisory locks whose
places its file formats fix (every version must agree with every other):
readers share bytes of the database file, which a connection in the
exclusive locking mode (or one checkpointing as it closes) holds
exclusively; in WAL mode a writer holds byte 120 of the ``-shm`` (the
wal-index's write lock) exclusively while it writes. These functions try
to take a shared lock on those bytes without waiting and let go at once:
refused means another process holds them.

For the command line before its system opens the file, and for ``status``
before it reads: closing a descriptor drops every lock this process holds
on that file, so they must not run while this process has the file open
through SQLite. Threads: the caller's. Failures: none (a file that cannot
be opened is not held).
"""

from __future__ import annotations

import errno
import fcntl
import os

__all__ = ["readers_kept_out", "writer_active"]

#: The database file's bytes its readers lock, shared (SQLite's PENDING_BYTE
#: 0x40000000, then the reserved byte, then 510 shared ones).
_FIRST_SHARED_BYTE = 0x40000000 + 2
_SHARED_BYTES = 510
#: The wal-index's write lock: byte 120 of the ``-shm`` (SQLite's WAL format).
_WAL_WRITE_LOCK = 120


def readers_kept_out(database: str) -> bool:
    """True if another process holds SQLite's exclusive lock on ``database``."""
    return _held(database, _FIRST_SHARED_BYTE, _SHARED_BYTES)


def writer_active(database: str) -> bool:
    """True if another process holds the write lock of ``database`` in WAL
    mode (in the middle of a write, or stopped there)."""
    return _held(f"{database}-shm", _WAL_WRITE_LOCK, 1)


def _held(path: str, start: int, length: int) -> bool:
    """True if a shared lock on ``length`` bytes of ``path`` from ``start``
    is refused now (another process holds them exclusively)."""
    # Never through a link; never blocking on a FIFO planted under the name.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, length, start)
    except OSError as exc:
        return exc.errno in (errno.EACCES, errno.EAGAIN)
    finally:
        os.close(fd)  # lets go of the shared lock
    return False
