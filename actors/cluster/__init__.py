"""Cluster mode: several nodes (processes, machines) sharing one PostgreSQL.

Switched on with ``ActorSystem(..., cluster=True, node_id=...)`` or
``cluster=ClusterSettings(...)`` and a PostgreSQL ``database_url``. See
``ClusterSettings`` and the README's "Cluster mode" section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors.cluster.settings import ClusterSettings

if TYPE_CHECKING:
    from regisseur.actors.cluster.node import NodeIdInUseError
    from regisseur.actors.cluster.sharding import owner_of, sharded

__all__ = ["ClusterSettings", "NodeIdInUseError", "owner_of", "sharded"]

# Imported on first use: sharding loads the PostgreSQL dialect and the ORM,
# the node module SQLAlchemy; a system outside cluster mode needs neither.
_LAZY = {
    "NodeIdInUseError": "regisseur.actors.cluster.node",
    "owner_of": "regisseur.actors.cluster.sharding",
    "sharded": "regisseur.actors.cluster.sharding",
}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is not None:
        from importlib import import_module

        value = getattr(import_module(home), name)
        globals()[name] = value
        return value
    msg = f"module 'regisseur.actors.cluster' has no attribute {name!r}"
    raise AttributeError(msg)
