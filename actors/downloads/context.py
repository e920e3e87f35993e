"""``DownloadContext``: what a source's ``impl`` sees of its download.

One context is made per download attempt, on the worker thread that runs
the impl. The impl calls ``report()`` as bytes arrive, checks ``cancelled``
between chunks, and waits with ``sleep()`` (on the system clock, so a
``ManualClock`` drives retries in tests).

Ownership: each attempt is one *claim* of the download, ``context.claim``
(an epoch that only grows per download). Every progress report carries it.
Right before it publishes a file (renames its part into place) an impl
calls ``context.ensure_owner()``, which raises ``StaleClaimError`` when
another run has taken the download over; the stale run then discards its
partial file and publishes nothing.

``context.earlier_claim`` is the highest claim of the download that an
earlier keeper recorded (an earlier process on the same database, an
earlier incarnation of this keeper, or in cluster mode another node's
claims): 0 when every run of it so far belongs to this keeper. Only a run
above such a claim can find a file a run it does not know of published and
never recorded (:attr:`DownloadContext.after_earlier_keeper`); a re-claim
within one keeper (a worker released at a stop, a queue re-attaching)
knows every run before it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from regisseur.actors.clock import check_duration
from regisseur.actors.downloads.errors import StaleClaimError
from regisseur.messages.downloads import ReportProgress

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from regisseur.actors.clock import TimerHandle, Timers
    from regisseur.actors.log import Logger

__all__ = ["CancelToken", "DownloadContext"]

#: Least seconds between two progress messages sent to the keeper.
REPORT_INTERVAL = 0.1


class CancelToken:
    """A one-way flag shared by the source (which sets it) and the impl.

    Thread-safe and cheap to make (one per download). Setting it calls the
    wakers registered with :meth:`on_cancel`, e.g. to end a
    ``DownloadContext.sleep()`` at once.
    """

    __slots__ = ("_cancelled", "_lock", "_reason", "_wakers")

    def __init__(self) -> None:
        self._cancelled = False
        self._lock = threading.Lock()
        self._reason = ""
        self._wakers: list[Callable[[], object]] = []

    def cancel(self, reason: str = "cancelled") -> None:
        """Set the flag (idempotent; the first reason is kept)."""
        with self._lock:
            if self._cancelled:
                return
            self._reason = reason
            self._cancelled = True
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def on_cancel(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` (once) when the token is cancelled; now if it is already."""
        with self._lock:
            if not self._cancelled:
                self._wakers.append(wake)
                return
        wake()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled

    @property
    def reason(self) -> str:
        """Why the download was cancelled (empty while it was not)."""
        return self._reason

    def wait(self, timeout: float | None) -> bool:
        """Block until cancelled or ``timeout`` (real seconds); True when cancelled."""
        event = threading.Event()
        self.on_cancel(event.set)
        return event.wait(timeout)


