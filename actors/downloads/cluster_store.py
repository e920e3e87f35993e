"""Cluster mode: the downloads table shared by every node (PostgreSQL).

A row with ``owner`` NULL is queued and free; a node claims rows for its
sources with ``SELECT ... FOR UPDATE SKIP LOCKED`` and sets itself as
owner in the same transaction, so a download is started by exactly one
node. Every claim (a first claim, a claim after a reaping, a node taking
its own rows back after a fence or a restart) adds one to the row's
``claim`` column, the fencing token, and returns it. Every write of a node
is conditional on it still owning the row under the token of its claim
and the row not being terminal: a download cancelled by another node, or
taken over after this node's lease lapsed (even by this very node again),
is never overwritten by the older claim.

Every committed state change is also announced on
``channels.DOWNLOADS_CHANNEL`` (``pg_notify``, sent at commit) so the other
nodes can wake up (claim, cancel a run) and republish it to their
subscribers.

Only a keeper actor calls these, on its own thread, inside its session's
transaction (nothing here commits). Failures raise ``SQLAlchemyError``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, func, insert, literal_column, or_, select, text, update

from regisseur.actors.cluster import channels
from regisseur.actors.downloads import store
from regisseur.messages.downloads import DownloadRecord, DownloadState

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.engine import Connection, CursorResult
    from sqlalchemy.orm import Session

__all__ = [
    "Claimed",
    "cancel_anywhere",
    "change_notice_prefix",
    "change_payload",
    "claim",
    "claim_many",
    "current_claim",
    "decode_change",
    "give_back",
    "insert_queued",
    "notify_change_of_source",
    "notify_changes",
    "owned",
    "release_owned",
    "reopen_free",
    "take_back",
    "write_owned",
]

#: The channel of download changes.
CHANNEL = channels.DOWNLOADS_CHANNEL

_TABLE = store.downloads_table
_UNFINISHED = [s.value for s in DownloadState if not s.terminal]
_MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes

_INSERT = insert(_TABLE).values(seq=func.nextval(store.SEQUENCE))


class Claimed(NamedTuple):
    """A download this node claimed, and the fencing token of that claim."""

    record: DownloadRecord
    claim: int


def insert_queued(session: Session | Connection, records: Sequence[DownloadRecord]) -> None:
    """Store submitted records as queued and free (owner NULL)."""
    if records:
        session.execute(
            _INSERT, [{"id": r.id, "owner": None, **store.record_values(r)} for r in records]
        )


_STATES_SQL = ", ".join(f"'{v}'" for v in _UNFINISHED)
_CLAIM_MANY = text(
    f"""
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:limits AS int[])) AS w(source, lim)
    ), picked AS (
        SELECT free.id FROM wanted CROSS JOIN LATERAL (
            SELECT id FROM {_TABLE.name}
            WHERE source = wanted.source AND owner IS NULL AND state IN ({_STATES_SQL})
              AND NOT (id = ANY(CAST(:busy AS text[])))
            ORDER BY seq LIMIT wanted.lim
            FOR UPDATE SKIP LOCKED
        ) AS free
    )
    UPDATE {_TABLE.name} SET owner = :node, claim = {_TABLE.name}.claim + 1 FROM picked
    WHERE {_TABLE.name}.id = picked.id
    RETURNING {_TABLE.name}.*
    """
)


def claim_many(
    session: Session | Connection,
    node_id: str,
    wants: dict[str, int],
    busy: Sequence[str] = (),
) -> list[Claimed]:
    """Claim free downloads of several sources in one statement, oldest first.

    ``wants``: source -> the most to claim of it. Rows other nodes hold
    locked (claiming them right now) are skipped, never waited for; so are
    the ids in ``busy`` (an earlier run of them on this node has not ended).
    """
    wants = {source: limit for source, limit in wants.items() if limit > 0}
    if not wants:
        return []
    rows = session.execute(
        _CLAIM_MANY,
        {
            "sources": list(wants),
            "limits": list(wants.values()),
            "node": node_id,
            "busy": list(busy),
        },
    )
    return _claimed(rows)


def _claimed(rows: Any) -> list[Claimed]:
    """The claimed rows as (record, token), in submit order."""
    found = [
        (row._mapping["seq"], Claimed(store.record_from_row(row), int(row._mapping["claim"])))
        for row in rows
    ]
    found.sort(key=lambda pair: pair[0])
    return [claimed for _seq, claimed in found]


def claim(
    session: Session | Connection,
    source: str,
    node_id: str,
    limit: int,
    cluster_limit: int,
    *,
    busy: Sequence[str] = (),
) -> list[Claimed]:
    """Claim up to ``limit`` free downloads of ``source``, keeping ``cluster_limit``.

    The downloads of ``source`` owned by any node stay within
    ``cluster_limit``: the count and the claim run under a transaction-level
    advisory lock per source, so two nodes cannot both see room for one.
    """
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"regisseur:source:{source}"},
    )
    owned = session.execute(
        select(func.count())
        .select_from(_TABLE)
        .where(_TABLE.c.source == source)
        .where(_TABLE.c.owner.is_not(None))
        .where(_TABLE.c.state.in_(_UNFINISHED))
    ).scalar_one()
    return claim_many(session, node_id, {source: min(limit, cluster_limit - int(owned))}, busy)


_WRITE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("_id"))
    .where(_TABLE.c.owner == bindparam("_owner"))
    .where(_TABLE.c.claim == bindparam("_claim"))
    # Written out, not a bound list: executemany takes no "expanding" parameters.
    .where(or_(*(_TABLE.c.state == literal_column(f"'{v}'") for v in _UNFINISHED)))
    # ``claim`` (the fencing token) is set by the claiming statements, never here.
    .values({c.name: bindparam(c.name) for c in _TABLE.c if c.name not in ("id", "seq", "claim")})
)


def write_owned(
    session: Session | Connection,
    records: Sequence[DownloadRecord],
    node_id: str,
    claims: Mapping[str, int],
) -> list[str]:
    """Write ``records`` where ``node_id`` still owns the row under ``claims[id]``.

    One statement for all of them; a terminal row is never written. A
    terminal record gives its row up (owner NULL). Returns the ids that were
    not written (cancelled elsewhere, taken over, or claimed again since):
    the caller must drop its copies. A record without a token is not written.
    """
    if not records:
        return []
    params = [
        {
            "_id": r.id,
            "_owner": node_id,
            "_claim": claims.get(r.id, -1),
            "owner": None if r.terminal else node_id,
            **store.record_values(r),
        }
        for r in records
    ]
    result: CursorResult[Any] = session.execute(_WRITE, params)  # type: ignore[assignment]
    if result.rowcount == len(params):
        return []
    # Some rows were not ours any more: find which (a rare, slow path).
    written = {r.id: r for r in records}
    rows = session.execute(
        select(
            _TABLE.c.id, _TABLE.c.state, _TABLE.c.updated_at, _TABLE.c.owner, _TABLE.c.claim
        ).where(_TABLE.c.id.in_(list(written)))
    )
    lost = set(written)
    for row in rows:
        mine = written[row.id]
        owner = None if mine.terminal else node_id
        now = (row.state, row.updated_at, row.owner, row.claim)
        if now == (mine.state.value, mine.updated_at, owner, claims.get(row.id, -1)):
            lost.discard(row.id)
    return sorted(lost)


def current_claim(
    session: Session | Connection, download_id: str
) -> tuple[str | None, int, bool] | None:
    """(owner, claim, terminal) of a download's row; None if there is none."""
    row = session.execute(
        select(_TABLE.c.owner, _TABLE.c.claim, _TABLE.c.state).where(_TABLE.c.id == download_id)
    ).first()
    if row is None:
        return None
    return row.owner, int(row.claim), row.state not in _UNFINISHED


