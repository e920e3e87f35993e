"""Whether a download run's records can still be written.

The keeper keeps a write the database refuses (a full disk) in memory and
retries it every second for as long as the system runs; the events of what
it could not store are held back until a retry stores them. A run waiting
for those events would wait forever, so the main thread asks this watch
while it waits: a refusal that lasts ``grace`` seconds is the run's end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

__all__ = ["RecordsRefused", "RecordsWatch"]

_KEEPER = "download-keeper"


class RecordsRefused(Exception):
    """The records database has refused this run's writes for too long."""


class RecordsWatch:
    """Asks the keeper's health, at most once per ``every`` seconds.

    Main thread only (the one that waits). ``problem()`` returns None while
    the records are written, or refused for less than ``grace`` seconds;
    then the line that says which database refuses and why. A keeper busy
    for the whole health check (a database locked for its busy timeout)
    gives no details: that is not counted as a refusal.
    """

    def __init__(
        self,
        system: ActorSystem,
        shown: str,
        *,
        grace: float = 5.0,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system = system
        self._shown = shown
        self._grace = grace
        self._every = every
        self._clock = clock
        self._next = clock() + every
        self._since: float | None = None  # when a refusal was first seen

    def problem(self) -> str | None:
        """None, or ``cannot write to the records database DB: REASON``."""
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self._every
        error = self._write_error()
        if error is None:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since < self._grace:
            return None
        reason = error.partition(": ")[2] or error  # describe_error's "Type: text"
        reason = (reason.strip().splitlines() or [reason])[0]  # a server's hints follow
        return f"cannot write to the records database {self._shown}: {reason}"

    def _write_error(self) -> str | None:
        report = self._system.health().find(_KEEPER)
        details = report.details if report is not None else None
        if not isinstance(details, dict):
            return None
        error = details.get("write_error")
        return error if isinstance(error, str) else None
