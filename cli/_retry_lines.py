"""``regisseur download``: a line for each retry of a download, as wget and curl say one.

A retry waits the server's ``Retry-After`` (up to 300 s) or a growing
backoff; without a line the run looks stuck meanwhile. ``HttpSource``
logs each retry (the event ``download_retry``, at WARNING, its fields
already redacted); :class:`RetryLines` is a logging handler that turns
those records into lines of the run's view and ignores every other one.

Threads: ``emit`` runs on the worker thread that logged the retry; the
view's ``say`` takes its own lock. Failures: a record without the
expected fields is shown with what it has; nothing is raised.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from regisseur.cli._error_text import beside_url

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RetryLines", "show_retries"]

_LIBRARY = "regisseur"  # the loggers of every regisseur module are below it
_EVENT = "download_retry"


class RetryLines(logging.Handler):
    """Shows each ``download_retry`` record as ``retrying URL in N s (attempt I of J): WHY``."""

    def __init__(self, say: Callable[[str], None], attempts: int) -> None:
        super().__init__(logging.WARNING)
        self._say = say
        self._attempts = attempts

    def close(self) -> None:
        """No more lines: off the library's logger (idempotent)."""
        logging.getLogger(_LIBRARY).removeHandler(self)
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) != _EVENT:
            return
        fields: dict[str, Any] = getattr(record, "fields", None) or {}
        url = fields.get("url", "?")
        delay = fields.get("delay")
        attempt = fields.get("attempt")
        wait = f" in {delay:.3g} s" if isinstance(delay, (int, float)) else ""
        which = f" (attempt {attempt + 1} of {self._attempts})" if isinstance(attempt, int) else ""
        error = fields.get("error")
        why = f": {beside_url(str(error), str(url))}" if error else ""
        self._say(f"retrying {url}{wait}{which}{why}")


def show_retries(say: Callable[[str], None], attempts: int) -> RetryLines:
    """Show the run's retries with ``say`` until the returned handler's ``close()``."""
    handler = RetryLines(say, attempts)
    logging.getLogger(_LIBRARY).addHandler(handler)
    return handler
