"""Whether a download run's records can still be written.

The keeper keeps a write the database refuses (a full disk) in memory and
retries it every second for as long as the system runs; the events of what
it could not store are held back until a retry stores them. A run waiting
for those events would wait forever, so the main thread asks this watch
while it waits. A refusal that lasts until a person acts (a full disk, a
read-only file: the keeper's ``write_error_passes`` is False) ends the run
once it has lasted ``grace`` seconds. One that ends by itself (another
run's lock, a database server restarting) is waited out, however long:
after ``grace`` seconds the run says once that it waits, and why.

A keeper that cannot start again because the database refuses it (a
records file regisseur's checks refuse: its ``-wal`` swapped for a link)
reports no details while the supervisor tries again; its last error,
a ``DatabaseError``, counts as a lasting refusal too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

__all__ = ["RecordsRefused", "RecordsWatch"]

_KEEPER = "download-keeper"
_UNRESPONSIVE = "unresponsive"  # the health of an actor that did not answer in time
_DOWN = frozenset({"restarting", "failed"})  # a keeper that is not there to write
_REFUSED = "DatabaseError: "  # describe_error() of the database's refusal


class RecordsRefused(Exception):
    """The records database has refused this run's writes for too long."""


class RecordsWatch:
    """Asks the keeper's health, at most once per ``every`` seconds.

    Main thread only (the one that waits). ``problem()`` returns None while
    the records are written, refused for less than ``grace`` seconds, or
    refused for a reason that passes by itself (then ``notice`` gets, once
    per refusal, the line that says the run waits and why); else the line
    that says which database refuses and why. A keeper busy
    for the whole health check (a database locked for its busy timeout)
    gives no details: that starts no refusal, and one seen before goes on
    (a lock held for minutes keeps the keeper busy in each retry's 10 s
    wait, and answering only now and then in between).
    """

    def __init__(
        self,
        system: ActorSystem,
        shown: str,
        *,
        grace: float = 5.0,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self._system = system
        self._shown = shown
        self._grace = grace
        self._every = every
        self._clock = clock
        self._next = clock() + every
        self._since: float | None = None  # when a refusal was first seen
        self._notice = notice
        self._noticed = False  # the waiting line of this refusal was said
        self._last: tuple[str, bool] | None = None  # the refusal last seen, if it goes on
        self._stored_at: float | None = None  # the last look that found nothing refused

    def problem(self) -> str | None:
        """None, or ``cannot write to the records database DB: REASON``."""
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self._every
        answered, error, passes = self._write_error()
        if not answered:  # busy: a refusal seen goes on, none begins
            if self._last is None:
                return None
            error, passes = self._last
        if error is None:
            if answered:
                self._stored_at = now
            self._since = None
            self._last = None
            self._noticed = False
            return None
        self._last = (error, passes)
        if self._since is None:
            self._since = now
        if now - self._since < self._grace:
            return None
        reason = error.partition(": ")[2] or error  # describe_error's "Type: text"
        reason = (reason.strip().splitlines() or [reason])[0]  # a server's hints follow
        if not passes:
            return f"cannot write to the records database {self._shown}: {reason}"
        if not self._noticed and self._notice is not None:
            self._noticed = True
            self._notice(
                f"waiting for the records database {self._shown}: {reason} "
                "(Ctrl-C stops the run; its partial files are kept)"
            )
        return None

    def stored_since(self, moment: float) -> bool:
        """True if a look at or after ``moment`` (this watch's clock) found the
        keeper answering with nothing refused: its asks are answered again."""
        return self._stored_at is not None and self._stored_at >= moment

    def _write_error(self) -> tuple[bool, str | None, bool]:
        """Whether the keeper answered; its write error (None: none) and
        whether that passes by itself."""
        report = self._system.health().find(_KEEPER)
        if report is not None and report.status in _DOWN:
            error = report.last_error
            if error is not None and error.startswith(_REFUSED):
                return True, error, False  # its start is refused: lasting
        details = report.details if report is not None else None
        if details == _UNRESPONSIVE:
            return False, None, False
        if not isinstance(details, dict):
            return True, None, False
        error = details.get("write_error")
        if not isinstance(error, str):
            return True, None, False
        return True, error, details.get("write_error_passes") is True
