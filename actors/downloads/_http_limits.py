"""Time limits of one HTTP download: an overall ``max_time`` and a low-speed limit.

A :class:`Watchdog` lives with one :class:`~actors.downloads._http_fetch.Fetch`:

* ``max_time``: the whole download (every attempt, and the waits between
  them) must end within this many seconds of its start, or it fails with
  ``took longer than the time limit of ... s`` (not retried);
* ``speed_limit`` / ``speed_time`` (as curl's ``--speed-limit`` and
  ``--speed-time``): if fewer than ``speed_limit * speed_time`` bytes of the
  body arrive within ``speed_time`` seconds, the attempt fails with ``too
  slow: ...``, which is retried like a read timeout. The window starts when
  the body starts, and a new one starts whenever the bytes it needs have
  arrived, so a stall is seen at most ``speed_time`` after it began.

Both limits apply from the moment a request waits for its answer, as in
curl (a server that takes longer than ``speed_time`` to start answering
is too slow too).

Threads: the worker thread calls :meth:`watch`, :meth:`progress` (per
read) and :meth:`unwatch`; a timer on the system clock (``ctx.call_at``,
run on the timer thread) checks the limits while the worker is blocked in
a read and, when one is exceeded, records why (:attr:`expired`) and calls
the abort function, which shuts the socket down so the read returns at
once. The worker then raises :attr:`expired`. Time is the system clock's, so a
``ManualClock`` drives it in tests.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from regisseur.actors.downloads.http_errors import DownloadError
from regisseur.actors.log import redact_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.clock import TimerHandle
    from regisseur.actors.downloads.context import DownloadContext

__all__ = ["TooSlow", "Watchdog"]


class TooSlow(Exception):
    """The body arrived slower than the low-speed limit (worth a retry)."""


class Watchdog:
    """Checks ``max_time`` and the low-speed limit of one download (see the module)."""

    def __init__(
        self,
        ctx: DownloadContext,
        *,
        max_time: float | None,
        speed_limit: int | None,
        speed_time: float,
        url: str,
    ) -> None:
        """``url``: the download's URL, redacted only in an error's text."""
        self._ctx = ctx
        self.max_time = max_time
        self.deadline = None if max_time is None else ctx.now() + max_time
        self.speed_limit = speed_limit
        self.speed_time = speed_time
        self._need = 0 if speed_limit is None else max(1, math.ceil(speed_limit * speed_time))
        self._url = url
        self._lock = threading.Lock()
        self._abort: Callable[[], None] | None = None
        self._timer: TimerHandle | None = None
        self._window = (0.0, 0)  # (start, bytes then): one tuple, swapped atomically
        self.received = 0
        self.expired: Exception | None = None

    @property
    def active(self) -> bool:
        """True if any limit is set (else every method is a cheap no-op)."""
        return self.deadline is not None or self._need > 0

    # -- the deadline (worker thread) -------------------------------------------------

    def time_left(self) -> float | None:
        """Seconds left before ``max_time``, or ``None`` without one."""
        if self.deadline is None:
            return None
        return self.deadline - self._ctx.now()

    def check_deadline(self) -> None:
        """Raise the ``max_time`` error if the deadline has passed."""
        left = self.time_left()
        if left is not None and left <= 0:
            raise self.late()

    def late(self) -> DownloadError:
        """The ``max_time`` error (raise it)."""
        return DownloadError(
            f"took longer than the time limit of {self.max_time:g} s "
            f"(received {self.received} bytes): {redact_text(self._url)}"
        )

    # -- the body (worker thread, timer thread) ----------------------------------------

    def watch(self, abort: Callable[[], None], received: int) -> None:
        """Start watching: an answer is awaited, or a body starts, at ``received``
        bytes; ``abort`` ends a blocked read. A new window starts now."""
        if not self.active:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self.expired = None  # a slow attempt before this one was retried
            self.received = received
            self._window = (self._ctx.now(), received)
            self._abort = abort
            self._arm()

    def progress(self, received: int) -> None:
        """``received`` bytes so far (called per read; cheap)."""
        self.received = received
        if self._need:
            before = self._window[1]
            if received - before >= self._need:
                self._window = (self._ctx.now(), received)

    def unwatch(self) -> None:
        """The body ended (or failed): no more checks."""
        if not self.active:
            return
        with self._lock:
            self._abort = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self) -> None:
        when = math.inf
        if self._need:
            when = self._window[0] + self.speed_time
        if self.deadline is not None:
            when = min(when, self.deadline)
        try:
            self._timer = self._ctx.call_at(when, self._check)
        except RuntimeError:  # the system is stopping: the download is cancelled too
            self._timer = None

    def _check(self) -> None:
        """Timer thread: expire the download, or check again later."""
        with self._lock:
            abort = self._abort
            if abort is None or self.expired is not None:
                return
            now = self._ctx.now()
            if self.deadline is not None and now >= self.deadline:
                self.expired = self.late()
            elif self._need:
                start, before = self._window
                if self.received - before >= self._need:
                    self._window = (now, self.received)
                elif now >= start + self.speed_time:
                    self.expired = TooSlow(
                        f"too slow: less than {self.speed_limit} bytes/s during "
                        f"{self.speed_time:g}s (received {self.received} bytes): "
                        f"{redact_text(self._url)}"
                    )
            if self.expired is None:
                self._arm()
                return
        abort()