def cancel_anywhere(
    session: Session | Connection, download_id: str, reason: str | None, now: float
) -> tuple[DownloadRecord | None, DownloadRecord | None, str | None]:
    """Cancel a download whichever node owns it.

    Returns (the record before, the record after or None if it had already
    ended, the owner it had). (None, None, None) for an unknown id.
    """
    row = session.execute(
        select(_TABLE).where(_TABLE.c.id == download_id).with_for_update()
    ).first()
    if row is None:
        return None, None, None
    before = store.record_from_row(row)
    owner = row._mapping["owner"]
    if before.terminal:
        return before, None, owner
    after = before.evolve(
        state=DownloadState.CANCELLED,
        error=reason,
        speed=0.0,
        time_remaining=None,
        updated_at=now,
    )
    values = store.record_values(after)
    values["owner"] = None
    session.execute(update(_TABLE).where(_TABLE.c.id == download_id).values(values))
    return before, after, owner


def release_owned(session: Session | Connection, node_id: str) -> list[str]:
    """Give back every unfinished download ``node_id`` owns (a clean stop).

    Returns the sources that have queued work again.
    """
    rows = session.execute(
        update(_TABLE)
        .where(_TABLE.c.owner == node_id)
        .where(_TABLE.c.state.in_(_UNFINISHED))
        .values(owner=None)
        .returning(_TABLE.c.source)
    )
    return sorted({r[0] for r in rows})


