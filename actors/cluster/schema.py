"""The cluster's tables and the statements on them (SQLAlchemy Core, PostgreSQL).

- ``regisseur_nodes``: one row per live node, with the time its lease
  expires and since when it has renewed without a gap (``fresh_since``).
  A node renews its row; a row past its expiry belongs to a dead node and
  is removed by a node whose own lease is fresh, once that node has itself
  renewed without a gap for a whole lease of the dead one (see
  :func:`reap`): a database outage, which stops every node's renewals at
  once, never makes a live node look dead.
- ``regisseur_cluster_claims``: who owns what besides downloads (a singleton
  child, a shard of server rows): ``(kind, name) -> holder``. A claim is
  valid only while its holder's node row lives.

Every time here is the database server's clock, so nodes on machines whose
clocks disagree still agree on who expired.

Failures: every function raises ``SQLAlchemyError`` on a database error;
callers own the transaction (nothing here commits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    inspect,
    literal_column,
    not_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from regisseur.actors.cluster.channels import DOWNLOADS_CHANNEL, NODES_CHANNEL, notify
from regisseur.actors.database import create_tables
from regisseur.actors.downloads import store
from regisseur.messages.cluster import ClusterChanged
from regisseur.messages.downloads import DownloadState

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

__all__ = [
    "DOWNLOADS_CHANNEL",
    "NODES_CHANNEL",
    "NodeRow",
    "claims_table",
    "db_now",
    "ensure_tables",
    "nodes_table",
    "notify",
]

metadata = MetaData()

nodes_table = Table(
    "regisseur_nodes",
    metadata,
    Column("node_id", String(200), primary_key=True),
    Column("incarnation", String(40), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("sources", Text, nullable=False, default="[]"),
    Column("started_at", Float, nullable=False),
    Column("renewed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    # Since when this node has renewed without missing a renewal (DB clock).
    Column("fresh_since", Float),
)

claims_table = Table(
    "regisseur_cluster_claims",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("name", String(400), primary_key=True),
    Column("holder", String(200), nullable=False, index=True),
    Column("claimed_at", Float, nullable=False),
)


_NOW: ColumnElement[float] = literal_column("EXTRACT(EPOCH FROM clock_timestamp())::float8")
_UNFINISHED = [s.value for s in DownloadState if not s.terminal]


def db_now(connection: Connection | Session) -> float:
    """The database server's time (seconds since the epoch)."""
    return float(connection.execute(select(_NOW)).scalar_one())


