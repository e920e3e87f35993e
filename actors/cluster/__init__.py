"""Cluster mode: several nodes (processes, machines) sharing one PostgreSQL.

Switched on with ``ActorSystem(..., cluster=True, node_id=...)`` or
``cluster=ClusterSettings(...)`` and a PostgreSQL ``database_url``. See
``ClusterSettings`` and the README's "Cluster mode" section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors.cluster.settings import ClusterSettings

if TYPE_CHECKING:
    from regisseur.actors.cluster.sharding import owner_of, sharded

__all__ = ["ClusterSettings", "owner_of", "sharded"]


def __getattr__(name: str) -> Any:
    # Imported on first use: sharding loads the PostgreSQL dialect and the
    # ORM, which a system outside cluster mode never needs.
    if name in ("owner_of", "sharded"):
        from regisseur.actors.cluster import sharding

        value = getattr(sharding, name)
        globals()[name] = value
        return value
    msg = f"module 'regisseur.actors.cluster' has no attribute {name!r}"
    raise AttributeError(msg)
