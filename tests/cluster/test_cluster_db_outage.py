"""Nodes ride out a restart of PostgreSQL, and an outage longer than the lease.

The tests start their own throwaway server (the session's server is shared)
and take it down with ``pg_ctl stop -m immediate`` or SIGKILL (every
connection cut at once). Checked: the node keeps its lease, hears other
nodes again, the keeper's reads recover at once and its health says when
the database is unreachable; after an outage longer than the lease every
download ends exactly once, Succeeded, published once, never run by two
nodes at once, nothing left InProgress.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import PendingRollbackError

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages.downloads import DownloadState
from tests.cluster.helpers import client, concurrent_runs, nodes, spans, table, wait_until
from tests.cluster.pg import PostgresServer
from tests.downloads.conftest import HttpServer, Request

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.cluster.helpers import NodeProcess, Table

WAIT = 30.0
LEASE = 1.5
SUCCEEDED = DownloadState.SUCCEEDED.value


@pytest.fixture(scope="module")
def own_pg(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    """A throwaway server of this module's own: its tests take it down."""
    if pg_server.external:
        pytest.skip("needs a throwaway PostgreSQL server to stop (REGISSEUR_PG_URL is set)")
    with PostgresServer() as own:
        yield own


def _durable_database(server: PostgresServer) -> str:
    """A fresh database that commits durably (an immediate stop is a crash)."""
    url = server.create_database()
    engine = create_engine(url)
    with engine.begin() as connection:
        name = make_url(url).database
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = on'))
    engine.dispose()
    return url


def _fenced(node: NodeProcess) -> bool:
    return "cluster_node_fenced" in node.stderr()


def _fence_counts(started: dict[str, NodeProcess]) -> str:
    """How often each node fenced itself (for a failure message)."""
    return ", ".join(
        f"{name} fenced {node.stderr().count('cluster_node_fenced')}x"
        for name, node in started.items()
    )


def _outage(server: PostgresServer, started: dict[str, NodeProcess], *, kill: bool) -> float:
    """Take the server down until every node fenced itself and twice the lease
    has passed; returns how long it was down."""
    down = time.monotonic()
    server.halt(kill=kill)
    wait_until(
        lambda: all(_fenced(n) for n in started.values()) and time.monotonic() - down > 2 * LEASE,
        WAIT,
        "every node to fence itself, the database down for twice the lease",
    )
    server.resume()
    return time.monotonic() - down


def _counts(db: Table, out: Path | None = None) -> dict[str, int]:
    """What the outage tests assert (and the benchmark prints)."""
    rows = db.rows()
    published: dict[str, int] = {}
    for download_id, _node, _s, _e in spans(out) if out is not None else ():
        published[download_id] = published.get(download_id, 0) + 1
    return {
        "rows": len(rows),
        "succeeded": sum(1 for r in rows if r.state == SUCCEEDED),
        "errored": sum(1 for r in rows if r.state == DownloadState.ERRORED.value),
        "unfinished": sum(1 for r in rows if r.state not in (SUCCEEDED, "Errored", "Cancelled")),
        "published_twice": sum(1 for n in published.values() if n > 1),
        "concurrent_runs": len(concurrent_runs(out)) if out is not None else 0,
    }


def _noop(download_id: str, target_id: str, name: str) -> str:
    return f"/done/{target_id}"


@pytest.mark.timeout(120)
def test_a_node_rides_out_a_restart_of_the_database(pg_server: PostgresServer) -> None:
    if pg_server.external:
        pytest.skip("needs a throwaway PostgreSQL server to restart (REGISSEUR_PG_URL is set)")
    with PostgresServer() as own:
        url = own.create_database()
        # The test server trades durability for speed (synchronous_commit off);
        # an immediate stop is a crash, so this database commits durably.
        engine = create_engine(url)
        with engine.begin() as connection:
            name = make_url(url).database
            connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = on'))
        engine.dispose()
        node = ActorSystem(
            database_url=url,
            cluster=ClusterSettings("a", lease_ttl=3.0, poll_interval=0.3),
            download_sources=[DownloadSource("noop", _noop, concurrency=2)],
            name="outage-a",
        )
        with node:
            before = [node.downloads.submit("noop", f"b{i}", f"b{i}") for i in range(5)]
            for download_id in before:
                assert node.downloads.wait(download_id, WAIT).state is DownloadState.SUCCEEDED

            own.restart()

            # The first writes after the cut fail and are retried from memory.
            after = [node.downloads.submit("noop", f"a{i}", f"a{i}") for i in range(5)]
            for download_id in after:
                record = node.downloads.wait(download_id, WAIT)
                assert record.state is DownloadState.SUCCEEDED, record.error
            assert node.cluster is not None
            wait_until(lambda: node.healthy, WAIT, "the node healthy again (lease, listener)")
            assert [n.node_id for n in node.cluster.nodes()] == ["a"]
            assert len(node.downloads.list(states=[DownloadState.SUCCEEDED])) == 10

            # Another node joining after the outage shares the work with it.
            other = ActorSystem(
                database_url=url,
                cluster=ClusterSettings("b", lease_ttl=3.0, poll_interval=0.3),
                name="outage-b",
            )
            with other:
                late = other.downloads.submit("noop", "late", "late")
                assert other.downloads.wait(late, WAIT).state is DownloadState.SUCCEEDED


