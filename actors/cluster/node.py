"""The node actor: this system's membership of the cluster.

It registers the node's row (failing the system's start if a live node
already uses the same ``node_id``), renews its lease every third of
``lease_ttl``, reaps nodes whose lease expired (their downloads go back to
the queue, their singleton and shard claims are freed), owns the
LISTEN/NOTIFY listener and removes the node's row on a clean stop.

Threads: an internal actor of the system (like the event bus); the
listener has one thread of its own. Database work runs on the actor's
thread on short transactions of the system's engine.

Fencing: every successful renewal moves the node's ``LeaseGuard``
(``system.cluster.lease``) forward; a timer on the system clock fires when
the guard runs out (before the lease can expire on the database's clock)
and publishes ``NodeFenced``: the keeper stops the running downloads
without writing a terminal state, and nothing of theirs is published. The
next successful renewal publishes ``NodeUnfenced`` and the keeper takes its
work up again. The timer does not wait for this actor: a renewal stuck on
an unreachable database cannot delay the fence.

Failures: a failed renewal is logged and retried at the next tick; the
node reports itself unhealthy once its guard ran out. A lease lost for
good (reaped while this process was frozen or cut off) is taken again
under a new incarnation: what the node owned was already handed over, and
the keeper's conditional writes drop its stale copies. A node reaps others
only while its own lease is fresh (see ``schema.reap``).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors.actor import Actor
from regisseur.actors.cluster import schema
from regisseur.actors.cluster.listener import Listener
from regisseur.actors.errors import RegisseurError, describe_error
from regisseur.messages.cluster import NodeFenced, NodeUnfenced

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.clock import TimerHandle
    from regisseur.actors.cluster.lease_guard import LeaseGuard
    from regisseur.actors.cluster.settings import ClusterSettings

__all__ = ["NODE_ACTOR", "NodeActor", "NodeIdInUseError", "PublishSources"]

NODE_ACTOR = "regisseur.node"


class NodeIdInUseError(RegisseurError, RuntimeError):
    """A live node already uses this ``node_id``."""

    def __init__(self, node_id: str, host: str, pid: int, expires_in: float) -> None:
        self.node_id = node_id
        super().__init__(
            f"cluster node id {node_id!r} is in use by a live node (host {host}, pid {pid}; "
            f"its lease expires in {max(0.0, expires_in):.1f}s unless renewed); "
            "give each node its own node_id"
        )


class _Renew:
    """Timer: renew the lease and reap dead nodes."""


class PublishSources:
    """Ask: write this node's sources now (a source was added at runtime)."""


