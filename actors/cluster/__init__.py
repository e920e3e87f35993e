"""Cluster mode: several nodes (processes, machines) sharing one PostgreSQL.

Switched on with ``ActorSystem(..., cluster=True, node_id=...)`` or
``cluster=ClusterSettings(...)`` and a PostgreSQL ``database_url``. See
``ClusterSettings`` and the README's "Cluster mode" section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors.cluster.settings import ClusterSettings
from regisseur.actors.cluster.sharding import owner_of, sharded

if TYPE_CHECKING:
    from regisseur.actors.cluster.node import NodeIdInUseError

__all__ = ["ClusterSettings", "NodeIdInUseError", "owner_of", "sharded"]


def __getattr__(name: str) -> Any:
    # The node module loads SQLAlchemy: imported on first use.
    if name == "NodeIdInUseError":
        from regisseur.actors.cluster.node import NodeIdInUseError

        return NodeIdInUseError
    msg = f"module 'regisseur.actors.cluster' has no attribute {name!r}"
    raise AttributeError(msg)