class DownloadContext:
    """Runtime help for one download, handed to an impl that takes four arguments.

    Attributes: ``download_id``, ``target_id``, ``display_name``,
    ``original_filename``, ``extra`` (read-only mapping given at submit),
    ``destination`` (the source's ``directory`` or ``None``),
    ``worker_state`` (what the source's ``open_worker`` returned for this
    worker, e.g. an HTTP session), ``log`` (bound to the download id) and
    ``claim`` (this run's fencing token) and ``earlier_claim`` (the
    highest claim an earlier keeper recorded; see the module docstring).

    Every method runs on the worker's thread; ``cancelled`` may be read from
    any thread.
    """

    def __init__(
        self,
        *,
        download_id: str,
        target_id: str,
        display_name: str,
        original_filename: str | None,
        extra: Mapping[str, Any],
        destination: Path | None,
        worker_state: Any,
        token: CancelToken,
        timers: Timers,
        send: Callable[[ReportProgress], None],
        log: Logger,
        claim: int = 0,
        check_owner: Callable[[], bool] | None = None,
        earlier_claim: int = 0,
    ) -> None:
        self.download_id = download_id
        self.target_id = target_id
        self.display_name = display_name
        self.original_filename = original_filename
        self.extra = extra
        self.destination = destination
        self.worker_state = worker_state
        self.log = log
        self.claim = claim
        self.earlier_claim = earlier_claim
        self._check_owner = check_owner
        self._token = token
        self._timers = timers
        self._send = send
        self._started = timers.clock.now()
        self._last_sent = -1.0
        self._sample_time = self._started
        self._sample_bytes = 0
        self._speed = 0.0
        self.transferred = 0
        self.size: int | None = None

    @property
    def cancelled(self) -> bool:
        """True once the download was cancelled (or the system is stopping)."""
        return self._token.cancelled

    @property
    def cancel_reason(self) -> str:
        """Why it was cancelled: ``"stopping"`` when the system stops (the
        download resumes at the next start; keep partial data), anything
        else for a cancel or a killed worker; empty while not cancelled."""
        return self._token.reason

    def on_cancel(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (on the cancelling thread) when the download is
        cancelled, e.g. to close a connection that blocks in a read; at once
        if it is cancelled already."""
        self._token.on_cancel(callback)

    @property
    def after_earlier_keeper(self) -> bool:
        """True if a run this keeper does not know of may have published this
        download's file (see the module docstring): an earlier keeper recorded
        a claim of it, and this run's claim is above that one."""
        return 0 < self.earlier_claim < self.claim

    def still_owner(self) -> bool:
        """True while this run is the download's current claim.

        Reads the state-keeper's answer on this thread (in cluster mode it
        asks the keeper, a round trip that reads the database: call it
        before publishing, not per chunk); False when it cannot answer.
        Without a keeper (a context made by hand) there is nobody to lose
        ownership to: True.
        """
        if self._check_owner is None:
            return True
        return self._check_owner()

    def ensure_owner(self) -> None:
        """Raise ``StaleClaimError`` unless this run is still the current claim."""
        if not self.still_owner():
            raise StaleClaimError(self.download_id, self.claim)

    def now(self) -> float:
        """The system clock's time (monotonic seconds)."""
        return self._timers.clock.now()

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` on the system's timer thread once the system clock
        reaches ``when`` (see :meth:`now`), e.g. to end a read that takes too
        long; cancel the returned handle to stop it. ``callback`` must be quick."""
        return self._timers.call_at(when, callback)

    def report(self, transferred: int, size: int | None = None) -> None:
        """Record ``transferred`` bytes of ``size`` (``None`` if unknown).

        Cheap enough to call per chunk: the keeper hears at most about ten
        reports a second (and always the first and the complete one).
        Speed is measured over the last reporting interval.
        """
        if isinstance(transferred, bool) or not isinstance(transferred, int) or transferred < 0:
            msg = f"report(transferred) must be an int >= 0, got {transferred!r}"
            raise ValueError(msg)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            msg = f"report(size) must be an int >= 0 or None, got {size!r}"
            raise ValueError(msg)
        self.transferred = transferred
        self.size = size
        now = self.now()
        complete = size is not None and transferred >= size
        if self._last_sent >= 0 and now - self._last_sent < REPORT_INTERVAL and not complete:
            return
        elapsed = now - self._sample_time
        if elapsed > 0:
            self._speed = max(0.0, (transferred - self._sample_bytes) / elapsed)
        self._sample_time = now
        self._sample_bytes = transferred
        self._last_sent = now
        remaining = None
        if size is not None and self._speed > 0:
            remaining = max(0.0, (size - transferred) / self._speed)
        elif complete:
            remaining = 0.0
        self._send(
            ReportProgress(self.download_id, transferred, size, self._speed, remaining, self.claim)
        )

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` on the system clock; False if cancelled first."""
        seconds = check_duration(seconds, "sleep(seconds)")
        if self._token.cancelled:
            return False
        done = self._timers.waiter(seconds)  # settle counts the worker as idle
        self._token.on_cancel(done.set)
        done.wait()
        return not self._token.cancelled
