"""The journal of accepted submits: ids ``submit()`` returned that are not safe yet.

``submit()`` answers with an id at once and tells the keeper; the keeper
stores the record later (group commit). Until it has, the submit exists
only as a message, and a message dies with the keeper (a crash while it
handles it, a killed thread, a commit that never happened). So the facade
writes every submit here before it tells the keeper, and the keeper
removes it once it is safe: stored in the database, or (a keeper without
a database) ended. A restarted keeper queues again whatever is still here
and unknown to it: an id returned by ``submit()`` is never lost.

The journal lives in the facade, outside the keeper's incarnations and its
mailbox, so it survives every kind of keeper failure within the process.

Threads: every method may be called from any thread (one lock).

Failures: none of its own; it only holds messages.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from regisseur.messages.downloads import QueueDownload

__all__ = ["AcceptedSubmits"]


class AcceptedSubmits:
    """Submits answered with an id and not yet safe in the keeper, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, QueueDownload] = {}

    def add(self, message: QueueDownload) -> None:
        """Note a submit before the keeper is told of it."""
        with self._lock:
            self._pending[message.id] = message

    def discard(self, download_ids: Iterable[str]) -> None:
        """Forget submits the keeper made safe (unknown ids are ignored)."""
        with self._lock:
            for download_id in download_ids:
                self._pending.pop(download_id, None)

    def pending(self) -> tuple[QueueDownload, ...]:
        """The submits not yet safe, in the order they were accepted."""
        with self._lock:
            return tuple(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)