def reopen_free(session: Session | Connection, record: DownloadRecord, was: DownloadState) -> bool:
    """Put ``record`` (an ended download reopened by a retry) back in the queue, free.

    Conditional on the row still being in state ``was``: of two nodes that
    retry the same download at once, exactly one does (True). The row keeps
    its claim column, so the next claim's token is above every earlier
    run's, whose late writes stay fenced.
    """
    result = session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == record.id, _TABLE.c.state == was.value)
        .values(owner=None, **store.record_values(record))
    )
    return bool(getattr(result, "rowcount", 1))


# One statement per notice, sent together (executemany: one pipeline with
# psycopg). Not an array of payloads: quoting JSON into a text[] literal cost
# more CPU than everything else the keeper does.
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def change_payload(
    record: DownloadRecord,
    previous: DownloadState | None,
    node_id: str,
    *,
    owner: str | None,
    progress: bool = False,
) -> str:
    """The notice of one committed change (the record inline if it fits).

    ``progress``: only the progress fields changed (a flush), not the state.
    """
    body: dict[str, Any] = {
        "node": node_id,
        "owner": owner,
        "previous": previous.value if previous is not None else None,
        "id": record.id,
        "source": record.source,
        "state": record.state.value,
    }
    if progress:
        body["progress"] = True
    full = dict(body, record={"id": record.id, **store.record_values(record)})
    payload = json.dumps(full, default=str)
    if len(payload) > _MAX_PAYLOAD:  # json.dumps writes ASCII: characters are bytes
        payload = json.dumps(body)  # receivers read the row instead
    return payload


def change_notice_prefix(node_id: str) -> str:
    """How every change notice sent by ``node_id`` starts (to skip its own)."""
    return json.dumps({"node": node_id})[:-1] + ","


def notify_changes(session: Session | Connection, payloads: Sequence[str]) -> None:
    """Announce committed changes to every node, in one round trip (sent at commit)."""
    channel = channels.DOWNLOADS_CHANNEL
    if payloads:
        session.execute(_NOTIFY, [{"channel": channel, "payload": p} for p in payloads])


def decode_change(payload: str) -> dict[str, Any] | None:
    """The fields of a change notice (None if it is not one of ours)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return None
    record = body.get("record")
    if isinstance(record, dict):
        try:
            body["record"] = store.record_from_mapping(record)
        except (KeyError, TypeError, ValueError):
            body["record"] = None
    return body


def notify_change_of_source(session: Session | Connection, source: str, node_id: str) -> None:
    """Announce that ``source`` has free downloads again (given back by ``node_id``)."""
    payload = json.dumps({"node": node_id, "id": "", "source": source, "state": None})
    channels.notify(session, channels.DOWNLOADS_CHANNEL, payload)


def owned(session: Session | Connection, node_id: str) -> list[DownloadRecord]:
    """The unfinished downloads ``node_id`` owns, oldest first."""
    rows = session.execute(
        select(_TABLE)
        .where(_TABLE.c.owner == node_id)
        .where(_TABLE.c.state.in_(_UNFINISHED))
        .order_by(_TABLE.c.seq)
    )
    return [store.record_from_row(row) for row in rows]


def take_back(
    session: Session | Connection, node_id: str, busy: Sequence[str] = ()
) -> list[Claimed]:
    """The unfinished rows ``node_id`` still owns, but ``busy`` (after a fence
    or a restart of its keeper), each claimed anew (a fresh token), oldest first."""
    rows = session.execute(
        update(_TABLE)
        .where(_TABLE.c.owner == node_id)
        .where(_TABLE.c.state.in_(_UNFINISHED))
        .where(_TABLE.c.id.not_in(list(busy)))
        .values(claim=_TABLE.c.claim + 1)
        .returning(*_TABLE.c)
    )
    return _claimed(rows)


def give_back(session: Session | Connection, ids: Sequence[str]) -> None:
    """Put downloads back in the queue (owner NULL)."""
    session.execute(update(_TABLE).where(_TABLE.c.id.in_(list(ids))).values(owner=None))
