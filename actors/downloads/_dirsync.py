"""One directory ``fsync`` for several files published at about the same time.

Publishing a finished download makes its new name durable with an
``fsync`` of the directory (a journal commit on a typical disk). An
``fsync`` of a directory covers every entry changed in it before the call
began, so workers that publish into the same directory at the same time
can share one: :meth:`DirectorySync.sync` returns once an ``fsync`` that
*started after* the caller's change has completed, and only one runs at a
time (a group commit for directory entries).

Hand-offs: a caller that comes while an ``fsync`` runs queues and sleeps
on a lock of its own. The caller whose ``fsync`` ends wakes each queued
caller it covered (once: it returns) and hands the next ``fsync`` to the
first one it did not cover (once: it runs that ``fsync`` for every caller
queued by then). No caller is woken only to sleep again: with eight
workers publishing at once, a shared condition's ``notify_all`` woke
every sleeper each round, and each woken thread took the GIL in turn.

Threads: any (the workers of one source call it concurrently); the state is
this object's, guarded by its lock. An ``fsync`` never runs with the lock
held. Failures: the caller whose ``fsync`` failed gets the ``OSError``; the
next queued caller is handed the lead and tries again itself. A queued
caller whose wait ends by an exception (Ctrl-C's ``KeyboardInterrupt``, on
the main thread) leaves the queue, or hands on the lead it was given.
"""

from __future__ import annotations

import os
import threading
from collections import deque
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


class _Waiter:
    """A queued caller: sleeps on its own lock until it is covered or leads."""

    __slots__ = ("lead", "ticket", "wake")

    def __init__(self, ticket: int) -> None:
        self.ticket = ticket
        self.lead = False  # woken to run the next fsync (else: covered)
        self.wake = threading.Lock()
        self.wake.acquire()  # released once, by the caller that wakes it


class DirectorySync:
    """Shared ``fsync`` of one directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._requested = 0  # tickets handed out (one per change to cover)
        self._done = 0  # every ticket up to this one is durable
        self._running = False  # an fsync is under way, or handed to a waiter
        self._queue: deque[_Waiter] = deque()  # callers waiting, by ticket

    def sync(self) -> None:
        """Return once the caller's earlier changes in the directory are durable."""
        with self._lock:
            self._requested += 1
            ticket = self._requested
            if self._running:
                waiter = _Waiter(ticket)
                self._queue.append(waiter)
            else:
                waiter = None
                self._running = True
        if waiter is not None:
            try:
                self._on_queue(waiter)  # holds until covered, or until this caller leads
            except BaseException:
                self._leave(waiter)
                raise
            if not waiter.lead:
                return
        self._lead()

    def _leave(self, waiter: _Waiter) -> None:
        """``waiter``'s caller left its wait by an exception (a KeyboardInterrupt
        on the main thread): off the queue, or, if it was handed the lead
        meanwhile, the lead handed on (else no caller would ever run the next
        fsync, and every later one would sleep for ever)."""
        with self._lock:
            if waiter in self._queue:
                self._queue.remove(waiter)
                return
            # Popped by the caller that woke it (under this lock: ``lead`` is final).
            wake = self._hand_on_locked() if waiter.lead else []
        for other in wake:
            other.wake.release()

    def _hand_on_locked(self) -> list[_Waiter]:
        """With the lock held: the queued callers an fsync covered, then the
        first it did not, made to lead the next one (or no fsync runs)."""
        wake: list[_Waiter] = []
        queue = self._queue
        while queue and queue[0].ticket <= self._done:
            wake.append(queue.popleft())
        if queue:  # came after the last fsync began: the first runs the next one
            leader = queue.popleft()
            leader.lead = True
            wake.append(leader)
        else:
            self._running = False
        return wake

    def _on_queue(self, waiter: _Waiter) -> None:
        """Sleep until the caller that wakes ``waiter`` released its lock."""
        waiter.wake.acquire()

    def _lead(self) -> None:
        """Run one fsync for every ticket handed out until now; wake who it covered."""
        with self._lock:
            covered = self._requested
        done = False
        try:
            sync_directory(self.directory)
            done = True
        finally:
            with self._lock:
                if done:
                    self._done = max(self._done, covered)
                wake = self._hand_on_locked()
            for waiter in wake:
                waiter.wake.release()
