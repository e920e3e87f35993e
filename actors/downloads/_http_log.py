"""Secrets out of the HTTP client's own log lines.

``urllib3`` (under ``requests``) logs each request line at DEBUG,
``"GET /file.bin?X-Amz-Signature=... HTTP/1.1" 200 1234``, and each retry
with its URL: an application that logs everything at DEBUG
(``logging.basicConfig(level=logging.DEBUG)``) would write the signed
URLs and tokens that every other log line redacts. :func:`redact_client_logs`
puts a filter on those loggers that redacts the text arguments of their
records (:func:`~regisseur.actors.log.redact_text`) before any handler
sees them. It changes nothing else: the loggers' levels, handlers and
propagation stay the application's, and a record that no handler would
take never reaches the filter (stdlib checks the level first), so it
costs nothing unless DEBUG is on.

Threads: any (an ``HttpSource`` is made on the caller's thread); the
filter is added once per logger (see :func:`redact_client_logs`).
Failures: none; a non-text argument (a number) is left as it is.
"""

from __future__ import annotations

import logging

from regisseur.actors.log import redact_text

__all__ = ["redact_client_logs"]

#: The loggers of urllib3 that put a request's URL in their records.
_CLIENT_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")


class _RedactArguments(logging.Filter):
    """Redacts the message and the text arguments of each record (never drops one)."""

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


def redact_client_logs() -> None:
    """Add the redacting filter to urllib3's loggers, unless one is there already.

    Any thread. Two threads making their first ``HttpSource`` at the same
    moment may both add one: redaction is idempotent, so a second filter
    only repeats the work (no lock, no module-level state to keep).
    """
    for name in _CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactArguments) for f in logger.filters):
            logger.addFilter(_RedactArguments())
