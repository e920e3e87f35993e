"""Checks of ``ActorSystem``'s options that need more than a line.

Threads: called by ``ActorSystem.__init__`` on the caller's thread.

Failures: a wrong type is a ``TypeError``, a wrong value a ``ValueError``,
each naming the option and what was given; nothing is started before.
"""

from __future__ import annotations

from regisseur.actors.cluster.settings import ClusterSettings
from regisseur.actors.downloads.source import DownloadSource

__all__ = ["check_cluster", "check_sources"]


def check_sources(sources: object) -> tuple[DownloadSource, ...]:
    """``download_sources`` as a tuple, or a clear error (wrong type, duplicate name)."""
    if isinstance(sources, DownloadSource):
        sources = (sources,)
    if isinstance(sources, (str, bytes)) or not hasattr(sources, "__iter__"):
        msg = f"download_sources must be a list of DownloadSource, got {sources!r}"
        raise TypeError(msg)
    found = tuple(sources)
    for source in found:
        if not isinstance(source, DownloadSource):
            msg = f"download_sources must hold DownloadSource objects, got {source!r}"
            raise TypeError(msg)
    names = [s.name for s in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        msg = f"duplicate download source name(s): {', '.join(map(repr, duplicates))}"
        raise ValueError(msg)
    return found


def check_cluster(cluster: object, node_id: object) -> ClusterSettings | None:
    """The cluster settings of ``cluster=`` and ``node_id=``; None outside cluster mode."""
    if isinstance(cluster, ClusterSettings):
        if node_id is not None and node_id != cluster.node_id:
            msg = "give node_id either to ActorSystem or to ClusterSettings, not both"
            raise ValueError(msg)
        return cluster
    if not isinstance(cluster, bool):
        msg = f"cluster must be a bool or a ClusterSettings, got {type(cluster).__name__}"
        raise TypeError(msg)
    if not cluster:
        if node_id is not None:
            msg = "node_id is only used in cluster mode: pass cluster=True as well"
            raise ValueError(msg)
        return None
    return ClusterSettings(node_id)  # type: ignore[arg-type]  # checked there
