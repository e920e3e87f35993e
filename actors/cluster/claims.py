"""The base of actors that hold cluster claims (singletons, shards).

A claim actor rethinks its claims on a timer tick and whenever the cluster
changes (a node joined or left, a claim was given back), and gives back what
it still holds when it stops, announcing it so other nodes need not wait for
their next tick.

Threads: runs on its own thread; database work is short transactions on
the system's engine. Without cluster mode there is nothing to claim: the
subclass's ``rethink`` sees ``node_id`` None.

Failures: a failed release on stop is logged (the claims then lapse with
this node's lease).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors.actor import Actor
from regisseur.actors.cluster import schema
from regisseur.actors.errors import describe_error
from regisseur.messages.cluster import ClusterChanged

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Engine

    from regisseur.actors.events import Subscription

__all__ = ["ClaimActor", "Rethink"]


class Rethink:
    """Timer (or a nudge to itself): look at the claims again."""


class ClaimActor(Actor):
    """Holds claims of ``kind``; subclasses implement ``rethink`` and ``held_names``."""

    kind = ""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._subscription: Subscription | None = None

    @property
    def node_id(self) -> str | None:
        """This node's id; None without cluster mode."""
        cluster = self.system.cluster
        return cluster.node_id if cluster is not None else None

    def engine(self) -> Engine:
        """The system's engine (cluster mode always has a database)."""
        database = self.system.database
        assert database is not None
        return database.engine

    def wake_events(self) -> tuple[type, ...]:
        """The events this actor is told of (each may call for a rethink)."""
        return (ClusterChanged,) if self.system.cluster is not None else ()

    def on_start(self) -> None:
        events = self.wake_events()
        if events:
            self._subscription = self.system.events.subscribe(self.actor_ref, *events)
        self.schedule_every(self._interval, Rethink())
        self.actor_ref.tell(Rethink())  # not here: our supervisor is starting us

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (Rethink, ClusterChanged)):
            self.rethink()
            return None
        return super().on_receive(message)

    def rethink(self) -> None:
        """Claim, start, stop and give back as the cluster now stands."""
        raise NotImplementedError

    def held_names(self) -> Iterable[str]:
        """The claim names this actor holds now."""
        raise NotImplementedError

    def release(self, names: Iterable[str], *, kind: str | None = None) -> None:
        """Give ``names`` (of ``kind``, default this actor's) back and tell the
        other nodes (one transaction)."""
        node = self.node_id
        names = sorted(names)
        if node is None or not names:
            return
        with self.engine().begin() as connection:
            # One statement per name, in name order: two nodes releasing at
            # once then lock rows in the same order and never deadlock.
            for name in names:
                schema.release(connection, kind or self.kind, name, node)
            schema.notify(connection, schema.NODES_CHANNEL, json.dumps({"freed": names}))

    def on_stop(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
        try:
            self.release(self.held_names())
        except SQLAlchemyError as exc:
            self.log.warning("cluster_release_failed", kind=self.kind, error=describe_error(exc))
