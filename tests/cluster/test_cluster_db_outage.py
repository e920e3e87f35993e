"""A node rides out a restart of PostgreSQL (every connection cut at once).

The test starts its own throwaway server (the session's server is shared),
runs a node, restarts the server with ``pg_ctl stop -m immediate`` and
checks that the node keeps its lease, hears other nodes again and that
downloads submitted before, during and after the outage all end.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages.downloads import DownloadState
from tests.cluster.helpers import wait_until
from tests.cluster.pg import PostgresServer

WAIT = 30.0


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
