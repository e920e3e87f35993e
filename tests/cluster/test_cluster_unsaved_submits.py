"""Cluster mode: a submit the keeper could not store yet is known from memory.

The cluster keeper stores a submit as a free row at its next commit. While
the database refuses that commit (an outage, a restart: the first write on
each connection the restart cut fails even once the server is back), the
submit exists only in the keeper's memory; ``status``, ``wait``, ``list``
and ``cancel`` must still know it, never call it unknown.
"""

from __future__ import annotations

from typing import Any

import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages.downloads import DownloadState

WAIT = 30.0


def _noop(download_id: str, target_id: str, name: str) -> str:
    return f"/done/{target_id}"


@pytest.mark.timeout(120)
def test_a_submit_not_yet_stored_is_known_and_cancellable(pg_url: str, refusing: Any) -> None:
    node = ActorSystem(
        database_url=pg_url,
        cluster=ClusterSettings("a", lease_ttl=20.0, poll_interval=0.3),
        download_sources=[DownloadSource("noop", _noop)],
        name="unsaved-a",
    )
    with node:
        first = node.downloads.submit("noop", "t0", "zero")
        assert node.downloads.wait(first, WAIT).state is DownloadState.SUCCEEDED

        refusing(True)  # every session cut, new ones refused
        kept = node.downloads.submit("noop", "t1", "one")
        dropped = node.downloads.submit("noop", "t2", "two")
        record = node.downloads.status(kept)
        assert record is not None, "a submit whose row is not stored yet is not unknown"
        assert record.state is DownloadState.INITIALIZING
        assert node.downloads.cancel(dropped) is True
        cancelled = node.downloads.status(dropped)
        assert cancelled is not None and cancelled.state is DownloadState.CANCELLED

        refusing(False)
        assert node.downloads.wait(kept, WAIT).state is DownloadState.SUCCEEDED
        assert node.downloads.wait(dropped, WAIT).state is DownloadState.CANCELLED

    # Stored as they ended: a node started afterwards reads the same.
    reader = ActorSystem(
        database_url=pg_url,
        cluster=ClusterSettings("b", lease_ttl=20.0, poll_interval=0.3),
        name="unsaved-b",
    )
    with reader:
        states = {r.id: r.state for r in reader.downloads.list()}
        assert states[kept] is DownloadState.SUCCEEDED
        assert states[dropped] is DownloadState.CANCELLED