class NodeActor(Actor):
    """Holds this node's lease; see the module docstring."""

    def __init__(
        self,
        settings: ClusterSettings,
        sources: Callable[[], list[str]],
        dispatch: Callable[[str, str | None], None],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.node_id = settings.node_id
        self.incarnation = uuid.uuid4().hex[:16]
        self._sources = sources
        self._dispatch = dispatch
        self._listener: Listener | None = None
        self._renewed_at: float | None = None
        self._fence_timer: TimerHandle | None = None
        self.reaped = 0
        self.requeued = 0
        self.fenced = 0

    @property
    def lease(self) -> LeaseGuard:
        """This node's lease guard (shared with the keeper and the workers)."""
        cluster = self.system.cluster
        assert cluster is not None  # a node actor runs in cluster mode only
        return cluster.lease

    # -- lifecycle ---------------------------------------------------------------
    def on_start(self) -> None:
        engine = self.system_database().engine
        with engine.begin() as connection:
            schema.ensure_tables(connection)
        self._register()
        url = self.system_database().sqlalchemy_url.set(drivername="postgresql")
        self._listener = Listener(
            url.render_as_string(hide_password=False),
            (schema.DOWNLOADS_CHANNEL, schema.NODES_CHANNEL),
            self._dispatch,
            self.log,
            name=f"regisseur:{self.system.name}/cluster-listener",
        )
        self._listener.start()
        self.schedule_every(self.settings.lease_ttl / 3, _Renew())
        self._reap()

    def system_database(self) -> Any:
        database = self.system.database
        assert database is not None  # cluster mode requires one
        return database

    def _register(self) -> None:
        identity: dict[str, Any] = {
            "node_id": self.node_id,
            "incarnation": self.incarnation,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "sources": self._sources(),
            "ttl": self.settings.lease_ttl,
        }
        sent = self.system.clock.now()
        engine = self.system_database().engine
        with engine.begin() as connection:
            if schema.register(connection, **identity) is None:
                holder = schema.node(connection, self.node_id)
                if holder is None or not _dead_here(holder.host, holder.pid):
                    expires_in = 0.0
                    if holder is not None:
                        expires_in = holder.expires_at - schema.db_now(connection)
                    raise NodeIdInUseError(
                        self.node_id,
                        holder.host if holder else "?",
                        holder.pid if holder else 0,
                        expires_in,
                    )
                # Our own host, and that process is gone: take the id at once.
                schema.register(connection, **identity, take_over=True)
            schema.notify(connection, schema.NODES_CHANNEL, json.dumps({"joined": [self.node_id]}))
        self._renewed(sent)
        self.log.info("cluster_node_joined", node=self.node_id, incarnation=self.incarnation)

    def _renewed(self, sent: float) -> None:
        """A renewal sent at ``sent`` succeeded: move the guard and its timer."""
        self._renewed_at = sent
        lease = self.lease
        if lease.renewed(sent):
            self.log.warning("cluster_node_unfenced", node=self.node_id)
            self.system.events.publish(NodeUnfenced(self.node_id))
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        self._fence_timer = self.system.timers.call_at(lease.valid_until, self._fence_due)

    def _fence_due(self) -> None:
        """Timer thread: the guard may have run out (no renewal since)."""
        if self.lease.fence_if_due(self.system.clock.now()):
            self._fenced("lease not renewed in time")

    def _fenced(self, reason: str) -> None:
        """Any thread: announce that this node stopped acting as an owner."""
        self.fenced += 1
        self.log.critical("cluster_node_fenced", node=self.node_id, reason=reason)
        self.system.events.publish(NodeFenced(self.node_id, reason))

    def on_stop(self) -> None:
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        if self._listener is not None:
            self._listener.stop()
        try:
            with self.system_database().engine.begin() as connection:
                schema.leave(connection, self.node_id, self.incarnation)
        except SQLAlchemyError as exc:
            self.log.warning("cluster_leave_failed", error=describe_error(exc))
        self.log.info("cluster_node_left", node=self.node_id)

    # -- messages ------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Renew):
            self._renew()
            self._reap()
            return None
        if isinstance(message, PublishSources):
            self._renew()  # the renewal writes the current sources
            return None
        return super().on_receive(message)

    def _renew(self) -> None:
        sent = self.system.clock.now()
        try:
            with self.system_database().engine.begin() as connection:
                held = schema.renew(
                    connection,
                    self.node_id,
                    self.incarnation,
                    sources=self._sources(),
                    ttl=self.settings.lease_ttl,
                )
        except SQLAlchemyError as exc:
            self.log.error("cluster_lease_renew_failed", error=describe_error(exc))
            return
        if held:
            self._renewed(sent)
            return
        self.log.critical("cluster_lease_lost", node=self.node_id, incarnation=self.incarnation)
        if self.lease.lost():
            self._fenced("lease lost: this node was reaped")
        self.incarnation = uuid.uuid4().hex[:16]
        try:
            self._register()
        except (SQLAlchemyError, NodeIdInUseError) as exc:
            self.log.critical("cluster_rejoin_failed", error=describe_error(exc))

    def _reap(self) -> None:
        if not self.lease.valid(self.system.clock.now()):
            return  # a fenced node judges no one
        try:
            with self.system_database().engine.begin() as connection:
                dead, freed, claims = schema.reap(
                    connection,
                    self.node_id,
                    self.incarnation,
                    lock_timeout=self.settings.lease_ttl / 4,
                )
        except SQLAlchemyError as exc:
            self.log.error("cluster_reap_failed", error=describe_error(exc))
            return
        if dead or freed or claims:
            self.reaped += len(dead)
            self.requeued += freed
            self.log.warning(
                "cluster_nodes_reaped", nodes=dead, downloads_requeued=freed, claims_freed=claims
            )
            # The other nodes (and this one) hear of it through the notice.

    def health(self) -> dict[str, Any]:
        age = None
        if self._renewed_at is not None:
            age = self.system.clock.now() - self._renewed_at
        fresh = self.lease.valid(self.system.clock.now())
        listening = self._listener is not None and self._listener.alive
        return {
            "healthy": fresh and listening,
            "node_id": self.node_id,
            "incarnation": self.incarnation,
            "lease_ttl": self.settings.lease_ttl,
            "renewed_ago": age,
            "listening": listening,
            "fenced": not fresh,
            "times_fenced": self.fenced,
            "reaped_nodes": self.reaped,
            "downloads_taken_over": self.requeued,
        }


def _dead_here(host: str, pid: int) -> bool:
    """True if ``host`` is this machine and no process ``pid`` runs on it."""
    if host != socket.gethostname() or pid <= 0:
        return False
    if pid == os.getpid():
        return False  # this very process: another system in it holds the id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
