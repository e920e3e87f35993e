"""A source added at runtime on one node is known to the other nodes at once.

(Found by these tests: the node row's sources were only written at the next
lease renewal, so ``submit`` on another node raised ``UnknownSourceError``
for up to a third of ``lease_ttl``.)
"""

from __future__ import annotations

import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages.downloads import DownloadState


def _node(url: str, node_id: str) -> ActorSystem:
    return ActorSystem(
        [],
        database_url=url,
        cluster=ClusterSettings(node_id, lease_ttl=30.0, poll_interval=0.5),
        name=f"bug-{node_id}",
    )


@pytest.mark.timeout(30)
def test_a_source_registered_at_runtime_is_known_to_the_other_nodes_at_once(pg_url: str) -> None:
    worker, front = _node(pg_url, "w"), _node(pg_url, "f")
    with worker, front:
        worker.downloads.register(DownloadSource("late", lambda i, t, n: f"/done/{t}"))
        assert front.cluster is not None
        assert "late" in front.cluster.sources()
        download_id = front.downloads.submit("late", "t1", "one")
        assert front.downloads.wait(download_id, timeout=10).state is DownloadState.SUCCEEDED
