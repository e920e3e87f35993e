"""Cluster mode: several nodes (processes, machines) sharing one PostgreSQL.

Switched on with ``ActorSystem(..., cluster=True, node_id=...)`` or
``cluster=ClusterSettings(...)`` and a PostgreSQL ``database_url``. See
``ClusterSettings`` and the README's "Cluster mode" section.
"""

from __future__ import annotations

from regisseur.actors.cluster.settings import ClusterSettings
from regisseur.actors.cluster.sharding import owner_of, sharded

__all__ = ["ClusterSettings", "owner_of", "sharded"]
