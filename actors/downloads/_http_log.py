"""Secrets out of the HTTP client's own log lines.

``urllib3`` (under ``requests``) logs each request line at DEBUG,
``"GET /file.bin?X-Amz-Signature=... HTTP/1.1" 200 1234``, and each retry
with its URL: an application that logs everything at DEBUG
(``logging.basicConfig(level=logging.DEBUG)``) would write the signed
URLs and tokens that every other log line redacts. :class:`ClientLogRedaction`
puts a filter on those loggers that redacts the text arguments of their
records (:func:`~regisseur.actors.log.redact_text`) before any handler
sees them. It changes nothing else: the loggers' levels, handlers and
propagation stay the application's, and a record that no handler would
take never reaches the filter (stdlib checks the level first), so it
costs nothing unless DEBUG is on.

The filter is there while something uses it, and only then: each worker of
an ``HttpSource`` holds it from its start (``open_session``) and lets it go
at its stop (``close_session``); the last one to let go takes it off the
logger, so a stopped system leaves the application's loggers as it found
them, and two systems in one process share one filter per logger (counted
on the filter itself, never in this module). A worker abandoned at its stop
(its run overran ``shutdown_timeout``) runs no stop hook: its hold, and the
filter, stay until the process ends.

Threads: any (a worker's thread holds and lets go); each filter counts its
holders under its own lock. Failures: none; a non-text argument (a number)
is left as it is.
"""

from __future__ import annotations

import logging
import threading

from regisseur.actors.log import redact_text

__all__ = ["ClientLogRedaction"]

#: The loggers of urllib3 that put a request's URL in their records.
_CLIENT_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")
#: The attribute of a client logger that names its shared filter while it is held.
_SHARED = "_regisseur_redaction"


class _RedactArguments(logging.Filter):
    """Redacts the message and the text arguments of each record (never drops one).

    One per logger while held; it counts its holders and is on the logger
    exactly while that count is above zero (both changed under its lock).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._holders = 0

    def hold(self, logger: logging.Logger) -> None:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                logger.addFilter(self)

    def let_go(self, logger: logging.Logger) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders:
                return
            logger.removeFilter(self)
            # No other filter can be named meanwhile: the name is only ever
            # set where it is missing. A thread that found this one there
            # and holds it after this puts it back on the logger itself.
            if vars(logger).get(_SHARED) is self:
                vars(logger).pop(_SHARED, None)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        arguments = record.args
        if isinstance(arguments, tuple):
            record.args = tuple(_redacted(a) for a in arguments)
        elif isinstance(arguments, dict):
            record.args = {k: _redacted(v) for k, v in arguments.items()}
        return True


def _redacted(value: object) -> object:
    """``value`` redacted as its text; a non-text value (a number) as it is.

    urllib3 passes URLs as ``str`` and, for a retry, objects whose ``%r``
    or ``%s`` holds the URL (a ``Retry``, an exception): those are
    replaced by their redacted text, which the message formats the same
    way (``%s``) or nearly (``%r`` then shows the text quoted).
    """
    if isinstance(value, (int, float)) or value is None:
        return value
    if isinstance(value, str):
        return redact_text(value)
    text = str(value)
    shown = redact_text(text)
    return value if shown == text else shown


class ClientLogRedaction:
    """One holder of the redacting filter on urllib3's loggers (a worker's).

    Made: the filter is on each logger (added by the first holder). ``close()``
    lets it go (once; again is a no-op); the last holder's removes it.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        held: list[tuple[logging.Logger, _RedactArguments]] = []
        for name in _CLIENT_LOGGERS:
            logger = logging.getLogger(name)
            # setdefault is one dict operation: two threads get one filter.
            shared = vars(logger).setdefault(_SHARED, _RedactArguments())
            if not isinstance(shared, _RedactArguments):  # not ours: leave it be
                continue
            shared.hold(logger)
            held.append((logger, shared))
        self._held = held

    def close(self) -> None:
        held, self._held = self._held, []
        for logger, shared in held:
            shared.let_go(logger)
