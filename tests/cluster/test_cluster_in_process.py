"""Cluster mode, fast checks with two nodes (two ``ActorSystem``s) in the test process."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import (
    DownloadSettings,
    DownloadSource,
    HttpSource,
    UnknownDownloadError,
)
from regisseur.messages.downloads import DownloadProgressed, DownloadState, DownloadStateChanged
from regisseur.supervision import ChildSpec, StartupError
from tests.downloads.conftest import HttpServer, sha256
from tests.downloads.test_disk_full import BODY, KEPT, _Disk

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


class _FailsFirst:
    """An impl that fails each download's first run; records every run's claim."""

    def __init__(self) -> None:
        self.claims: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str:
        with self.lock:
            runs = self.claims.setdefault(download_id, [])
            runs.append(ctx.claim)
            first = len(runs) == 1
        if first:
            msg = "disk full"
            raise OSError(28, msg)
        return f"/done/{target_id}"


@pytest.mark.timeout(60)
def test_a_retry_on_any_node_runs_the_errored_download_again_where_its_source_is(
    pg_url: str,
) -> None:
    impl = _FailsFirst()
    worker = _node(pg_url, "w", download_sources=[DownloadSource("flaky", impl)])
    front = _node(pg_url, "f")  # serves no source: the row is claimed by "w"
    with _running(worker, front):
        download_id = front.downloads.submit("flaky", "t1", "one")
        failed = front.downloads.wait(download_id, timeout=20)
        assert failed.state is DownloadState.ERRORED
        assert "disk full" in (failed.error or "")
        seen: list[tuple[DownloadState | None, DownloadState]] = []
        reopened = threading.Event()

        def watch(event: object) -> None:
            if isinstance(event, DownloadStateChanged) and event.record.id == download_id:
                seen.append((event.previous, event.record.state))
                if event.record.state is DownloadState.INITIALIZING:
                    reopened.set()

        subscription = worker.downloads.subscribe(watch)
        try:
            assert front.downloads.retry(download_id) is True
            record = front.downloads.wait(download_id, timeout=20)
            assert reopened.wait(10)  # the other node heard the reopening too
        finally:
            subscription.cancel()
        assert record.state is DownloadState.SUCCEEDED
        assert record.file_path == "/done/t1"
        assert record.error is None
        first, second = impl.claims[download_id]
        assert second > first  # a new claim: the first run's late writes stay fenced
        assert (DownloadState.ERRORED, DownloadState.INITIALIZING) in seen
        # Both nodes answer with the stored end (neither keeps the old Errored).
        assert worker.downloads.status(download_id) == front.downloads.status(download_id)
        assert worker.downloads.status(download_id).state is DownloadState.SUCCEEDED


@pytest.mark.timeout(60)
def test_a_cluster_retry_is_taken_once_and_refused_plainly_otherwise(pg_url: str) -> None:
    release = threading.Event()
    started = threading.Event()

    def impl(download_id: str, target_id: str, name: str) -> str:
        if target_id == "fails":
            msg = "no such file on the server"
            raise RuntimeError(msg)
        if target_id == "held":
            started.set()
            assert release.wait(20)
        return f"/done/{target_id}"

    a = _node(pg_url, "a", download_sources=[DownloadSource("src", impl, concurrency=2)])
    b = _node(pg_url, "b")
    with _running(a, b):
        failed = b.downloads.submit("src", "fails", "x")
        assert b.downloads.wait(failed, timeout=20).state is DownloadState.ERRORED
        succeeded = b.downloads.submit("src", "fine", "y")
        assert b.downloads.wait(succeeded, timeout=20).state is DownloadState.SUCCEEDED
        held = b.downloads.submit("src", "held", "z")
        assert started.wait(20)
        try:
            # Running: nothing to do, from either node.
            assert a.downloads.retry(held) is False
            assert b.downloads.retry(held) is False
            with pytest.raises(ValueError, match="only an errored or cancelled"):
                b.downloads.retry(succeeded)
            with pytest.raises(UnknownDownloadError):
                b.downloads.retry("no-such-download")
            # Two nodes retry one download: one reopens it, the other finds it
            # reopened (or already run again and failed: then it may reopen it).
            results = [a.downloads.retry(failed), b.downloads.retry(failed)]
            assert results[0] is True
            assert b.downloads.wait(failed, timeout=20).state is DownloadState.ERRORED
        finally:
            release.set()
        assert b.downloads.wait(held, timeout=20).state is DownloadState.SUCCEEDED


@pytest.mark.timeout(60)
def test_a_cluster_retry_resumes_the_part_a_full_disk_kept(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node that serves the source claims the reopened row and resumes
    its ``.part`` with a ``Range`` request (before: retry refused, the
    download submitted anew from byte 0)."""
    disk = _Disk(monkeypatch)
    server = HttpServer()
    try:
        url = server.file("/big.bin", BODY, etag='"v1"')
        source = HttpSource(directory=tmp_path, retries=0)
        worker = _node(pg_url, "w", download_sources=[source])
        front = _node(pg_url, "f")
        with _running(worker, front):
            download_id = front.downloads.submit(
                "http", url, "big.bin", extra={"sha256": sha256(BODY)}
            )
            failed = front.downloads.wait(download_id, timeout=20)
            assert failed.state is DownloadState.ERRORED
            found = KEPT.search(failed.error or "")
            assert found is not None, failed.error
            disk.error = None
            assert front.downloads.retry(download_id) is True
            done = front.downloads.wait(download_id, timeout=20)
            assert done.state is DownloadState.SUCCEEDED, done.error
            assert Path(done.file_path or "").read_bytes() == BODY
            assert server.seen("/big.bin")[1].headers["Range"] == f"bytes={found.group(1)}-"
    finally:
        server.close()


