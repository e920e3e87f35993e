"""``ClusterSettings``: how one node takes part in a cluster.

Checked when the system is built, so a bad value fails at once with a message
naming it, before anything starts.
"""

from __future__ import annotations

import os
import socket
import uuid

from regisseur.actors.clock import check_duration
from regisseur.supervision.spec import check_name

__all__ = ["ClusterSettings", "check_cluster_url", "default_node_id"]


def default_node_id() -> str:
    """``host-pid-random``: unique per process, readable in logs and views."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ClusterSettings:
    """Cluster mode for one node (immutable once built).

    ``node_id`` names this node in the cluster (default: host, pid and a
    random suffix; give a stable one to let a restarted process take over
    its own work at once). ``lease_ttl``: how long a node that stops
    renewing (killed, frozen, cut off) keeps its work before another node
    takes it over; it renews every third of that. ``poll_interval``: how
    often a node looks for queued work besides being notified (the safety
    net for a missed notification).
    """

    __slots__ = ("lease_ttl", "node_id", "poll_interval")

    def __init__(
        self,
        node_id: str | None = None,
        *,
        lease_ttl: float = 10.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.node_id = check_name(node_id, "node_id") if node_id is not None else default_node_id()
        self.lease_ttl = check_duration(lease_ttl, "cluster lease_ttl", allow_zero=False)
        if self.lease_ttl < 0.3:
            msg = f"cluster lease_ttl must be >= 0.3 s (renewals run every third), got {lease_ttl}"
            raise ValueError(msg)
        self.poll_interval = check_duration(
            poll_interval, "cluster poll_interval", allow_zero=False
        )

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            msg = f"ClusterSettings.{name} cannot be changed after it is built"
            raise AttributeError(msg)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return (
            f"ClusterSettings(node_id={self.node_id!r}, lease_ttl={self.lease_ttl:g}, "
            f"poll_interval={self.poll_interval:g})"
        )


def check_cluster_url(url: str | None) -> str:
    """The SQLAlchemy URL to use in cluster mode, or a clear ``ValueError``.

    Cluster mode coordinates through PostgreSQL (row locks, LISTEN/NOTIFY)
    with the psycopg 3 driver; a bare ``postgresql://`` URL is taken to mean
    it. SQLite, no database, or another driver are refused here.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from regisseur.actors.database import PSYCOPG

    if url is None:
        msg = "cluster mode needs a PostgreSQL database_url (the nodes coordinate through it)"
        raise ValueError(msg)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        msg = f"cluster mode: database_url is not a valid SQLAlchemy URL: {exc}"
        raise ValueError(msg) from None
    backend = parsed.get_backend_name()
    if backend != "postgresql":
        msg = (
            f"cluster mode needs PostgreSQL, but database_url is {backend!r} "
            "(SQLite is for a single node; use postgresql+psycopg://user@host/db)"
        )
        raise ValueError(msg)
    driver = parsed.get_driver_name()
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=PSYCOPG)
    elif driver != "psycopg":
        msg = (
            f"cluster mode uses the psycopg 3 driver (postgresql+psycopg://), got driver {driver!r}"
        )
        raise ValueError(msg)
    return parsed.render_as_string(hide_password=False)
