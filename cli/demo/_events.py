"""The demo's own events, shown beside the library's.

``ServiceRan`` is published on the system's event bus by the demo's
reporter service after each run, so the script can wait for a run (and
show that none happen while it is paused). ``DownloadRetrying`` is made
from the HTTP source's ``download_retry`` log record (a retry is logged,
not published) by :class:`RetryNotes`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regisseur.messages import Event

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DownloadRetrying", "RetryNotes", "ServiceRan"]


@dataclass(frozen=True, slots=True)
class ServiceRan(Event):
    """The service ``name`` finished a run; ``runs`` counts them all."""

    name: str
    runs: int
    polls_seen: int


@dataclass(frozen=True, slots=True)
class DownloadRetrying(Event):
    """The HTTP source will try ``name`` again after ``delay`` seconds."""

    name: str
    attempt: int
    delay: float
    error: str


class RetryNotes(logging.Handler):
    """Turns ``download_retry`` log records into ``DownloadRetrying`` events.

    Runs on the download worker's thread that logs; ``deliver`` must be
    thread-safe. Attach it to the ``actors`` logger for the demo's duration.
    """

    def __init__(self, deliver: Callable[[object], None]) -> None:
        super().__init__(logging.WARNING)
        self._deliver = deliver

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) != "download_retry":
            return
        fields = getattr(record, "fields", {})
        url = str(fields.get("url", ""))
        self._deliver(
            DownloadRetrying(
                name=url.rstrip("/").rsplit("/", 1)[-1] or url,
                attempt=int(fields.get("attempt", 0)),
                delay=float(fields.get("delay", 0.0)),
                error=str(fields.get("error", "")),
            )
        )