def _deliver_late(system: ActorSystem, payload: str) -> None:
    """Hand the node's keeper a change notice as its listener thread would,
    later than the changes committed after it (a listener that lags)."""
    from regisseur.actors._pykka import Envelope
    from regisseur.actors.downloads.cluster_keeper import KEEPER, ClusterNote
    from regisseur.actors.downloads.cluster_store import CHANNEL

    keeper = system.registry.find(KEEPER)
    assert keeper is not None
    keeper.mailbox.put(Envelope(ClusterNote(CHANNEL, payload)))


@pytest.mark.timeout(60)
def test_a_late_notice_of_the_earlier_runs_end_does_not_end_the_retried_run(
    pg_url: str,
) -> None:
    """Before retry, an ended row never ran again, so a notice of its end was
    never stale. Now a node can reopen a row (reading its end from the table)
    while the notice of that end, from the node that ran it, is still on its
    way: the node then took it for a cancel elsewhere and dropped its own new
    run (the row left In progress, owned by a node that no longer runs it),
    and its ``wait()`` answered the old Errored record."""
    from regisseur.actors.downloads.cluster_store import change_payload

    started = threading.Event()
    release = threading.Event()
    runs: list[str] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        runs.append(download_id)
        if len(runs) == 1:
            msg = "the first run fails"
            raise RuntimeError(msg)
        started.set()
        assert release.wait(20)
        return f"/done/{target_id}"

    with _running(_node(pg_url, "w1", download_sources=[DownloadSource("src", impl)])) as (w1,):
        download_id = w1.downloads.submit("src", "t", "x")
        ended = w1.downloads.wait(download_id, timeout=20)
    assert ended.state is DownloadState.ERRORED
    # What node w1 announced as that run ended.
    payload = change_payload(ended, DownloadState.IN_PROGRESS, "w1", owner=None)
    ends: list[DownloadState] = []

    def watch(event: object) -> None:
        if isinstance(event, DownloadStateChanged) and event.record.terminal:
            ends.append(event.record.state)

    with _running(_node(pg_url, "a", download_sources=[DownloadSource("src", impl)])) as (a,):
        subscription = a.downloads.subscribe(watch)
        try:
            assert a.downloads.retry(download_id) is True  # read from the table
            assert started.wait(20)  # claimed and run here
            _deliver_late(a, payload)
            assert not a.downloads.status(download_id).terminal
        finally:
            release.set()
        done = a.downloads.wait(download_id, timeout=20)
        assert done.state is DownloadState.SUCCEEDED, done
        assert done.file_path == "/done/t"
        # Later still, after the new run's end: neither the old end nor a
        # second announcement of the new one.
        _deliver_late(a, payload)
        assert a.downloads.status(download_id) == done
        a.settle(10)
        subscription.cancel()
    assert ends == [DownloadState.SUCCEEDED]


@pytest.mark.timeout(60)
def test_a_cluster_retry_is_claimed_ahead_of_the_free_rows_submitted_after_it(
    pg_url: str,
) -> None:
    """What the README says: the reopened row keeps its place in the submit
    order, and claims take the oldest free rows first, so it runs before the
    backlog of downloads submitted before the retry that no node has claimed
    yet (a process without a cluster queues a retry behind them, as a new
    submit). Before, the README said "like a submit" for both."""
    hold = threading.Event()
    held = threading.Event()
    order: list[str] = []
    lock = threading.Lock()

    def impl(download_id: str, target_id: str, name: str) -> str:
        with lock:
            order.append(target_id)
            again = order.count(target_id) > 1
        if target_id == "first" and not again:
            msg = "the first run fails"
            raise RuntimeError(msg)
        if target_id == "blocker":
            held.set()
            assert hold.wait(20)
        return f"/done/{target_id}"

    # One runs at a time; the node claims at most one more to wait beside it.
    source = DownloadSource("one", impl, concurrency=1)
    with _running(_node(pg_url, "a", download_sources=[source])) as (a,):
        first = a.downloads.submit("one", "first", "f")
        assert a.downloads.wait(first, timeout=20).state is DownloadState.ERRORED
        blocker = a.downloads.submit("one", "blocker", "b")
        assert held.wait(20)
        try:
            backlog = [a.downloads.submit("one", f"later{i}", f"l{i}") for i in range(3)]
            assert a.downloads.retry(first) is True
        finally:
            hold.set()
        for download_id in (blocker, *backlog, first):
            assert a.downloads.wait(download_id, timeout=20).state is DownloadState.SUCCEEDED
    again = order.index("first", 1)
    # later0 may have been claimed before the retry (the one waiting beside
    # the blocker); the two behind it were still free, and come after.
    assert again < order.index("later1") < order.index("later2"), order
