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

    def close(self) -> None:
        """No more lines: off the library's logger (idempotent)."""
        logging.getLogger(_LIBRARY).removeHandler(self)
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
        if self._before is not None and isinstance(download_id, str):
            self._before(download_id, str(url))
        self._say(f"retrying {url}{wait}{which}{why}")


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
