"""How a system in cluster mode talks to its cluster node, and back.

``ClusterLink`` gives the kernel what the node actor is started with (its
settings, this node's sources, the callback for the listener's notices),
passes those notices on, and asks the node to publish this node's sources.
Without cluster mode (``settings`` None) it does nothing.

Threads: ``note`` runs on the node's listener thread and only tells;
``publish_sources`` on the caller's and blocks on the node's answer.

Failures: ``publish_sources`` raises what the node's ask raises (a
timeout after :data:`NODE_TIMEOUT` seconds, the node's own error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors._kernel import NODE_ACTOR

if TYPE_CHECKING:
    from regisseur.actors.cluster.facade import Cluster
    from regisseur.actors.cluster.settings import ClusterSettings
    from regisseur.actors.system import ActorSystem

__all__ = ["NODE_TIMEOUT", "ClusterLink"]

#: Real seconds the node has to publish this node's sources.
NODE_TIMEOUT = 10.0


class ClusterLink:
    """The system's side of its cluster node (see the module docstring)."""

    def __init__(self, system: ActorSystem, settings: ClusterSettings | None) -> None:
        self._system = system
        self.settings = settings
        # How this node's own download notices start (the listener skips them).
        self._own_prefix = ""
        if settings is not None:
            from regisseur.actors.downloads.cluster_store import change_notice_prefix

            self._own_prefix = change_notice_prefix(settings.node_id)

    def view(self) -> Cluster | None:
        """The system's ``cluster`` attribute: the cluster view, or None outside cluster mode."""
        if self.settings is None:
            return None
        from regisseur.actors.cluster.facade import Cluster  # cluster modules load only here

        return Cluster(self._system, self.settings)

    def node_args(self) -> tuple[Any, ...]:
        """The node actor's arguments: settings, this node's sources, the notice callback."""
        return (self.settings, self._system.downloads._local_sources, self.note)

    def publish_sources(self) -> None:
        """Let the other nodes know this node's sources now (blocks; no node: nothing)."""
        cell = self._system.registry.find(NODE_ACTOR)
        if cell is not None:
            from regisseur.actors.cluster.node import PublishSources

            cell.ref.ask(PublishSources(), timeout=NODE_TIMEOUT)

    def note(self, channel: str, payload: str | None) -> None:
        """Pass a cluster notice on: a node change as an event, the rest to the keeper.

        Runs on the node's listener thread; tells only (never blocks on an
        actor). A notice of this node's own download change was already
        published here and is skipped.
        """
        system = self._system
        if not system._lifecycle.active or system.cluster is None:
            return
        from regisseur.actors._pykka import Envelope
        from regisseur.actors.cluster.schema import NODES_CHANNEL, decode_nodes_change
        from regisseur.actors.downloads.cluster_keeper import KEEPER, ClusterNote

        if channel == NODES_CHANNEL and payload is not None:
            change = decode_nodes_change(payload, system.cluster.node_id)
            if change is not None:
                system.events.publish(change)
        elif payload is not None and payload.startswith(self._own_prefix):
            return  # this node's own change: already published here
        keeper = system.registry.find(KEEPER)
        if keeper is not None:
            keeper.mailbox.put(Envelope(ClusterNote(channel, payload)))
