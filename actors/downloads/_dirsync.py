"""One directory ``fsync`` for several files published at about the same time.

Publishing a finished download makes its new name durable with an
``fsync`` of the directory (a few milliseconds and a journal commit on a
typical disk). An ``fsync`` of a directory covers every entry changed in it
before the call began, so workers that publish into the same directory at
the same time can share one: :meth:`DirectorySync.sync` returns once an
``fsync`` that *started after* the caller's change has completed, and only
one runs at a time (a group commit for directory entries).

Threads: any (the workers of one source call it concurrently); the state is
this object's, guarded by its condition. An ``fsync`` never runs with the
lock held. Failures: the caller whose ``fsync`` failed gets the ``OSError``;
callers that waited for it try again themselves.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DirectorySync", "sync_directory"]


def sync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` durable (POSIX); skipped where a
    directory can't be opened."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:
        return
    fd = os.open(directory, os.O_RDONLY | flag)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectorySync:
    """Shared ``fsync`` of one directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._changed = threading.Condition(threading.Lock())
        self._requested = 0  # tickets handed out (one per change to cover)
        self._done = 0  # every ticket up to this one is durable
        self._running = False  # an fsync is under way (its caller syncs)

    def sync(self) -> None:
        """Return once the caller's earlier changes in the directory are durable."""
        with self._changed:
            self._requested += 1
            ticket = self._requested
            while self._running:
                self._changed.wait()
            if self._done >= ticket:
                return  # an fsync that began after our change has completed
            self._running = True
            covered = self._requested  # every change before now is covered
        done = False
        try:
            sync_directory(self.directory)
            done = True
        finally:
            with self._changed:
                self._running = False
                if done:
                    self._done = max(self._done, covered)
                self._changed.notify_all()