@pytest.mark.timeout(90)
def test_reads_recover_at_once_after_a_restart_and_health_says_when_down(
    own_pg: PostgresServer,
) -> None:
    url = _durable_database(own_pg)
    node = ActorSystem(
        database_url=url,
        cluster=ClusterSettings("reader", lease_ttl=LEASE, poll_interval=0.2),
        download_sources=[DownloadSource("noop", _noop, concurrency=2)],
        name="outage-reader",
    )
    with node:
        done = [node.downloads.submit("noop", f"r{i}", f"r{i}") for i in range(3)]
        for download_id in done:
            assert node.downloads.wait(download_id, WAIT).state is DownloadState.SUCCEEDED
        errors: list[BaseException] = []

        def read() -> bool:
            try:
                listed = node.downloads.list()
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                errors.append(exc)
                return False
            return len(listed) == 3

        own_pg.halt(kill=False)
        try:
            assert not read(), "list() answered although the database is down"
            wait_until(lambda: _keeper_health(node)["database"] != "ok", WAIT, "db unhealthy")
            assert not node.healthy
        finally:
            own_pg.resume()
        back = time.monotonic()
        wait_until(read, 10, "list() to answer again")
        recovered = time.monotonic() - back
        assert not [e for e in errors if isinstance(e, PendingRollbackError)], errors
        assert recovered < 5.0, f"reads failed for {recovered:.1f}s after the restart"
        record = node.downloads.status(done[0])
        assert record is not None and record.state is DownloadState.SUCCEEDED
        wait_until(lambda: _keeper_health(node)["database"] == "ok", WAIT, "db healthy again")
        wait_until(lambda: node.healthy, WAIT, "the node healthy again")


def _keeper_health(system: ActorSystem) -> dict[str, Any]:
    def find(report: Any) -> Any:
        if report.name == "download-keeper":
            return report
        for child in report.children:
            found = find(child)
            if found is not None:
                return found
        return None

    report = find(system.health())
    assert report is not None, "no download-keeper in the health tree"
    details = report.details
    return dict(details) if isinstance(details, dict) else {"database": str(details)}


