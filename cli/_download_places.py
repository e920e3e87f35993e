"""Where ``regisseur download`` puts files and records: checked before anything starts.

The output directory is created and probed with a file of its own (so that
an unwritable ``-o`` is one plain line, not a database error later); the
records' SQLite file must be creatable beside it, and its ``-owners`` lock
directory must not be a planted link. Each check returns why it failed, in
plain words, or ``None``. Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["inside", "plain_reason", "prepare_directory", "prepare_records"]


def plain_reason(exc: OSError) -> str:
    """``permission denied``, ``read-only file system``: the OS's words, in lower case."""
    return exc.strerror.lower() if exc.strerror else str(exc)


def _not_a_directory(path: Path) -> bool:
    """True if ``path`` exists and is not a directory (False if it cannot be looked at)."""
    try:
        return not stat.S_ISDIR(path.stat().st_mode)
    except OSError:  # missing, or in a directory this user may not search
        return False


def prepare_directory(directory: Path) -> str | None:
    """Create ``directory`` and make sure files can be made in it; why not, else None."""
    from regisseur.actors.downloads.names import is_text  # the runtime loads for a run anyway

    absolute = os.path.abspath(directory)
    if not is_text(absolute):
        shown = os.fsencode(absolute).decode("utf-8", "backslashreplace")
        return (
            f"-o {shown}: the folder's path is not UTF-8 text, and the download records "
            "keep paths as text; rename it or choose another"
        )
    if _not_a_directory(directory):
        return f"-o {directory} is a file, not a directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a dangling symlink or a special file
        return f"-o {directory} {_what_blocks(directory)}"
    except NotADirectoryError:
        blocker = next((p for p in directory.parents if _not_a_directory(p)), None)
        where = f"{blocker} is a file, not a directory" if blocker else "not a directory"
        return f"cannot create {directory}: {where}"
    except OSError as exc:
        return f"cannot create {directory}: {plain_reason(exc)}"
    reason = _write_check(directory)
    return None if reason is None else f"cannot write to {directory}: {reason}"


def _what_blocks(path: Path) -> str:
    """What ``path``, which exists but is no directory, is (for the error line)."""
    try:
        target = os.readlink(path)
    except OSError:
        return "exists and is not a directory"
    try:
        path.stat()
    except FileNotFoundError:
        return f"is a symbolic link to {target}, which does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"is a symbolic link to {target}, which loops"
        return f"is a symbolic link to {target}: {plain_reason(exc)}"
    return f"is a symbolic link to {target}, which is not a directory"


def _write_check(directory: Path) -> str | None:
    """Why no file can be made in ``directory`` (``permission denied``), or None."""
    probe = directory / f".regisseur-write-check-{os.getpid()}-{os.urandom(4).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(probe, flags, 0o600))
    except OSError as exc:
        return plain_reason(exc)
    with contextlib.suppress(FileNotFoundError):
        probe.unlink()
    return None


def prepare_records(path: Path) -> str | None:
    """Make sure the records' SQLite file ``path`` can be written; why not, else None.

    SQLite makes files beside it (``-wal``, ``-journal``) and the run its
    ``-owners`` locks, so its directory must take new files too.
    """
    where = path.parent
    if not where.is_dir():
        return f"cannot use the records database {path}: no directory {where}"
    reason = _write_check(where)
    if reason is not None:
        return f"cannot write to {where} (for the records database {path.name}): {reason}"
    owners = path.with_name(f"{path.name}-owners")  # the runs' lock files
    if owners.is_symlink():
        return f"refusing to use {owners}: it is a symbolic link (remove it)"
    try:
        os.close(os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0)))
    except FileNotFoundError:
        return None  # made by the run
    except OSError as exc:
        return f"cannot write to the records database {path}: {plain_reason(exc)}"
    return None


def inside(path: Path, directory: Path) -> bool:
    """True if ``path`` (absolute, directories resolved) lies in ``directory`` or below."""
    top = directory.resolve()
    return path.parent == top or top in path.parent.parents
