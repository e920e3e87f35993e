"""Cluster mode, fast checks with two nodes (two ``ActorSystem``s) in the test process."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSettings, DownloadSource
from regisseur.messages.downloads import DownloadProgressed, DownloadState
from regisseur.supervision import ChildSpec, StartupError

if TYPE_CHECKING:
    from collections.abc import Iterator


def _node(
    url: str,
    node_id: str,
    children: list[ChildSpec] | None = None,
    *,
    lease_ttl: float = 3.0,
    name: str | None = None,
    **kw: Any,
) -> ActorSystem:
    return ActorSystem(
        children or [],
        database_url=url,
        cluster=ClusterSettings(node_id, lease_ttl=lease_ttl, poll_interval=0.5),
        name=name or f"sys-{node_id}",
        **kw,
    )


@contextlib.contextmanager
def _running(*systems: ActorSystem) -> Iterator[tuple[ActorSystem, ...]]:
    started: list[ActorSystem] = []
    try:
        for system in systems:
            system.start()
            started.append(system)
        yield systems
    finally:
        for system in reversed(started):
            system.stop()


def _ids(system: ActorSystem) -> list[str]:
    assert system.cluster is not None
    return [n.node_id for n in system.cluster.nodes()]


@pytest.mark.timeout(30)
def test_a_node_id_in_use_by_a_live_node_fails_the_start(pg_url: str) -> None:
    with _running(_node(pg_url, "a")) as (first,):
        second = _node(pg_url, "a", name="other")
        with pytest.raises(StartupError) as caught:
            second.start()
        text = str(caught.value)
        assert caught.value.child == "cluster node"
        assert "'a'" in text and "in use by a live node" in text, text
        assert not second.running
        assert second.threads() == []
        assert first.running
        assert _ids(first) == ["a"]


@pytest.mark.timeout(30)
def test_nodes_health_and_a_clean_stop(pg_url: str) -> None:
    a, b = _node(pg_url, "a"), _node(pg_url, "b")
    with _running(a, b):
        assert a.cluster is not None and b.cluster is not None
        infos = {n.node_id: n for n in a.cluster.nodes()}
        assert sorted(infos) == ["a", "b"]
        assert infos["a"].this_node and not infos["b"].this_node
        assert [n.node_id for n in b.cluster.nodes() if n.this_node] == ["b"]
        assert all(0 < n.expires_in <= 3.0 for n in infos.values())
        assert all(n.downloads == 0 and n.claims == () for n in infos.values())

        health = a.health()
        reports = {r.name: r for r in health.children}
        report = reports["cluster node a"]
        assert report.healthy and report.status == "running"
        assert report.details["node_id"] == "a"
        assert report.details["listening"] is True
        assert report.details["nodes"] == ["a", "b"]
        assert health.healthy

        b.stop()
        assert _ids(a) == ["a"]  # at once: a clean stop removes the node's row
        assert "cluster node b" not in {r.name for r in b.health().children}


@pytest.mark.timeout(30)
def test_a_download_submitted_on_one_node_runs_on_the_other(pg_url: str) -> None:
    ran: list[str] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        ran.append(download_id)
        return f"/done/{target_id}"

    worker = _node(pg_url, "w", download_sources=[DownloadSource("noop", impl)])
    front = _node(pg_url, "f")
    with _running(worker, front):
        download_id = front.downloads.submit("noop", "t1", "one")
        record = front.downloads.wait(download_id, timeout=10)
        assert record.state is DownloadState.SUCCEEDED
        assert record.file_path == "/done/t1"
        assert ran == [download_id]
        assert worker.downloads.status(download_id) == front.downloads.status(download_id)


@pytest.mark.timeout(30)
def test_progress_of_a_download_on_another_node_reaches_subscribers(pg_url: str) -> None:
    release = threading.Event()
    heard = threading.Event()
    seen: list[DownloadProgressed] = []

    def impl(download_id: str, target_id: str, name: str, context: Any) -> str:
        context.report(60, 100)  # the first report is never held back by the throttle
        if not release.wait(10):
            raise TimeoutError("the test never released the download")
        return f"/done/{target_id}"

    def on_progress(event: object) -> None:
        if isinstance(event, DownloadProgressed) and event.record.transferred == 60:
            seen.append(event)
            heard.set()

    worker = _node(
        pg_url,
        "w",
        download_sources=[DownloadSource("slow", impl)],
        downloads=DownloadSettings(flush_interval=0.05),
    )
    front = _node(pg_url, "f")
    with _running(worker, front):
        front.downloads.subscribe(on_progress)
        download_id = front.downloads.submit("slow", "t1", "one")
        try:
            assert heard.wait(10), "no progress event from the node running the download"
        finally:
            release.set()
        assert seen[0].record.id == download_id
        assert seen[0].record.size == 100
        assert front.downloads.wait(download_id, timeout=10).state is DownloadState.SUCCEEDED


class _Probe(Actor):
    def __init__(self, starts: list[str], started: threading.Event, node: str) -> None:
        super().__init__()
        self._starts, self._started, self._node = starts, started, node

    def on_start(self) -> None:
        self._starts.append(self._node)
        self._started.set()


@pytest.mark.timeout(30)
def test_a_singleton_runs_on_one_node_and_moves_on_a_clean_stop(pg_url: str) -> None:
    starts: list[str] = []
    started = threading.Event()

    def spec(node: str) -> ChildSpec:
        return ChildSpec("solo", _Probe, args=(starts, started, node), singleton=True)

    a = _node(pg_url, "a", [spec("a")], lease_ttl=6.0)
    b = _node(pg_url, "b", [spec("b")], lease_ttl=6.0)
    with _running(a, b):
        assert started.wait(10)
        assert a.cluster is not None
        # The claim is committed before the child is spawned.
        holder = a.cluster.singleton_node("solo")
        assert starts == [holder]
        first, second = (a, b) if holder == "a" else (b, a)
        started.clear()
        first.stop()
        assert started.wait(2.0), "the singleton did not move within 2s of a clean stop"
        assert starts == [holder, second.cluster.node_id]  # type: ignore[union-attr]
        assert second.cluster.singleton_node("solo") == second.cluster.node_id  # type: ignore[union-attr]


@pytest.mark.timeout(60)
def test_nodes_starting_at_once_on_a_fresh_database_all_start(pg_url: str) -> None:
    # Every node creates the tables it needs; a check-then-create raced when
    # several started together ("relation regisseur_events already exists").
    systems = [_node(pg_url, f"n{i}") for i in range(6)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(systems))

    def start(system: ActorSystem) -> None:
        barrier.wait(10)
        try:
            system.start()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in systems]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == []
        assert all(s.running for s in systems)
        assert systems[0].cluster is not None
        assert len(systems[0].cluster.nodes()) == len(systems)
    finally:
        for system in systems:
            system.stop()


@pytest.mark.timeout(30)
def test_retry_is_refused_plainly_in_cluster_mode(pg_url: str) -> None:
    """Not implemented there: a clear error, and the download is left as it was."""
    with _running(_node(pg_url, "a")) as (node,):
        with pytest.raises(NotImplementedError, match="retry is not available in cluster mode"):
            node.downloads.retry("some-download")
