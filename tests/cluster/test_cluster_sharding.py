"""Sharding: per-key children spread over the live nodes and rebalanced.

Two and three nodes run in the test process (one ``ActorSystem`` each) on a
fresh PostgreSQL database; ``sharded()`` runs a tiny actor per key.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from regisseur.actors import Actor, ActorSystem
from regisseur.actors.cluster import ClusterSettings, owner_of, sharded
from regisseur.messages import ChildStarted
from regisseur.supervision import ChildSpec
from tests.cluster.helpers import wait_for_events

if TYPE_CHECKING:
    from collections.abc import Iterator

KEYS = [f"server-{i}" for i in range(12)]


class Poller(Actor):
    """Stands for a per-server loop: one per key."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


def _spec(keys: list[str]) -> ChildSpec:
    return sharded(
        "pollers",
        lambda: list(keys),
        lambda key: ChildSpec(f"poll-{key}", Poller, args=(key,)),
        interval=0.3,
    )


def _node(url: str, node_id: str, keys: list[str]) -> ActorSystem:
    return ActorSystem(
        [_spec(keys)],
        database_url=url,
        cluster=ClusterSettings(node_id, lease_ttl=3.0, poll_interval=0.5),
        name=f"sys-{node_id}",
    )


def _here(system: ActorSystem) -> set[str]:
    return {n.removeprefix("poll-") for n in system.names() if n.startswith("poll-")}


@contextlib.contextmanager
def _running(*systems: ActorSystem) -> Iterator[None]:
    started: list[ActorSystem] = []
    try:
        for system in systems:
            system.start()
            started.append(system)
        yield
    finally:
        for system in reversed(started):
            system.stop()


def _spread(systems: list[ActorSystem], keys: list[str]) -> bool:
    """Every key runs on exactly the node rendezvous hashing gives it."""
    live = [s.cluster.node_id for s in systems if s.cluster is not None]
    for system in systems:
        assert system.cluster is not None
        wanted = {k for k in keys if owner_of(k, live) == system.cluster.node_id}
        if _here(system) != wanted:
            return False
    return True


def test_owner_of_is_stable_and_moves_only_what_must_move() -> None:
    two = {k: owner_of(k, ["a", "b"]) for k in KEYS}
    three = {k: owner_of(k, ["a", "b", "c"]) for k in KEYS}
    assert set(two.values()) == {"a", "b"}
    # A key moves only to the new node, never between the old ones.
    assert all(three[k] in (two[k], "c") for k in KEYS)
    assert owner_of("x", []) is None
    assert owner_of("x", ["b", "a"]) == owner_of("x", ["a", "b"])


def test_bad_arguments_are_refused_with_the_name() -> None:
    with pytest.raises(TypeError, match="child must be a callable"):
        sharded("p", ["a"], "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys must be"):
        sharded("p", "abc", lambda k: ChildSpec(k, Poller))
    with pytest.raises(TypeError, match="non-empty str"):
        sharded("p", [1, 2], lambda k: ChildSpec(k, Poller))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="interval"):
        sharded("p", ["a"], lambda k: ChildSpec(k, Poller), interval=-1)


def test_without_cluster_mode_every_key_runs_here(tmp_path: object) -> None:
    system = ActorSystem([_spec(KEYS)], database_url=None, name="single")
    with _running(system):
        wait_for_events([system], lambda: _here(system) == set(KEYS), 10, "every key running")


@pytest.mark.timeout(60)
def test_keys_are_spread_over_the_nodes_and_rebalanced(pg_url: str) -> None:
    a, b, c = (_node(pg_url, n, KEYS) for n in ("a", "b", "c"))
    overlap: list[str] = []

    def check(event: object) -> None:  # no key may ever run on two nodes at once
        if isinstance(event, ChildStarted) and event.name.startswith("poll-"):
            key = event.name.removeprefix("poll-")
            running = [s.name for s in (a, b, c) if key in _here(s)]
            if len(running) > 1:
                overlap.append(f"{key} on {running}")

    with _running(a, b):
        wait_for_events([a, b], lambda: _spread([a, b], KEYS), 20, "keys spread over a and b")
        assert _here(a) and _here(b)
        assert _here(a) | _here(b) == set(KEYS)
        watchers = [s.events.subscribe(check, ChildStarted) for s in (a, b, c)]
        try:
            c.start()
            try:
                # A node joins: some keys move to it, none between a and b.
                wait_for_events(
                    [a, b, c], lambda: _spread([a, b, c], KEYS), 20, "keys spread over a, b, c"
                )
                assert _here(c)
                assert a.cluster is not None
                claims = {n.node_id: n.claims for n in a.cluster.nodes()}
                assert sorted(claims) == ["a", "b", "c"]
                assert sum(len(v) for v in claims.values()) == len(KEYS)
            finally:
                c.stop()
            # A node leaves: its keys go back to the others.
            wait_for_events([a, b], lambda: _spread([a, b], KEYS), 20, "keys back on a and b")
        finally:
            for watcher in watchers:
                watcher.cancel()
    assert overlap == [], f"keys ran on two nodes at once: {sorted(set(overlap))}"


@pytest.mark.timeout(60)
def test_new_keys_are_picked_up_and_removed_keys_stopped(pg_url: str) -> None:
    keys = ["one", "two"]
    a = _node(pg_url, "a", keys)
    with _running(a):
        wait_for_events([a], lambda: _here(a) == {"one", "two"}, 10, "both keys running")
        keys.append("three")
        keys.remove("one")
        wait_for_events([a], lambda: _here(a) == {"two", "three"}, 10, "keys follow the table")