def ensure_tables(connection: Connection) -> None:
    """Create the cluster tables, the downloads table and its sequence (idempotent)."""
    create_tables(connection, nodes_table, claims_table)
    # A table written by an earlier version has no fresh_since column yet.
    # Looked up first: ALTER TABLE takes an exclusive lock even when the
    # column exists, and would queue every node's renewal behind any open
    # transaction on the table (a frozen node's, say).
    columns = {c["name"] for c in inspect(connection).get_columns(nodes_table.name)}
    if "fresh_since" not in columns:
        connection.execute(text(f"ALTER TABLE {nodes_table.name} ADD COLUMN fresh_since float8"))
    store.ensure_table(connection)
    connection.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {store.SEQUENCE}"))


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One live node as the database knows it."""

    node_id: str
    incarnation: str
    host: str
    pid: int
    sources: tuple[str, ...]
    started_at: float
    expires_at: float


def _node(row: Any) -> NodeRow:
    try:
        sources = tuple(str(s) for s in json.loads(row.sources or "[]"))
    except ValueError:
        sources = ()
    return NodeRow(
        row.node_id, row.incarnation, row.host, row.pid, sources, row.started_at, row.expires_at
    )


def register(
    connection: Connection,
    *,
    node_id: str,
    incarnation: str,
    host: str,
    pid: int,
    sources: list[str],
    ttl: float,
    take_over: bool = False,
) -> NodeRow | None:
    """Insert this node's row, or take over its own expired one.

    Returns None when a live node already has ``node_id`` (see :func:`node`).
    ``take_over=True`` first deletes whatever row holds ``node_id`` (its
    holder is known dead), so the insert always succeeds.
    """
    if take_over:
        connection.execute(delete(nodes_table).where(nodes_table.c.node_id == node_id))
    values = {
        "node_id": node_id,
        "incarnation": incarnation,
        "host": host,
        "pid": pid,
        "sources": json.dumps(sources),
        "started_at": _NOW,
        "renewed_at": _NOW,
        "expires_at": _NOW + ttl,
        "fresh_since": _NOW,
    }
    statement = pg_insert(nodes_table).values(values)
    upsert = statement.on_conflict_do_update(
        index_elements=[nodes_table.c.node_id],
        set_={k: statement.excluded[k] for k in values if k != "node_id"},
        where=nodes_table.c.expires_at < _NOW,
    ).returning(*nodes_table.c)
    row = connection.execute(upsert).first()
    return _node(row) if row is not None else None


def renew(
    connection: Connection, node_id: str, incarnation: str, sources: list[str], ttl: float
) -> bool:
    """Extend this node's lease; False if the row is gone (reaped) or not ours.

    A renewal more than ``2 * ttl / 3`` after the previous one (a renewal
    missed: the node was frozen, cut off, or the database was down) starts
    ``fresh_since`` again.
    """
    gap = 2 * ttl / 3
    fresh = case(
        (nodes_table.c.renewed_at >= _NOW - gap, func.coalesce(nodes_table.c.fresh_since, _NOW)),
        else_=_NOW,
    )
    result = connection.execute(
        update(nodes_table)
        .where(nodes_table.c.node_id == node_id)
        .where(nodes_table.c.incarnation == incarnation)
        .values(
            renewed_at=_NOW,
            expires_at=_NOW + ttl,
            fresh_since=fresh,
            sources=json.dumps(sources),
        )
    )
    return bool(result.rowcount)


def node(connection: Connection, node_id: str) -> NodeRow | None:
    """The row of ``node_id``, live or not."""
    row = connection.execute(select(nodes_table).where(nodes_table.c.node_id == node_id)).first()
    return _node(row) if row is not None else None


def live_nodes(connection: Connection | Session) -> list[NodeRow]:
    """Every node whose lease has not expired, by id."""
    rows = connection.execute(
        select(nodes_table).where(nodes_table.c.expires_at >= _NOW).order_by(nodes_table.c.node_id)
    )
    return [_node(row) for row in rows]


def _member_ids() -> Any:
    """The nodes that have a row: a claim stays valid until its holder is reaped."""
    return select(nodes_table.c.node_id)


def reap(
    connection: Connection, node_id: str, incarnation: str, *, lock_timeout: float = 1.0
) -> tuple[list[str], int, int]:
    """Remove dead nodes and free what they (or vanished nodes) owned.

    Only a node whose own lease is fresh reaps (``node_id`` under
    ``incarnation``; otherwise nothing happens). A node is dead when its
    lease expired on the database's clock and the reaper has itself renewed
    without a gap for at least that node's whole lease time: a node that
    could renew had the time to. After a database outage, which stopped
    every node's renewals at once, nobody is reaped before the live nodes
    had a full lease to renew again.

    Returns (reaped node ids, downloads put back in the queue, claims freed).
    Safe to run on every node at once: each row is freed by one of them.
    A row another session holds locked (a frozen node's open transaction)
    fails the reap after ``lock_timeout`` seconds instead of holding the
    reaper up (it tries again at its next tick).
    """
    timeout_ms = max(1, int(lock_timeout * 1000))
    connection.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
    fresh_since = connection.execute(
        select(nodes_table.c.fresh_since)
        .where(nodes_table.c.node_id == node_id)
        .where(nodes_table.c.incarnation == incarnation)
        .where(nodes_table.c.expires_at >= _NOW)
    ).scalar()
    if fresh_since is None:
        return [], 0, 0  # our own lease is not fresh: we are no judge
    lease_of_dead = nodes_table.c.expires_at - nodes_table.c.renewed_at
    dead = [
        r.node_id
        for r in connection.execute(
            delete(nodes_table)
            .where(nodes_table.c.expires_at < _NOW)
            .where(lease_of_dead + float(fresh_since) < _NOW)
            .returning(nodes_table.c.node_id)
        )
    ]
    table = store.downloads_table
    freed = connection.execute(
        update(table)
        .where(table.c.owner.is_not(None))
        .where(table.c.state.in_(_UNFINISHED))
        .where(not_(table.c.owner.in_(select(nodes_table.c.node_id))))
        .values(owner=None)
    ).rowcount
    claims = connection.execute(
        delete(claims_table).where(not_(claims_table.c.holder.in_(_member_ids())))
    ).rowcount
    if dead or freed or claims:
        notify(connection, NODES_CHANNEL, json.dumps({"left": dead}))
    return dead, int(freed or 0), int(claims or 0)


def leave(connection: Connection, node_id: str, incarnation: str) -> None:
    """Remove this node's row and claims (a clean stop)."""
    connection.execute(delete(claims_table).where(claims_table.c.holder == node_id))
    connection.execute(
        delete(nodes_table)
        .where(nodes_table.c.node_id == node_id)
        .where(nodes_table.c.incarnation == incarnation)
    )
    notify(connection, NODES_CHANNEL, json.dumps({"left": [node_id]}))


# -- claims (singletons, shards) ------------------------------------------------


def claim(connection: Connection, kind: str, name: str, holder: str) -> bool:
    """Take ``(kind, name)`` for ``holder`` if it is free or its holder was reaped.

    True if ``holder`` holds it afterwards.
    """
    statement = pg_insert(claims_table).values(kind=kind, name=name, holder=holder, claimed_at=_NOW)
    statement = statement.on_conflict_do_update(
        index_elements=[claims_table.c.kind, claims_table.c.name],
        set_={"holder": holder, "claimed_at": _NOW},
        where=and_(
            claims_table.c.holder != holder,
            not_(claims_table.c.holder.in_(_member_ids())),
        ),
    )
    connection.execute(statement)
    current = connection.execute(
        select(claims_table.c.holder).where(
            (claims_table.c.kind == kind) & (claims_table.c.name == name)
        )
    ).scalar()
    return bool(current == holder)


def release(connection: Connection, kind: str, name: str, holder: str) -> None:
    """Give ``(kind, name)`` up if ``holder`` has it."""
    connection.execute(
        delete(claims_table)
        .where(claims_table.c.kind == kind)
        .where(claims_table.c.name == name)
        .where(claims_table.c.holder == holder)
    )


def holders(
    connection: Connection | Session, kind: str | None = None
) -> dict[tuple[str, str], str]:
    """Every claim (of ``kind``): ``(kind, name) -> holder``."""
    query = select(claims_table)
    if kind is not None:
        query = query.where(claims_table.c.kind == kind)
    return {(r.kind, r.name): r.holder for r in connection.execute(query)}


def owned_downloads(connection: Connection | Session) -> dict[str, int]:
    """How many unfinished downloads each node owns."""
    table = store.downloads_table
    rows = connection.execute(
        select(table.c.owner, func.count())
        .where(table.c.owner.is_not(None))
        .where(table.c.state.in_(_UNFINISHED))
        .group_by(table.c.owner)
    )
    return {r[0]: int(r[1]) for r in rows}


def decode_nodes_change(payload: str, this_node: str) -> ClusterChanged | None:
    """The event for a node notice (None if it only concerns ``this_node``)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    joined = tuple(str(n) for n in body.get("joined", ()) if n != this_node)
    left = tuple(str(n) for n in body.get("left", ()) if n != this_node)
    freed = tuple(str(n) for n in body.get("freed", ()))
    if not joined and not left and not freed:
        return None
    return ClusterChanged(joined=joined, left=left, freed=freed)
