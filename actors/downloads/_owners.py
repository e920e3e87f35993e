"""Who holds a download in one-process mode, and whether that holder lives.

Each keeper (one per ``ActorSystem`` with downloads) has an *owner id*,
``host:pid:system:random``, written into the ``owner`` column of the
records it runs. Several processes may share one SQLite database (two
``regisseur download`` runs into one directory, app workers with
``single_instance=False``); each runs its own downloads beside the others
and takes over another's unfinished download only when that owner is gone.

Liveness is an OS lock the kernel releases when the process dies, which a
frozen process keeps holding: the keeper holds an exclusive ``flock`` on
``<database>-owners/<owner id>.lock`` for as long as it runs. Another
process that can take that lock knows the owner is gone. Only a database
that is a local file has such a place; on any other database (and for an
in-memory one) another owner counts as alive and its downloads are left to
it (several processes on a server database: use cluster mode).

The ``-owners`` directory is made with mode 0700 and used only if it is
a real directory of this user: a symbolic link in its place (planted by
whoever can write beside the database) is refused, never followed, so the
lock files never land, and are never held, where someone else chose.

Threads: the keeper's (``OwnerLock``) or any (``owner_alive``).
Failures: an ``OSError`` while taking the own lock (``ELOOP`` for a
planted link) is raised to the keeper's start; a failing liveness probe
counts the owner as alive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import URL

_PLAN_LOCK = "plan.lock"
_LOCK_POLL = 0.05  # seconds between two tries of a lock held by another process

__all__ = [
    "OwnerLock",
    "PlanningTimeoutError",
    "describe_owner",
    "lock_directory",
    "make_owner_id",
    "owner_alive",
    "owner_running",
    "planning",
    "private_directory",
]

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]")


def make_owner_id(system_name: str) -> str:
    """``host:pid:system:random``, unique per keeper instance."""
    name = _UNSAFE.sub("_", system_name)[:60]
    return f"{socket.gethostname()}:{os.getpid()}:{name}:{uuid.uuid4().hex[:8]}"


def describe_owner(owner: str | None) -> str:
    """``pid N on host H`` for an owner id (the id itself if it has another form)."""
    if owner is None:
        return "no one"
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return f"pid {pid} on host {host}" if pid.isdigit() else owner


def lock_directory(url: URL | None) -> Path | None:
    """Where the owner locks of a database live: ``<file>-owners``; None if not a file."""
    if url is None or url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute().with_name(Path(database).name + "-owners")


def private_directory(directory: Path) -> None:
    """Make ``directory`` (mode 0700) unless it exists; ``OSError`` unless it is a
    real directory of this user (``ELOOP`` for a symbolic link)."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode):
        msg = "refusing a symbolic link in place of the lock directory; remove it"
        raise OSError(errno.ELOOP, msg, str(directory))
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(directory))
    if info.st_uid != os.geteuid():
        msg = "refusing the lock directory of another user"
        raise PermissionError(errno.EPERM, msg, str(directory))


def _lock_path(directory: Path, owner: str) -> Path:
    return directory / f"{_UNSAFE.sub('_', owner)}.lock"


class OwnerLock:
    """The keeper's own liveness lock; held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.path = _lock_path(directory, owner)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create and lock the file (exclusive, never through a symlink)."""
        if self._fd is not None:
            return
        private_directory(self.path.parent)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Remove and unlock the file (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)


def owner_alive(directory: Path | None, owner: str) -> bool:
    """True unless ``owner``'s lock in ``directory`` is provably free (its process is gone).

    A lock file that is missing, or that can be locked, means the owner
    ended (a clean stop removes it; the kernel releases it at death). The
    probe's lock is released at once; a stale file is removed.
    """
    if directory is None:
        return True
    path = _lock_path(directory, owner)
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # held (EWOULDBLOCK), or not provably free
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    finally:
        os.close(fd)


def owner_running(directory: Path | None, owner: str | None) -> bool | None:
    """Whether ``owner``'s keeper still runs, found without changing anything; None: unknown.

    For a reader that must leave the directory as it was (``regisseur
    status``): unlike :func:`owner_alive` it removes no stale lock file, and
    it follows no symbolic link (neither the ``-owners`` directory nor a
    lock file in it) and opens nothing that could block (a FIFO). False
    when the owner's lock file is missing or free (the owner stopped, or
    died); True while it is held; None without a lock directory (not a
    file database), without an owner, or when the probe cannot tell.
    """
    if directory is None or not owner:
        return None
    nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        folder = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow)
    except FileNotFoundError:
        return False  # no run ever held a lock beside this database
    except OSError:
        return None
    try:
        name = _lock_path(directory, owner).name
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=folder)
        except FileNotFoundError:
            return False  # a clean stop removes it
        except OSError:
            return None
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        return False  # free: released by the kernel when its process died
    finally:
        os.close(fd)  # also lets the probe's shared lock go


@contextlib.contextmanager
def planning(
    directory: Path | None, waiting: Callable[[], object], timeout: float | None = None
) -> Iterator[None]:
    """Hold the database's planning lock: one process at a time looks at the
    records and submits (so two processes never both submit the same work).

    Blocks while another process holds it, calling ``waiting()`` first; a
    process that dies releases it (a stopped one does not). With
    ``timeout`` (seconds), raises ``TimeoutError`` once it has waited that
    long (``PlanningTimeoutError``). Without a lock place, does nothing.
    """
    if directory is None:
        yield
        return
    private_directory(directory)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(directory / _PLAN_LOCK, flags, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            _wait_for_lock(fd, timeout)
        yield
    finally:
        os.close(fd)


class PlanningTimeoutError(TimeoutError):
    """Another process held the planning lock past the caller's ``timeout``."""


def _wait_for_lock(fd: int, timeout: float | None) -> None:
    """Take ``fd``'s exclusive lock, waiting at most ``timeout`` seconds (None: no bound)."""
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a wait that no signal cuts short
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"another process held the planning lock for more than {timeout:g} s"
                raise PlanningTimeoutError(msg) from None
            pause.wait(min(_LOCK_POLL, left))
        else:
            return
