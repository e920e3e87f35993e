"""Cluster mode: a ``singleton=True`` child runs on exactly one node process.

Every node runs ``tests/cluster/node_child.py --singleton``: its singleton
child ``solo`` appends the node's id to ``singleton.log`` when it starts, so
the log lists every start, in order. The test process is a client node
without sources that reads who holds the claim.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.cluster.helpers import client, nodes, singleton_lines, wait_until
from tests.cluster.node_child import SINGLETON

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.timeout(60)
def test_singleton_runs_on_one_node_and_moves_when_that_node_is_killed(
    pg_url: str, tmp_path: Path
) -> None:
    ttl = 1.5
    with (
        nodes(pg_url, tmp_path, ["a", "b", "c"], singleton=True, lease_ttl=ttl) as started,
        client(pg_url, lease_ttl=ttl) as system,
    ):
        first = wait_until(lambda: singleton_lines(tmp_path), 20, "the singleton to start")
        assert len(first) == 1, first
        holder = first[0]
        assert holder in started
        assert system.cluster.singleton_node(SINGLETON) == holder
        claims = {n.node_id: n.claims for n in system.cluster.nodes()}
        assert claims[holder] == (f"singleton:{SINGLETON}",)
        assert all(not held for node, held in claims.items() if node != holder), claims

        started[holder].kill()
        killed_at = time.monotonic()
        moved = wait_until(
            lambda: len(singleton_lines(tmp_path)) >= 2 and singleton_lines(tmp_path),
            ttl + 8,
            "the singleton to start on another node",
        )
        took = time.monotonic() - killed_at
        assert len(moved) == 2, moved
        successor = moved[1]
        assert successor != holder and successor in started
        wait_until(
            lambda: system.cluster.singleton_node(SINGLETON) == successor,
            5,
            f"the claim to name {successor}",
        )
        wait_until(
            lambda: holder not in {n.node_id for n in system.cluster.nodes()},
            5,
            "the killed node to leave nodes()",
        )
        # Still exactly one start per holder once the dead node is gone.
        assert singleton_lines(tmp_path) == [holder, successor]
    # The lease had to run out first: at least the two thirds of it not yet renewed.
    assert took >= ttl / 3, f"moved after {took:.2f}s, before the lease could expire"
    assert took < ttl + 5


@pytest.mark.timeout(60)
def test_singleton_hands_over_at_once_on_a_clean_stop(pg_url: str, tmp_path: Path) -> None:
    ttl = 8.0  # long: a handover well within it cannot come from the lease running out
    with (
        nodes(pg_url, tmp_path, ["a", "b"], singleton=True, lease_ttl=ttl) as started,
        client(pg_url, lease_ttl=ttl) as system,
    ):
        first = wait_until(lambda: singleton_lines(tmp_path), 20, "the singleton to start")
        holder = first[0]
        other = next(n for n in started if n != holder)
        stopped_at = time.monotonic()
        started[holder].send_term()
        moved = wait_until(
            lambda: len(singleton_lines(tmp_path)) >= 2 and singleton_lines(tmp_path),
            ttl / 2,
            "the singleton to move on a clean stop",
        )
        took = time.monotonic() - stopped_at
        assert moved == [holder, other]
        assert started[holder].terminate() == 0
        assert system.cluster.singleton_node(SINGLETON) == other
        assert {n.node_id for n in system.cluster.nodes()} == {other, "client"}
    assert took < ttl / 3, f"the clean handover took {took:.2f}s (lease ttl {ttl:g}s)"
