"""The keeper's answer to "is this run still the download's owner?", for any thread.

A run checks, right before it publishes its file, that it is still its
download's current claim. Asked through the keeper's mailbox, that check
is a round trip that waits behind whatever the keeper is doing (a commit,
a burst of reports), once per download. Without a cluster the answer
depends only on two things the keeper holds in memory (which claim runs,
and whether the download is still live), so the keeper hands the sources
a view of them: a worker reads it on its own thread, with no message.

Threads: the keeper's current incarnation is the only writer; it changes
the two dicts this reads as it handles messages. Any thread may call
:meth:`ClaimView.check`: each read is one dict operation (atomic), and
the answer is the keeper's as of the last message it handled, which is
what the round trip answered too (a cancel that returned to its caller
has been handled). For a run whose start the keeper has not handled yet
``check`` says None, and the worker decides from the run's token (see
``WorkerActor._owner_check``). In cluster mode the keeper gives no view:
the check also reads the database row, so it stays a round trip.

Failures: none (a read of a dict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from regisseur.messages.downloads import DownloadRecord

__all__ = ["ClaimView"]


class ClaimView:
    """Read-only: whether a claim is the current run of a live download."""

    __slots__ = ("_current", "_live")

    def __init__(self, current: Mapping[str, int], live: Mapping[str, DownloadRecord]) -> None:
        self._current = current
        self._live = live

    def is_current(self, download_id: str, claim: int) -> bool:
        """True while ``claim`` is the run of ``download_id`` that may write."""
        return self._current.get(download_id) == claim and download_id in self._live

    def check(self, download_id: str, claim: int) -> bool | None:
        """``is_current``, or None while the keeper has not yet handled the run's start.

        A run tells the keeper of its start and then runs at once: a short
        download can end before the keeper has read that message (it may be
        busy committing). False once the download ended (or was cancelled),
        or once a later run of it started.
        """
        current = self._current.get(download_id)
        if current is None or current < claim:
            return None if download_id in self._live else False
        return current == claim and download_id in self._live
