"""Fork detection: a system started before ``fork()`` is dead in the child.

A forked child has only the thread that called ``fork()``: every actor,
timer and bus thread of a running system stays behind in the parent, so in
the child each ask would time out and each tell vanish. This is what happens
to a system started at import under ``gunicorn --preload`` (or any
pre-forking server). Each system has a ``ForkGuard``: it registers an
``os.register_at_fork`` hook (holding only a weak reference, so a dropped
system is not kept alive) and, in a child forked while the system was
running, makes every use raise ``SystemForkedError`` naming the fix.

Threads: ``arm()`` runs on the thread starting the system; the hook runs in
the child, on the forking thread, before any other code of the child.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

from regisseur.actors.errors import RegisseurError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ForkGuard", "SystemForkedError"]


class SystemForkedError(RegisseurError, RuntimeError):
    """The system was started in a parent process and this process is a fork."""

    def __init__(self, name: str, parent: int, child: int) -> None:
        self.name = name
        self.parent_pid = parent
        self.child_pid = child
        super().__init__(
            f"system {name!r} was started in process {parent}, and this process "
            f"({child}) is a fork of it: the system's threads did not survive the fork, "
            f"so no actor here would answer. Start the system in each worker after the "
            f"fork instead (gunicorn: start it in the post_fork hook, or do not use "
            f"--preload) and stop it in worker_exit; see the README, 'Forking servers'"
        )


class ForkGuard:
    """Tells whether this process is a fork of the one running a system."""

    def __init__(self, name: str, running: Callable[[], bool]) -> None:
        self._name = name
        self._running = running
        self._pid: int | None = None
        self.forked_from: int | None = None
        """The pid the system ran in, once this process is a fork of it."""

    def arm(self) -> None:
        """Remember this process as the system's own (called by ``start()``)."""
        if self._pid is None:
            os.register_at_fork(after_in_child=_hook(weakref.ref(self)))
        self._pid = os.getpid()

    def _after_fork_in_child(self) -> None:
        if self._pid is not None and self.forked_from is None and self._running():
            self.forked_from = self._pid

    def error(self) -> SystemForkedError | None:
        """The error to raise in a forked child, or None in the system's process."""
        if self.forked_from is None:
            return None
        return SystemForkedError(self._name, self.forked_from, os.getpid())

    def check(self) -> None:
        """Raise ``SystemForkedError`` if this process is a fork of the system's."""
        if self.forked_from is not None:
            raise SystemForkedError(self._name, self.forked_from, os.getpid())


def _hook(guard: weakref.ref[ForkGuard]) -> Callable[[], None]:
    def after_in_child() -> None:
        found = guard()
        if found is not None:
            found._after_fork_in_child()

    return after_in_child