def noop_outage(server: PostgresServer, out: Path, *, total: int, kill: bool) -> dict[str, int]:
    """``total`` no-op downloads on two node processes through an outage; the counts."""
    url = _durable_database(server)
    options = {"lease_ttl": LEASE, "poll_interval": 0.3, "concurrency": 4, "work_ms": 150}
    with nodes(url, out, ["a", "b"], **options) as started, table(url) as db:
        with client(url, "submitter", lease_ttl=LEASE) as front:
            ids = [front.downloads.submit("noop", f"t{i}", f"t{i}") for i in range(total)]
            # Stored before the client stops (a stop may overtake queued submits).
            wait_until(lambda: db.count() == total, WAIT, "every submit stored")
        try:
            wait_until(lambda: len(spans(out)) >= min(8, total // 4), WAIT, "some published")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {_fence_counts(started)}") from None
        _outage(server, started, kill=kill)
        wait_until(
            lambda: _counts(db)["succeeded"] + _counts(db)["errored"] == total,
            60 + total / 10,
            "every download to end",
        )
        counts = _counts(db, out)
        counts["downloads"] = total
        counts["corrupt"] = sum(
            1 for i in range(total) if (out / f"t{i}").read_text(encoding="utf-8") != f"t{i}"
        )
        counts["reaped_live_nodes"] = sum(
            1 for node in started.values() if "cluster_nodes_reaped" in node.stderr()
        )
        assert sorted(i for i, *_ in spans(out)) == sorted(ids)
    return counts


@pytest.mark.timeout(120)
def test_an_outage_longer_than_the_lease_ends_every_download_once(
    own_pg: PostgresServer, tmp_path: Path
) -> None:
    """No-op downloads on two node processes; the server is killed (SIGKILL)."""
    counts = noop_outage(own_pg, tmp_path, total=40, kill=True)
    assert counts == {
        "rows": 40,
        "downloads": 40,
        "succeeded": 40,
        "errored": 0,
        "unfinished": 0,
        "published_twice": 0,
        "concurrent_runs": 0,
        "corrupt": 0,
        "reaped_live_nodes": 0,
    }


CHUNK = 16 * 1024
BODY = hashlib.sha256(b"outage").digest() * (384 * 1024 // 32)  # 384 KiB: 24 chunks


def _paced(streaming: threading.Event) -> Callable[[Request], None]:
    """A slow server: the body in chunks 0.1 s apart, honouring ``Range``;
    ``streaming`` is set once a body is a few chunks in."""

    def answer(request: Request) -> None:
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range") or "")
        if match and request.headers.get("If-Range") in (None, '"v1"'):
            start = int(match.group(1))
        rest = BODY[start:]
        headers = {"Content-Length": str(len(rest)), "ETag": '"v1"'}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"
        request.head(206 if start else 200, headers)
        for index, offset in enumerate(range(0, len(rest), CHUNK)):
            request.write(rest[offset : offset + CHUNK])
            if index == 3:
                streaming.set()
            time.sleep(0.1)  # the server's pace, not a wait of the test

    return answer


def http_outage(server: PostgresServer, out: Path, *, files: int) -> dict[str, int]:
    """``files`` HttpSource downloads on two node processes through an outage; the counts."""
    url = _durable_database(server)
    shared = out / "shared"
    shared.mkdir()
    http = HttpServer()
    try:
        streaming = threading.Event()
        links = [http.route(f"/f{i}.bin", _paced(streaming)) for i in range(files)]
        options = {
            "lease_ttl": LEASE,
            "poll_interval": 0.3,
            "concurrency": 2,
            "http_dir": shared,
            "source": "http",
        }
        with nodes(url, out, ["a", "b"], **options) as started, table(url) as db:
            with client(url, "submitter", lease_ttl=LEASE) as front:
                for i, link in enumerate(links):
                    front.downloads.submit("http", link, f"f{i}.bin")
                # Stored before the client stops (a stop may overtake queued submits).
                wait_until(lambda: db.count() == files, WAIT, "every submit stored")
            assert streaming.wait(WAIT), "no body streamed"
            _outage(server, started, kill=False)
            wait_until(
                lambda: _counts(db)["succeeded"] + _counts(db)["errored"] == files,
                60 + files * 2,
                "every download to end",
            )
            counts = _counts(db)
            wanted = {f"f{i}.bin" for i in range(files)}
            names = {p.name for p in shared.iterdir()}
            counts["downloads"] = files
            counts["published_twice"] = len(names - wanted)  # "f0 (1).bin" and the like
            counts["parts_left"] = sum(1 for n in names if n.endswith((".part", ".meta")))
            counts["corrupt"] = sum(
                1 for n in wanted & names if (shared / n).read_bytes() != BODY
            ) + len(wanted - names)
            paths = sorted(str(r.file_path) for r in db.rows())
            assert paths == sorted(str(shared / n) for n in wanted), paths
            counts["reaped_live_nodes"] = sum(
                1 for node in started.values() if "cluster_nodes_reaped" in node.stderr()
            )
    finally:
        http.close()
    return counts


@pytest.mark.timeout(120)
def test_http_downloads_through_an_outage_longer_than_the_lease(
    own_pg: PostgresServer, tmp_path: Path
) -> None:
    """HttpSource on two node processes; the server is stopped (immediate)."""
    counts = http_outage(own_pg, tmp_path, files=6)
    assert counts == {
        "rows": 6,
        "downloads": 6,
        "succeeded": 6,
        "errored": 0,
        "unfinished": 0,
        "published_twice": 0,
        "parts_left": 0,
        "concurrent_runs": 0,
        "corrupt": 0,
        "reaped_live_nodes": 0,
    }
