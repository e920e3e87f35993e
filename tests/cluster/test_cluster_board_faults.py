"""The run board in cluster mode: two in-process nodes share one source's
downloads while a worker on each node is killed and the limits change.

Each download must end once, none run twice at the same time (on any node).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages import ChildFailed
from regisseur.messages.downloads import DownloadState
from regisseur.supervision.testing import FaultInjector, Probe


class Runs:
    """A quick impl shared by both nodes: counts runs and overlaps per name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs: Counter[str] = Counter()
        self.now: Counter[str] = Counter()
        self.overlap: Counter[str] = Counter()

    def __call__(self, download_id: str, target_id: str, name: str, ctx: object) -> str:
        with self._lock:
            self.runs[name] += 1
            self.now[name] += 1
            self.overlap[name] = max(self.overlap[name], self.now[name])
        with self._lock:
            self.now[name] -= 1
        return f"/files/{name}"


def _node(url: str, node_id: str, impl: Runs) -> ActorSystem:
    return ActorSystem(
        [],
        database_url=url,
        cluster=ClusterSettings(node_id, lease_ttl=30.0, poll_interval=0.2),
        download_sources=[DownloadSource("s", impl, concurrency=3)],
        name=f"board-{node_id}",
    )


@pytest.mark.timeout(120)
def test_two_nodes_end_every_download_once_while_workers_die_and_limits_change(
    pg_url: str,
) -> None:
    impl = Runs()
    a, b = _node(pg_url, "a", impl), _node(pg_url, "b", impl)
    with a, b:
        probe = Probe(b, ChildFailed)
        ids = [a.downloads.submit("s", "t", f"d{i}") for i in range(200)]
        FaultInjector(b).kill("source:s.worker-2")
        probe.expect(ChildFailed, timeout=10, name="source:s.worker-2")
        b.downloads.configure("s", concurrency=1)
        a.downloads.configure("s", concurrency=5)
        b.downloads.configure("s", concurrency=3)
        FaultInjector(a).kill("source:s.worker-1")
        states = {d: a.downloads.wait(d, 60).state for d in ids}
        probe.close()
    ended = Counter(states.values())
    assert set(ended) <= {DownloadState.SUCCEEDED, DownloadState.ERRORED}
    assert ended[DownloadState.ERRORED] <= 2  # at most the runs of the killed workers
    assert set(impl.overlap.values()) == {1}
    assert set(impl.runs.values()) == {1}
    assert len(impl.runs) == 200
