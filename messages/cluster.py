"""Cluster mode: the events a node publishes about the cluster."""

from __future__ import annotations

from dataclasses import dataclass

from regisseur.messages.events import Event

__all__ = ["ClusterChanged", "NodeFenced", "NodeInfo", "NodeUnfenced"]


@dataclass(frozen=True, slots=True)
class ClusterChanged(Event):
    """Nodes joined or left (or were reaped after their lease expired), or
    claims were given back (``freed``: their names)."""

    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    freed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeFenced(Event):
    """This node could not renew its lease in time and stopped acting as the
    owner of its work (its running downloads are stopped, nothing of theirs
    is written or published) until a renewal succeeds again."""

    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class NodeUnfenced(Event):
    """This node renewed its lease after being fenced and takes up work again."""

    node_id: str


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One live node and what it owns, as ``system.cluster.nodes()`` gives it.

    ``downloads``: unfinished downloads it runs or has claimed; ``claims``:
    singleton children and shards it holds, as ``"kind:name"``;
    ``expires_in``: seconds until its lease runs out unless renewed.
    """

    node_id: str
    host: str
    pid: int
    sources: tuple[str, ...]
    started_at: float
    expires_in: float
    downloads: int
    claims: tuple[str, ...]
    this_node: bool
