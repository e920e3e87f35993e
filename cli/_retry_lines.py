"""``regisseur download``: a line for each retry of a download, as wget and curl say one.

A retry waits the server's ``Retry-After`` (up to 300 s) or a growing
backoff; without a line the run looks stuck meanwhile. ``HttpSource``
logs each retry (the event ``download_retry``, at WARNING, its fields
already redacted) on the worker thread that runs the download;
:class:`RetryLines` is a logging handler that turns those records into
lines of the run's view and ignores every other one.

The handler is on the process-wide ``regisseur`` logger, which every
system in the process logs to: a program that calls ``main()`` beside a
system of its own logs that system's retries there too. Only the run's
own are shown: those logged on a thread of the run's system (the thread
``emit`` runs on, among ``system.threads()``: each actor's code runs on
its cell's thread, and no two live threads share an ident).

While the run starts and plans (``hold_lines`` to ``release_lines``) the
lines are kept back: the keeper resumes a download as the system starts,
and its first retry must come after the run's ``resuming URL``, not before
it (with a ``downloading URL`` line said for it as well).

Threads: ``emit`` runs on the thread that logged the record; the view's
``say`` takes its own lock. Failures: a record without the expected
fields is shown with what it has; nothing is raised.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from regisseur.cli._error_text import beside_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from threading import Thread

__all__ = ["RetryLines", "show_retries"]

_LIBRARY = "regisseur"  # the loggers of every regisseur module are below it
_EVENT = "download_retry"


class RetryLines(logging.Handler):
    """Shows each ``download_retry`` record logged on one of ``threads()`` (the
    run's system's) as ``retrying URL in N s (attempt I of J): WHY``."""

    def __init__(
        self,
        say: Callable[[str], None],
        attempts: int,
        threads: Callable[[], Iterable[Thread]],
        before: Callable[[str, str], None] | None = None,
    ) -> None:
        """``before(download_id, url)`` runs before each retry line (the view
        says the download's start first, if it has not yet)."""
        super().__init__(logging.WARNING)
        self._say = say
        self._before = before
        self._attempts = attempts
        self._threads = threads
        # Lines kept back while the run plans (see hold_lines): (download id, URL, line).
        self._held: list[tuple[str | None, str, str]] | None = None

    def hold_lines(self) -> None:
        """Keep the lines back until :meth:`release_lines` (the run's thread, before
        its system starts): a download the keeper resumes as the system starts
        may be retried before the run has said ``resuming URL`` for it."""
        self.acquire()  # the handler's lock, which ``handle`` holds around ``emit``
        try:
            if self._held is None:
                self._held = []
        finally:
            self.release()

    def release_lines(self) -> None:
        """Say the lines kept back, in order, and the next ones at once."""
        self.acquire()
        try:
            held, self._held = self._held, None
            for download_id, url, line in held or ():
                self._tell(download_id, url, line)
        finally:
            self.release()

    def close(self) -> None:
        """No more lines: off the library's logger (idempotent); the lines
        kept back are said."""
        logging.getLogger(_LIBRARY).removeHandler(self)
        self.release_lines()
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) != _EVENT:
            return
        # The thread that logged it: this one (a handler on a logger runs on
        # the logging thread). Not ``record.thread``: None when a program
        # sets ``logging.logThreads = False``, and another process's thread
        # for a record handed on from there.
        here = threading.get_ident()
        if all(thread.ident != here for thread in self._threads()):
            return  # another system's retry (a program calling main() beside its own)
        fields: dict[str, Any] = getattr(record, "fields", None) or {}
        url = fields.get("url", "?")
        delay = fields.get("delay")
        attempt = fields.get("attempt")
        wait = f" in {delay:.3g} s" if isinstance(delay, (int, float)) else ""
        which = f" (attempt {attempt + 1} of {self._attempts})" if isinstance(attempt, int) else ""
        error = fields.get("error")
        why = f": {beside_url(str(error), str(url))}" if error else ""
        download_id = fields.get("download")
        said = (download_id if isinstance(download_id, str) else None, str(url))
        line = f"retrying {url}{wait}{which}{why}"
        if self._held is not None:
            self._held.append((*said, line))
            return
        self._tell(*said, line)

    def _tell(self, download_id: str | None, url: str, line: str) -> None:
        """``before(download_id, url)``, then the line."""
        if self._before is not None and download_id is not None:
            self._before(download_id, url)
        self._say(line)


def show_retries(
    say: Callable[[str], None],
    attempts: int,
    threads: Callable[[], Iterable[Thread]],
    before: Callable[[str, str], None] | None = None,
) -> RetryLines:
    """Show the retries logged on ``threads()`` (pass the run's ``system.threads``)
    with ``say`` until the returned handler's ``close()``; ``before`` as for
    :class:`RetryLines`."""
    handler = RetryLines(say, attempts, threads, before)
    logging.getLogger(_LIBRARY).addHandler(handler)
    return handler
