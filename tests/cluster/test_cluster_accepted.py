"""Cluster mode: an id returned by ``submit()`` survives a crash of the node's keeper.

The cluster keeper stores a submit free in the shared table at its next
commit; crashed before that (here: on the submit itself), the restarted
keeper queues it again from the facade's journal of accepted submits.
"""

from __future__ import annotations

import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages import ChildRestarted, DeadLetter
from regisseur.messages.downloads import DownloadState, QueueDownload
from regisseur.supervision.testing import FaultInjector, Probe

WAIT = 30.0


def _noop(download_id: str, target_id: str, name: str) -> str:
    return f"/done/{target_id}"


@pytest.mark.timeout(120)
def test_a_submit_the_cluster_keeper_crashes_on_still_runs(pg_url: str) -> None:
    node = ActorSystem(
        database_url=pg_url,
        cluster=ClusterSettings("a", lease_ttl=3.0, poll_interval=0.3),
        download_sources=[DownloadSource("noop", _noop)],
        name="accepted-a",
    )
    with node:
        probe = Probe(node, ChildRestarted, DeadLetter)
        FaultInjector(node).crash("download-keeper", message_type=QueueDownload)
        lost_before = node.downloads.submit("noop", "t1", "one")
        probe.expect(DeadLetter, recipient="download-keeper", timeout=WAIT)
        probe.expect(ChildRestarted, name="download-keeper", timeout=WAIT)
        record = node.downloads.wait(lost_before, WAIT)
        assert record.state is DownloadState.SUCCEEDED, record.error
        later = node.downloads.submit("noop", "t2", "two")
        assert node.downloads.wait(later, WAIT).state is DownloadState.SUCCEEDED
        assert sorted(r.id for r in node.downloads.list()) == sorted([lost_before, later])
        probe.close()
