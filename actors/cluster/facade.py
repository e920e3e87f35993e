"""``system.cluster``: this node's view of the cluster (cluster mode only).

Threads: any thread; each call is one short read transaction on the
system's engine (no actor is asked).

Failures: ``RuntimeError`` when the system is not running; database
errors propagate as ``SQLAlchemyError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regisseur.actors.cluster import schema
from regisseur.actors.cluster.lease_guard import LeasedToken, LeaseGuard
from regisseur.messages.lifecycle import Lifecycle

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from regisseur.actors.cluster.settings import ClusterSettings
    from regisseur.actors.downloads.context import CancelToken
    from regisseur.actors.system import ActorSystem
    from regisseur.messages.cluster import NodeInfo

__all__ = ["Cluster"]

#: The claims ``nodes()`` lists: what runs where (not the bookkeeping ones).
_SHOWN = ("singleton", "shard")


class Cluster:
    """The cluster as one node sees it (``system.cluster``)."""

    def __init__(self, system: ActorSystem, settings: ClusterSettings) -> None:
        self._system = system
        self.settings = settings
        self.lease = LeaseGuard(settings.lease_ttl)
        """This node's lease as its own clock sees it: ``lease.valid(now)``
        is False while the node is fenced (see ``LeaseGuard``)."""

    def new_token(self) -> CancelToken:
        """A cancel token for a download run on this node (see ``LeasedToken``)."""
        return LeasedToken(self.lease, self._system.clock)

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.settings.node_id

    def _engine(self) -> Engine:
        database = self._system.database
        if database is None or self._system.state not in (Lifecycle.STARTING, Lifecycle.RUNNING):
            msg = f"system {self._system.name!r} is not running: the cluster view is unavailable"
            raise RuntimeError(msg)
        return database.engine

    def nodes(self) -> list[NodeInfo]:
        """The live nodes, by id, with what each owns."""
        from regisseur.messages.cluster import NodeInfo

        with self._engine().connect() as connection:
            now = schema.db_now(connection)
            live = schema.live_nodes(connection)
            downloads = schema.owned_downloads(connection)
            claims = schema.holders(connection)
        held: dict[str, list[str]] = {}
        for (kind, name), holder in sorted(claims.items()):
            if kind in _SHOWN:
                held.setdefault(holder, []).append(f"{kind}:{name}")
        return [
            NodeInfo(
                node_id=n.node_id,
                host=n.host,
                pid=n.pid,
                sources=n.sources,
                started_at=n.started_at,
                expires_in=max(0.0, n.expires_at - now),
                downloads=downloads.get(n.node_id, 0),
                claims=tuple(held.get(n.node_id, ())),
                this_node=n.node_id == self.node_id,
            )
            for n in live
        ]

    def sources(self) -> set[str]:
        """Download sources registered on at least one live node."""
        with self._engine().connect() as connection:
            return {s for n in schema.live_nodes(connection) for s in n.sources}

    def holder(self, kind: str, name: str) -> str | None:
        """The node holding claim ``(kind, name)`` (e.g. ``"singleton"``), or None."""
        with self._engine().connect() as connection:
            return schema.holders(connection, kind).get((kind, name))

    def singleton_node(self, name: str) -> str | None:
        """The node on which the singleton child ``name`` runs, or None."""
        return self.holder("singleton", name)
