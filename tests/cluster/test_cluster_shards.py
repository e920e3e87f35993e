"""Cluster mode: server rows spread over node processes, taken over when one dies.

Every node runs ``tests/cluster/node_child.py --shards 12``: each key's actor
logs its start and stop in ``shards.log``, so the test knows where each key
runs. A SIGKILLed node logs nothing more: its keys are known to be free once
its lease has expired and another node has started them.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.cluster import owner_of
from tests.cluster.helpers import client, nodes, shard_owners, wait_until

if TYPE_CHECKING:
    from pathlib import Path

KEYS = [f"server-{i}" for i in range(12)]


def _spread_over(out: Path, live: list[str]) -> dict[str, str] | None:
    """The owners if every key runs where rendezvous hashing puts it, else None."""
    owners = shard_owners(out)
    wanted = {key: owner_of(key, live) for key in KEYS}
    return owners if owners == wanted else None


@pytest.mark.timeout(90)
def test_server_rows_are_spread_and_a_killed_nodes_rows_are_taken_over(
    pg_url: str, tmp_path: Path
) -> None:
    ttl = 1.5
    with (
        nodes(pg_url, tmp_path, ["a", "b", "c"], shards=len(KEYS), lease_ttl=ttl) as started,
        client(pg_url, lease_ttl=ttl) as system,
    ):
        # The client is a live node too, but it runs no shards: it gets none.
        live = ["a", "b", "c"]
        owners = wait_until(lambda: _spread_over(tmp_path, live), 30, "keys spread")
        per_node = Counter(owners.values())
        assert set(per_node) <= {"a", "b", "c"}
        assert len(per_node) >= 2, per_node

        victim = max(per_node, key=per_node.__getitem__)
        started[victim].kill()
        survivors = [n for n in live if n != victim]
        after = wait_until(
            lambda: _spread_over(tmp_path, survivors),
            ttl + 15,
            f"the keys of {victim} taken over",
        )
        assert victim not in after.values()
        assert system.cluster is not None
        claims = {n.node_id: n.claims for n in system.cluster.nodes()}
        assert victim not in claims
