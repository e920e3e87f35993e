"""Rename a file without ever replacing another: Linux ``renameat2(RENAME_NOREPLACE)``.

One system call publishes a finished part under its final name, atomically
and never over an existing entry (a dangling symlink included): the part's
name disappears as the final one appears. Where the call is missing (not
Linux, an old C library) or the file system refuses it, :func:`rename_noreplace`
says so and the caller claims the name another way (``os.link``).

Safe to call from any thread; the C function is looked up once per process
(a constant, like the module itself).
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["rename_noreplace"]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_UNSUPPORTED = frozenset(
    code
    for code in (
        errno.EINVAL,  # the file system has no RENAME_NOREPLACE
        errno.ENOSYS,  # the kernel has no renameat2
        getattr(errno, "ENOTSUP", None),
        getattr(errno, "EOPNOTSUPP", None),
    )
    if code is not None
)


@functools.cache
def _renameat2() -> Any:
    """The C library's ``renameat2``, or ``None`` where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: not every run publishes a file

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes.append(ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def rename_noreplace(source: Path, target: Path) -> bool:
    """Rename ``source`` to ``target`` unless ``target`` exists; False if unsupported.

    Raises ``FileExistsError`` when ``target`` exists (anything, a symlink
    included, is left as it was) and ``OSError`` for other failures.
    Returns False, having changed nothing, where the system or the file
    system cannot rename without replacing.
    """
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE):
        import ctypes

        code = ctypes.get_errno()
        if code in _UNSUPPORTED:
            return False
        raise OSError(code, os.strerror(code), str(source), None, str(target))
    return True
