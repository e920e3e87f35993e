"""Sharding: spread per-key children (one per server row) over the live nodes.

``sharded(name, keys, child)`` is a ``ChildSpec`` for every node. Its
shard actor reads the current ``keys`` (e.g. the server rows of a table),
works out which keys this node should own, and runs ``child(key)`` for
each of them under its own supervisor. Ownership is rendezvous hashing
over the live nodes that run this group (each announces it with a
``"shard-member"`` claim; a node without the group gets no keys): each key
goes to the node with the highest hash of node and key, so when a node
joins or leaves only the keys that must move move. Each owned key is also
a cluster claim (kind ``"shard"``), taken before the child starts and
given back after it stopped, so a key runs on at most one node even while
nodes disagree for a moment about who is live (a key moves when its old
owner has let it go or was reaped).

Without cluster mode every key runs on this node.

Threads: the shard actor runs on its own thread; ``keys`` is called there
(it may read the database). Starts and stops are told to its supervisor
and checked again at the next tick, so it never blocks on it.

Failures: ``keys`` raising, or a database error, is logged and the next
tick tries again; the children already running stay as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors import runtime
from regisseur.actors.clock import check_duration
from regisseur.actors.cluster import schema
from regisseur.actors.cluster.claims import ClaimActor
from regisseur.actors.errors import describe_error
from regisseur.messages.events import ChildStopped
from regisseur.supervision.directive import Strategy
from regisseur.supervision.protocol import Spawn, StopChild
from regisseur.supervision.spec import ChildSpec, check_name
from regisseur.supervision.supervisor import Supervisor

__all__ = ["ShardActor", "owner_of", "sharded"]

KIND = "shard"
MEMBER = "shard-member"  # "<group>@<node>": the nodes that run a group


def owner_of(key: str, nodes: Iterable[str]) -> str | None:
    """The node that should own ``key`` among ``nodes`` (rendezvous hashing)."""

    def weight(node: str) -> bytes:
        return hashlib.blake2b(f"{node}\0{key}".encode(), digest_size=8).digest()

    return max(nodes, key=weight, default=None)


def sharded(
    name: str,
    keys: Callable[[], Iterable[str]] | Iterable[str],
    child: Callable[[str], ChildSpec],
    *,
    interval: float = 5.0,
    depends_on: tuple[str, ...] = (),
) -> ChildSpec:
    """A subtree that runs ``child(key)`` for the keys this node owns.

    ``keys``: the keys (strings, e.g. server ids), or a callable returning
    them, read again every ``interval`` seconds and whenever nodes join or
    leave. ``child(key)`` must return a ``ChildSpec`` with a unique name.
    """
    check_name(name, "sharded() name")
    if not callable(child):
        msg = f"sharded({name!r}): child must be a callable key -> ChildSpec, got {child!r}"
        raise TypeError(msg)
    if not callable(keys):
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
            msg = f"sharded({name!r}): keys must be an iterable of str or a callable, got {keys!r}"
            raise TypeError(msg)
        fixed = _check_keys(name, keys)

        def read_keys() -> list[str]:
            return fixed

    else:
        source = keys

        def read_keys() -> list[str]:
            return _check_keys(name, source())

    interval = check_duration(interval, f"sharded({name!r}) interval", allow_zero=False)
    shards = ChildSpec(
        f"{name}.shards",
        ShardActor,
        args=(name, read_keys, child, interval),
        description=f"decides which keys of {name!r} run on this node",
    )
    return ChildSpec(
        name,
        Supervisor((shards,), strategy=Strategy.ONE_FOR_ONE, max_restarts=10, within=10.0),
        depends_on=depends_on,
        description=f"the keys of {name!r} this node owns",
    )


def _check_keys(name: str, keys: Iterable[str]) -> list[str]:
    found = list(keys)
    for key in found:
        if not isinstance(key, str) or not key:
            msg = f"sharded({name!r}): keys must be non-empty str, got {key!r}"
            raise TypeError(msg)
    return sorted(set(found))


class ShardActor(ClaimActor):
    """Runs the children of the keys this node owns; see the module docstring."""

    kind = KIND

    def __init__(
        self,
        group: str,
        keys: Callable[[], list[str]],
        child: Callable[[str], ChildSpec],
        interval: float,
    ) -> None:
        super().__init__(interval)
        self.group = group
        self._keys = keys
        self._child = child
        self._running: dict[str, str] = {}  # key -> child name
        self._stopping: dict[str, str] = {}  # moved away, claim kept until stopped
        self.nodes: list[str] = []
        self.rebalances = 0

    def _claim_name(self, key: str) -> str:
        return f"{self.group}/{key}"

    def _member_name(self, node: str) -> str:
        """The claim that says ``node`` runs this group (keys are ``group/key``)."""
        return f"{self.group}@{node}"

    def held_names(self) -> list[str]:
        return [self._claim_name(k) for k in (*self._running, *self._stopping)]

    def on_stop(self) -> None:
        super().on_stop()  # the keys first, then this node's membership
        node = self.node_id
        if node is not None:
            try:
                self.release([self._member_name(node)], kind=MEMBER)
            except SQLAlchemyError as exc:
                self.log.warning("shard_member_release_failed", error=describe_error(exc))

    def rethink(self) -> None:
        try:
            keys = self._keys()
        except Exception as exc:  # noqa: BLE001 - the user's callable
            self.log.error("shard_keys_failed", group=self.group, error=describe_error(exc))
            return
        try:
            held = self._decide(keys)
        except SQLAlchemyError as exc:
            self.log.error("shard_rebalance_failed", group=self.group, error=describe_error(exc))
            return
        for key in sorted(set(self._running) - held):
            leaving = self._running.pop(key)
            self._stopping[key] = leaving
            self.system.tell(self.group, StopChild(leaving))
        for key in sorted(held):
            name = self._running.get(key)
            if name is None or not runtime.is_running(self.system, name):
                spec = self._child(key)
                self._running[key] = spec.name
                self.system.tell(self.group, Spawn(spec))
        self.rebalances += 1

    def wake_events(self) -> tuple[type, ...]:
        # A moved key is given back as soon as its child has stopped.
        return (*super().wake_events(), ChildStopped)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildStopped):
            if message.name in self._stopping.values():
                self.rethink()
            return None
        return super().on_receive(message)

    def _decide(self, keys: list[str]) -> set[str]:
        """The keys this node may run now (claimed), after giving back stopped ones.

        A key that moved away is given back only once its child has
        stopped, so it never runs on two nodes at once.
        """
        node = self.node_id
        if node is None:
            self.nodes = []
            return set(keys)
        engine = self.engine()
        member = self._member_name(node)
        with engine.begin() as connection:
            # Only the nodes that run this group share its keys: a node
            # without it (a web front end, say) must not be given any.
            schema.claim(connection, MEMBER, member, node)
            live = {n.node_id for n in schema.live_nodes(connection)}
            prefix = self._member_name("")
            self.nodes = sorted(
                holder
                for (_kind, name), holder in schema.holders(connection, MEMBER).items()
                if name.startswith(prefix) and holder in live
            )
        if node not in self.nodes:
            self.nodes.append(node)  # our own renewal may lag a moment
        wanted = {k for k in keys if owner_of(k, self.nodes) == node}
        stopped = [k for k, n in self._stopping.items() if not runtime.is_running(self.system, n)]
        for key in stopped:
            del self._stopping[key]
        # Releases in one transaction in key order, claims one key per
        # transaction: nodes rebalancing at once never wait in a cycle.
        self.release(self._claim_name(k) for k in stopped if k not in wanted)
        held = set()
        for key in sorted(wanted - set(self._stopping)):
            with engine.begin() as connection:
                if schema.claim(connection, KIND, self._claim_name(key), node):
                    held.add(key)
        return held

    def health(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "node": self.node_id,
            "keys_here": sorted(self._running),
            "live_nodes": self.nodes,
            "rebalances": self.rebalances,
        }
