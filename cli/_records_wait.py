"""Before a download run starts: wait while another process locks its records.

A process that keeps every reader out of a SQLite file (another run
stopped with Ctrl-Z during its final checkpoint, or a program using
``locking_mode=EXCLUSIVE``) made the run fail at its start after SQLite's
busy timeout: "cannot use the records database ...: database is locked",
exit 2, while the README promises that such a lock is waited out (as the
run does for one met later, see ``_records_watch``). One that holds the
write lock (stopped in the middle of a write) let the run start, and its
first write waited in silence for ~15 s before the run could say why.
``wait_unlocked`` asks without waiting (``records_locked``) until the lock
is gone, says once that the run waits and why, and gives up only past the
run's ``--max-time``.

Threads: the main thread, before the system starts; its pauses are plain
sleeps, so Ctrl-C (``KeyboardInterrupt``) ends the wait at once.
Failures: ``RecordsLocked`` past ``timeout``; anything else about the
file (missing, refused, not a database) is left to the start to report.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from regisseur.cli._sqlite_locks import readers_kept_out, writer_active

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["RecordsLocked", "records_locked", "wait_unlocked"]

#: Seconds between two looks at the lock.
PAUSE = 0.05
#: Seconds a lock may last before the run says it waits (a checkpoint takes milliseconds).
GRACE = 1.0


def records_locked(path: Path | None) -> str | None:
    """ "database is locked" if another process keeps this run from the SQLite
    records file ``path`` now (None: the records are not a file), else None:
    it keeps readers out, or it holds the write lock in WAL mode in the
    middle of a write (a run stopped with Ctrl-Z while it wrote), which the
    run's first write would wait for in silence (its keeper's commit waits
    SQLite's busy timeout before anything can say why). Asked of the OS
    (``_sqlite_locks``), before this process opens the file.
    """
    if path is None:
        return None
    name = str(path)
    return "database is locked" if readers_kept_out(name) or writer_active(name) else None


class RecordsLocked(Exception):
    """Another process held the records database locked past the run's ``--max-time``."""


def wait_unlocked(
    locked: Callable[[], str | None],
    shown: str,
    notice: Callable[[str], None],
    timeout: float | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once ``locked()`` (SQLite's words for the lock, or None) is None.

    ``shown``: the database as the user knows it. ``notice`` gets one line
    once the lock has lasted :data:`GRACE` seconds. ``timeout``: seconds
    after which ``RecordsLocked`` is raised (None: no bound).
    """
    start = clock()
    said = False
    while True:
        reason = locked()
        if reason is None:
            return
        waited = clock() - start
        if timeout is not None and waited >= timeout:
            msg = (
                f"the records database {shown} was still locked by another process after "
                f"the --max-time of {timeout:g} s ({reason}); nothing was downloaded"
            )
            raise RecordsLocked(msg)
        if not said and waited >= GRACE:
            said = True
            notice(
                f"waiting for the records database {shown}: {reason} "
                "(another process holds it; Ctrl-C stops the run)"
            )
        sleep(PAUSE)
