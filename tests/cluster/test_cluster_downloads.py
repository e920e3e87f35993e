"""Cluster mode, downloads across node processes sharing one PostgreSQL database.

Each test runs nodes as child processes (``tests/cluster/node_child.py``,
started and always stopped by ``helpers.nodes``) and the test process as a
client node without sources (``helpers.client``). What the nodes did is
read back from their ``runs.log``/``spans.log``, the result files and the
downloads table itself.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.messages.downloads import DownloadState, DownloadStateChanged
from tests.cluster.helpers import (
    client,
    max_overlap,
    nodes,
    run_counts,
    runs,
    spans,
    table,
    wait_until,
)

if TYPE_CHECKING:
    from pathlib import Path

SUCCEEDED = DownloadState.SUCCEEDED
IN_PROGRESS = DownloadState.IN_PROGRESS
CANCELLED = DownloadState.CANCELLED


def _submit(system: ActorSystem, count: int, prefix: str = "t") -> dict[str, str]:
    """Submit ``count`` noop downloads; ``download_id -> target_id``."""
    submitted = {}
    for i in range(count):
        target = f"{prefix}{i:04d}"
        submitted[system.downloads.submit("noop", target, f"file {target}")] = target
    return submitted


def _check_results(out: Path, submitted: dict[str, str]) -> None:
    for download_id, target in submitted.items():
        path = out / target
        assert path.is_file(), f"no result file for {download_id} ({target})"
        assert path.read_text(encoding="utf-8") == target


# -- construction errors (no server needed) --------------------------------------------------


@pytest.mark.timeout(10)
def test_cluster_mode_refuses_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match=r"cluster mode needs PostgreSQL.*'sqlite'"):
        ActorSystem([], database_url=url, cluster=True, node_id="a")
    with pytest.raises(ValueError, match=r"cluster mode needs PostgreSQL"):
        ActorSystem([], database_url=url, cluster=ClusterSettings("a"))
    assert not (tmp_path / "x.db").exists()


@pytest.mark.timeout(10)
def test_cluster_mode_refuses_no_database() -> None:
    with pytest.raises(ValueError, match=r"cluster mode needs a PostgreSQL database_url"):
        ActorSystem([], database_url=None, cluster=True, node_id="a")


@pytest.mark.timeout(10)
def test_node_id_without_cluster_mode_is_refused() -> None:
    with pytest.raises(ValueError, match=r"node_id is only used in cluster mode"):
        ActorSystem([], database_url=None, node_id="a")


@pytest.mark.timeout(10)
def test_node_id_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"node_id either to ActorSystem or to ClusterSettings"):
        ActorSystem(
            [],
            database_url="postgresql+psycopg://u@127.0.0.1/db",
            cluster=ClusterSettings("a"),
            node_id="b",
        )


@pytest.mark.timeout(10)
def test_cluster_mode_refuses_another_postgres_driver() -> None:
    with pytest.raises(ValueError, match=r"psycopg 3 driver"):
        ActorSystem(
            [], database_url="postgresql+psycopg2://u@127.0.0.1/db", cluster=True, node_id="a"
        )


# -- work spread over node processes ---------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("count", [2, 3])
def test_downloads_from_a_client_run_once_on_several_nodes(
    pg_url: str, tmp_path: Path, count: int
) -> None:
    names = ["a", "b", "c"][:count]
    with nodes(pg_url, tmp_path, names, work_ms=20), client(pg_url) as system, table(pg_url) as db:
        submitted = _submit(system, 200)
        wait_until(
            lambda: db.count(f"state = '{SUCCEEDED.value}'") == 200, 60, "200 Succeeded rows"
        )
        records = system.downloads.list(source="noop")
        assert {r.id for r in records} == set(submitted)
        assert {r.state for r in records} == {SUCCEEDED}
        assert all(row.owner is None for row in db.rows())

    counts = run_counts(tmp_path)
    assert set(counts) == set(submitted)
    twice = {i: n for i, n in counts.items() if n != 1}
    assert not twice, f"downloads run more than once: {twice}"
    workers = {node for _id, node in runs(tmp_path)}
    assert len(workers) > 1, f"only {workers} did any work"
    assert workers <= set(names)
    _check_results(tmp_path, submitted)


@pytest.mark.timeout(90)
def test_a_killed_nodes_downloads_run_again_elsewhere(pg_url: str, tmp_path: Path) -> None:
    with (
        nodes(pg_url, tmp_path, ["a", "b", "c"], work_ms=200, lease_ttl=1.5) as started,
        client(pg_url) as system,
        table(pg_url) as db,
    ):
        submitted = _submit(system, 60)
        # Kill b while it is busy: right after it started a few downloads.
        wait_until(
            lambda: sum(1 for _id, node in runs(tmp_path) if node == "b") >= 3,
            30,
            "node b to start downloads",
        )
        started["b"].kill()
        killed_at = time.monotonic()
        ran_on_b = [i for i, node in runs(tmp_path) if node == "b"]
        # b is dead: a download it started without writing its file never finished there.
        in_flight = {i for i in ran_on_b if not (tmp_path / submitted[i]).exists()}
        assert in_flight, "b had no download in flight when it was killed"

        gone = wait_until(
            lambda: "b" not in {n.node_id for n in system.cluster.nodes()},
            10,
            "the killed node to leave nodes()",
        )
        assert gone
        reaped_after = time.monotonic() - killed_at
        wait_until(lambda: db.count(f"state = '{SUCCEEDED.value}'") == 60, 60, "60 Succeeded rows")
        rows = db.rows()
        assert sorted(r.id for r in rows) == sorted(submitted)
        assert all(r.state == SUCCEEDED.value and r.owner is None for r in rows)
        assert {n.node_id for n in system.cluster.nodes()} == {"a", "c", "client"}
        assert all(r.state is SUCCEEDED for r in system.downloads.list())

    assert reaped_after < 1.5 + 2.0, f"the dead node stayed listed {reaped_after:.1f}s"
    counts = run_counts(tmp_path)
    assert set(counts) == set(submitted)
    assert all(1 <= n <= 2 for n in counts.values()), counts
    again = {i for i, n in counts.items() if n == 2}
    assert in_flight <= again, f"in flight on b but not run again: {in_flight - again}"
    assert again <= set(ran_on_b), f"run twice though b never ran them: {again - set(ran_on_b)}"
    log = runs(tmp_path)
    for download_id in again:
        by = [node for i, node in log if i == download_id]
        assert by[0] == "b" and by[1] in {"a", "c"}, (download_id, by)
    _check_results(tmp_path, submitted)


# -- one node's download seen and cancelled from another ----------------------------------------


@pytest.mark.timeout(60)
def test_cancel_from_another_node_reaches_the_running_impl(pg_url: str, tmp_path: Path) -> None:
    with nodes(pg_url, tmp_path, ["a"]), client(pg_url) as system, table(pg_url) as db:
        download_id = system.downloads.submit("noop", "hold-1", "held")
        wait_until(lambda: run_counts(tmp_path)[download_id] == 1, 20, "the impl to start on a")
        wait_until(
            lambda: system.downloads.status(download_id).state is IN_PROGRESS,  # type: ignore[union-attr]
            10,
            "the client to see it InProgress",
        )
        asked = time.monotonic()
        assert system.downloads.cancel(download_id) is True
        record = system.downloads.status(download_id)
        assert record is not None and record.state is CANCELLED
        marker = tmp_path / "cancelled-hold-1"
        wait_until(marker.exists, 5, "the impl on node a to see the cancel")
        seen_after = time.monotonic() - asked
        assert marker.read_text(encoding="utf-8") == "a\n"
        assert system.downloads.cancel(download_id) is False
        # The impl returned None after the cancel: the record stays Cancelled.
        assert system.downloads.wait(download_id, timeout=5).state is CANCELLED
        rows = db.rows()
        assert [(r.id, r.state, r.owner) for r in rows] == [(download_id, CANCELLED.value, None)]
    assert seen_after < 1.5, f"the running impl saw the cancel only after {seen_after:.2f}s"
    assert not (tmp_path / "hold-1").exists()


@pytest.mark.timeout(60)
def test_client_sees_status_list_wait_and_events_of_another_node(
    pg_url: str, tmp_path: Path
) -> None:
    events: list[DownloadStateChanged] = []
    lock = threading.Lock()

    def collect(event: Any) -> None:
        if isinstance(event, DownloadStateChanged):
            with lock:
                events.append(event)

    def states(download_id: str) -> list[DownloadState]:
        with lock:
            return [e.record.state for e in events if e.record.id == download_id]

    with nodes(pg_url, tmp_path, ["a"], work_ms=50), client(pg_url) as system:
        subscription = system.downloads.subscribe(collect, progress=False)
        try:
            held = system.downloads.submit("noop", "hold-s", "held")
            wait_until(
                lambda: system.downloads.status(held).state is IN_PROGRESS,  # type: ignore[union-attr]
                20,
                "the held download to run on a",
            )
            assert held in {r.id for r in system.downloads.list(states=IN_PROGRESS)}
            wait_until(lambda: IN_PROGRESS in states(held), 5, "an InProgress event on the client")
            quick = _submit(system, 5, prefix="q")
            for download_id in quick:
                record = system.downloads.wait(download_id, timeout=20)
                assert record.state is SUCCEEDED
                assert record.file_path == str(tmp_path / quick[download_id])
            (tmp_path / "open-hold-s").write_text("", encoding="utf-8")
            final = system.downloads.wait(held, timeout=20)
            assert final.state is SUCCEEDED
            assert final.file_path == str(tmp_path / "hold-s")
            listed = {r.id: r.state for r in system.downloads.list(source="noop")}
            assert listed == {i: SUCCEEDED for i in [held, *quick]}
            for download_id in [held, *quick]:
                wait_until(
                    lambda i=download_id: SUCCEEDED in states(i),
                    5,
                    f"Succeeded event of {download_id}",
                )
                seen = states(download_id)
                # Initializing: the client's own submit; the rest came from node a.
                assert seen == [DownloadState.INITIALIZING, IN_PROGRESS, SUCCEEDED], seen
            with lock:
                ended = [e for e in events if e.record.id == held and e.record.terminal]
            assert ended[0].previous is IN_PROGRESS
        finally:
            subscription.cancel()
    _check_results(tmp_path, {held: "hold-s", **quick})


# -- a source's limit across nodes ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cluster_limit_holds_across_nodes(pg_url: str, tmp_path: Path) -> None:
    total = 24
    peak = 0

    def sample() -> bool:
        nonlocal peak
        peak = max(peak, db.count(f"state = '{IN_PROGRESS.value}'"))
        return db.count(f"state = '{SUCCEEDED.value}'") == total

    with (
        nodes(pg_url, tmp_path, ["a", "b"], concurrency=4, cluster_limit=3, work_ms=100),
        client(pg_url) as system,
        table(pg_url) as db,
    ):
        submitted = _submit(system, total)
        wait_until(sample, 60, f"{total} Succeeded rows")
    assert 1 <= peak <= 3, f"{peak} downloads InProgress at once (cluster_limit 3)"
    overlap = max_overlap([(start, end) for _i, _n, start, end in spans(tmp_path)])
    assert 2 <= overlap <= 3, f"{overlap} impls ran at once (cluster_limit 3)"
    assert set(run_counts(tmp_path)) == set(submitted)
    _check_results(tmp_path, submitted)


# -- a node that goes away cleanly, or comes back under its own id -------------------------------


@pytest.mark.timeout(60)
def test_a_clean_stop_hands_unfinished_downloads_to_the_others(pg_url: str, tmp_path: Path) -> None:
    with (
        nodes(pg_url, tmp_path, ["a", "b"], work_ms=300, lease_ttl=10.0) as started,
        client(pg_url, lease_ttl=10.0) as system,
        table(pg_url) as db,
    ):
        submitted = _submit(system, 24)
        wait_until(
            lambda: sum(1 for _id, node in runs(tmp_path) if node == "b") >= 2,
            30,
            "node b to start downloads",
        )
        stopped_at = time.monotonic()
        assert started["b"].terminate() == 0
        stop_took = time.monotonic() - stopped_at
        assert "b" not in {n.node_id for n in system.cluster.nodes()}
        # Well within the lease ttl (10 s): nothing waits for b's lease to run out.
        wait_until(lambda: db.count(f"state = '{SUCCEEDED.value}'") == 24, 8, "24 Succeeded rows")
        rows = db.rows()
        assert all(r.state == SUCCEEDED.value and r.owner is None for r in rows)
    assert stop_took < 5, f"b took {stop_took:.1f}s to stop"
    log = runs(tmp_path)
    counts = run_counts(tmp_path)
    assert set(counts) == set(submitted)
    for download_id, n in counts.items():
        by = [node for i, node in log if i == download_id]
        assert n == 1 or (n == 2 and by == ["b", "a"]), (download_id, by)
    _check_results(tmp_path, submitted)


@pytest.mark.timeout(60)
def test_a_killed_node_restarted_under_its_id_takes_its_downloads_back(
    pg_url: str, tmp_path: Path
) -> None:
    ttl = 30.0  # the restart must not wait for the dead node's lease
    with (
        nodes(pg_url, tmp_path, ["b"], work_ms=300, lease_ttl=ttl) as started,
        client(pg_url, lease_ttl=ttl) as system,
        table(pg_url) as db,
    ):
        submitted = _submit(system, 8)
        wait_until(lambda: len(runs(tmp_path)) >= 2, 30, "node b to start downloads")
        started["b"].kill()
        in_flight = {i for i, _n in runs(tmp_path) if not (tmp_path / submitted[i]).exists()}
        assert in_flight
        with nodes(pg_url, tmp_path, ["b"], work_ms=300, lease_ttl=ttl) as again:
            assert again["b"].alive()
            wait_until(
                lambda: db.count(f"state = '{SUCCEEDED.value}'") == 8, 20, "8 Succeeded rows"
            )
            assert [n.node_id for n in system.cluster.nodes()] == ["b", "client"]
    counts = run_counts(tmp_path)
    assert set(counts) == set(submitted)
    assert {i for i, n in counts.items() if n == 2} >= in_flight
    _check_results(tmp_path, submitted)
