"""The download records' table and the queries on it (SQLAlchemy Core).

Only the state-keeper actor writes here, on its own thread, through a
connection of its own (a Core ``Connection``: a commit through it costs
about half the CPU of one through an ORM ``Session``). Readers that run
without a keeper (``regisseur status``) use :func:`read_records` on a plain
connection. Every function takes either a ``Session`` or a ``Connection``.

A failed write raises (``SQLAlchemyError``); the keeper then answers the
request with that error and keeps the record as it was before.
"""

from __future__ import annotations

import json
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from regisseur.actors.database import create_tables, lock_schema
from regisseur.messages.downloads import DownloadRecord, DownloadState, frozen_extra

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.engine import Row
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.dml import Insert, Update

__all__ = [
    "downloads_table",
    "ensure_table",
    "insert_record",
    "load_unfinished",
    "load_unfinished_owned",
    "next_seq",
    "owners_of",
    "read_owned",
    "read_record",
    "read_records",
    "record_from_mapping",
    "record_from_row",
    "record_values",
    "reopen",
    "set_claims",
    "stored_ids",
    "take_over",
    "take_over_many",
    "update_record",
    "warm_statements",
]

metadata = MetaData()

downloads_table = Table(
    "regisseur_downloads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("seq", Integer, nullable=False, index=True),
    Column("source", String(200), nullable=False, index=True),
    Column("target_id", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("original_filename", Text),
    Column("username", String(200)),
    Column("state", String(40), nullable=False, index=True),
    Column("progress", Float, nullable=False, default=0.0),
    Column("size", Integer),
    Column("transferred", Integer, nullable=False, default=0),
    Column("speed", Float, nullable=False, default=0.0),
    Column("time_remaining", Float),
    Column("file_path", Text),
    Column("error", Text),
    Column("extra", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Cluster mode: the node that claimed the download (NULL: queued, free).
    # One process: the keeper instance that holds it (see ``_owners``).
    Column("owner", String(200), index=True),
    # The fencing token of the download's latest start (an epoch that only
    # grows; 0: never started). Written only by the owner, when a run starts.
    Column("claim", Integer, nullable=False, default=0, server_default="0"),
)

#: Cluster mode: the PostgreSQL sequence that orders submits of every node.
SEQUENCE = "regisseur_downloads_seq"

_STATES = {state.value: state for state in DownloadState}
_IDS_PER_QUERY = 500  # well below SQLite's limit of bound parameters


#: Columns added after the first version, with their DDL (a table written by
#: an earlier version lacks them).
_ADDED_COLUMNS = (
    ("owner", "owner VARCHAR(200)"),
    ("claim", "claim INTEGER NOT NULL DEFAULT 0"),
)


def ensure_table(connection: Connection) -> None:
    """Create the table, or add the columns it lacks; safe from several processes.

    Processes that open one database at the same moment (the table new, or
    written by an earlier version) check and change it one at a time under
    the schema lock (``lock_schema``), so none fails on a column another
    just added. Writes nothing when the table is complete. Runs in the
    caller's transaction, which the caller commits.
    """
    create_tables(connection, downloads_table)
    if not _missing_columns(connection):
        return
    lock_schema(connection)  # then look again: another process may have added them
    for name in _missing_columns(connection):
        ddl = dict(_ADDED_COLUMNS)[name]
        connection.execute(text(f"ALTER TABLE {downloads_table.name} ADD COLUMN {ddl}"))


def _missing_columns(connection: Connection) -> list[str]:
    columns = {c["name"] for c in inspect(connection).get_columns(downloads_table.name)}
    return [name for name, _ in _ADDED_COLUMNS if name not in columns]


def _extra_json(extra: Mapping[str, Any]) -> str:
    """The ``extra`` column: sorted JSON (most records have none: no encoder run)."""
    if not extra:
        return "{}"
    return json.dumps(dict(extra), sort_keys=True, default=str)


def record_values(record: DownloadRecord) -> dict[str, Any]:
    return {
        "source": record.source,
        "target_id": record.target_id,
        "filename": record.filename,
        "original_filename": record.original_filename,
        "username": record.username,
        "state": record.state.value,
        "progress": record.progress,
        "size": record.size,
        "transferred": record.transferred,
        "speed": record.speed,
        "time_remaining": record.time_remaining,
        "file_path": record.file_path,
        "error": record.error,
        "extra": _extra_json(record.extra),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def record_from_row(row: Row[Any]) -> DownloadRecord:
    """The immutable record for one table row."""
    return record_from_mapping(row._mapping)


def record_from_mapping(m: Mapping[Any, Any]) -> DownloadRecord:
    """The immutable record for a row's columns (a row or its JSON form)."""
    try:
        extra = json.loads(m["extra"] or "{}")
    except ValueError:
        extra = {}
    return DownloadRecord(
        id=m["id"],
        source=m["source"],
        target_id=m["target_id"],
        filename=m["filename"],
        state=_STATES.get(m["state"], DownloadState.ERRORED),
        username=m["username"],
        original_filename=m["original_filename"],
        progress=m["progress"] or 0.0,
        size=m["size"],
        transferred=m["transferred"] or 0,
        speed=m["speed"] or 0.0,
        time_remaining=m["time_remaining"],
        file_path=m["file_path"],
        error=m["error"],
        extra=frozen_extra(extra if isinstance(extra, dict) else None),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def next_seq(session: Session | Connection) -> int:
    """The sequence number after the highest stored one (FIFO order)."""
    highest = session.execute(select(func.max(downloads_table.c.seq))).scalar()
    return int(highest or 0) + 1


# Built once: executing them with parameters reuses the compiled SQL.
_INSERT = insert(downloads_table)
_UPDATE = (
    update(downloads_table)
    .where(downloads_table.c.id == bindparam("_id"))
    .values(
        {
            c.name: bindparam(c.name)
            for c in downloads_table.c
            if c.name not in ("id", "seq", "owner", "claim")
        }
    )
)


# The update above that also stores a run's claim (and its owner, as
# ``_SET_CLAIM`` does) when ``_claim`` is not NULL, else leaves both as they
# are: a batch that ends one download and starts another (a worker reports
# its result, then claims its next download) writes both rows in one
# statement, not an update and then a claim.
_UPDATE_CLAIMING = _UPDATE.values(
    claim=func.coalesce(bindparam("_claim", type_=Integer), downloads_table.c.claim),
    owner=case(
        (bindparam("_claim", type_=Integer).is_(None), downloads_table.c.owner),
        else_=bindparam("_owner", type_=String(200)),
    ),
)


_SET_CLAIM = (
    update(downloads_table)
    .where(downloads_table.c.id == bindparam("_id"))
    .values(claim=bindparam("claim"), owner=bindparam("owner"))
)


def set_claims(session: Session | Connection, claims: Mapping[str, int], owner: str | None) -> None:
    """Store the epoch of each download's current run and its owner (not committed)."""
    if claims:
        _execute_many(
            session,
            _SET_CLAIM,
            [{"_id": i, "claim": c, "owner": owner} for i, c in claims.items()],
        )


def _execute_many(
    session: Session | Connection, statement: Insert | Update, rows: list[dict[str, Any]]
) -> None:
    """Run ``statement`` once per row, as one executemany.

    On a SQLite ``Connection`` the statement's SQL (compiled once per
    connection and set of columns, then cached) goes to the driver with plain
    tuples: SQLAlchemy's per-row parameter processing, a fifth of the
    keeper's time per download, is skipped (SQLite's types need none).
    Anything else goes through ``execute``.

    The cache lives in the DBAPI connection's ``info`` dict (see
    ``_compiled``): owned by the engine's pool, gone with the engine, and
    never shared between two systems (each has its own engine).
    """
    compiled = _driver_sql(session, statement, tuple(rows[0]))
    if compiled is None:
        session.execute(statement, rows)
        return
    assert isinstance(session, Connection)  # _driver_sql says so
    sql, names = compiled
    if len(names) == 1:  # itemgetter of one name gives the value, not a tuple
        session.exec_driver_sql(sql, [(row[names[0]],) for row in rows])
        return
    values = itemgetter(*names)  # the row's values in parameter order, built in C
    session.exec_driver_sql(sql, [values(row) for row in rows])


def _driver_sql(
    session: Session | Connection, statement: Insert | Update, columns: tuple[str, ...]
) -> tuple[str, tuple[str, ...]] | None:
    """The SQL and parameter order to send ``statement`` with rows of
    ``columns`` to a SQLite connection's driver (compiled once, then
    cached); None where it goes through ``execute`` instead."""
    if not isinstance(session, Connection) or session.dialect.name != "sqlite":
        return None
    cache = _compiled(session)
    key = (id(statement), columns)
    compiled = cache.get(key)
    if compiled is None:
        built = statement.compile(dialect=session.dialect, column_keys=list(columns))
        if built.positiontup is None:  # a named paramstyle: no tuples to build
            return None
        names = tuple(built.positiontup)
        if not set(names) <= set(columns):  # a column default to fill in: SQLAlchemy does it
            return None
        compiled = (built.string, names)
        cache[key] = compiled
    return compiled


#: The key of the compiled statements in ``Connection.info``.
_CACHE_KEY = "regisseur.store.compiled"


def _compiled(
    connection: Connection,
) -> dict[tuple[int, tuple[str, ...]], tuple[str, tuple[str, ...]]]:
    """The statements compiled for ``connection``'s DBAPI connection.

    (id of the statement, columns) -> (SQL, parameter order); the statements
    are module constants, so the ids stay valid. Used by the thread that
    holds the connection (the keeper's).
    """
    cache: dict[tuple[int, tuple[str, ...]], tuple[str, tuple[str, ...]]]
    cache = connection.info.setdefault(_CACHE_KEY, {})
    return cache


def insert_record(
    session: Session | Connection, record: DownloadRecord, seq: int, owner: str | None = None
) -> None:
    """Add a new record (not committed)."""
    insert_many(session, [(record, seq)], owner=owner)


def insert_many(
    session: Session | Connection,
    rows: Sequence[tuple[DownloadRecord, int]],
    owner: str | None = None,
    claims: Mapping[str, int] | None = None,
) -> None:
    """Add new records with their sequence numbers and owner, in one statement
    (not committed); a record's claim is its entry in ``claims``, else 0."""
    if rows:
        found = claims or {}
        _execute_many(
            session, _INSERT, [_inserted(r, seq, owner, found.get(r.id, 0)) for r, seq in rows]
        )


def update_record(session: Session | Connection, record: DownloadRecord) -> bool:
    """Write every field of ``record`` (not committed); False if it has no row."""
    result = session.execute(_UPDATE, {"_id": record.id, **record_values(record)})
    return bool(getattr(result, "rowcount", 1))


def update_many(
    session: Session | Connection,
    records: Sequence[DownloadRecord],
    claims: Mapping[str, int] | None = None,
    owner: str | None = None,
) -> None:
    """Write every field of several existing records, in one statement (not committed).

    With ``claims``, a record's entry there is stored too, with ``owner``
    (what :func:`set_claims` stores), in the same write of its row.
    """
    if not records:
        return
    if not claims:
        _execute_many(session, _UPDATE, [_updated(r) for r in records])
        return
    _execute_many(
        session, _UPDATE_CLAIMING, [_claiming(r, claims.get(r.id), owner) for r in records]
    )


def _inserted(record: DownloadRecord, seq: int, owner: str | None, claim: int) -> dict[str, Any]:
    """The parameters of ``_INSERT`` for ``record``."""
    return {"id": record.id, "seq": seq, "owner": owner, "claim": claim} | record_values(record)


def _updated(record: DownloadRecord) -> dict[str, Any]:
    """The parameters of ``_UPDATE`` for ``record``."""
    return {"_id": record.id, **record_values(record)}


def _claiming(record: DownloadRecord, claim: int | None, owner: str | None) -> dict[str, Any]:
    """The parameters of ``_UPDATE_CLAIMING`` for ``record`` (``claim`` None:
    the row keeps its claim and owner)."""
    return {"_id": record.id, "_claim": claim, "_owner": owner} | record_values(record)


def warm_statements(connection: Connection) -> None:
    """Compile the insert and the updates now, so the first downloads do not
    wait for it (a few milliseconds each on a new engine).

    SQLite: compiled for the driver (see ``_execute_many``), nothing
    executed, so no write lock is asked for: a start never waits for
    another process's write (one frozen mid-commit held it, and the start
    timed out). Other databases: executed in a transaction it rolls back
    (call it with no work of the caller's pending); their row locks do not
    wait for others' rows.
    """
    probe = DownloadRecord(id="", source="", target_id="", filename="")
    rows = (
        (_INSERT, _inserted(probe, 0, None, 0)),
        (_UPDATE, _updated(probe)),
        (_UPDATE_CLAIMING, _claiming(probe, None, None)),
    )
    if all(_driver_sql(connection, statement, tuple(row)) for statement, row in rows):
        return
    try:
        insert_many(connection, [(probe, 0)])
        update_many(connection, [probe])
        update_many(connection, [probe], claims={"": 1})
    finally:
        connection.rollback()


def read_record(session: Session | Connection, download_id: str) -> DownloadRecord | None:
    """One record by id, or None."""
    row = session.execute(
        select(downloads_table).where(downloads_table.c.id == download_id)
    ).first()
    return record_from_row(row) if row is not None else None


def stored_ids(session: Session | Connection, download_ids: Sequence[str]) -> set[str]:
    """Those of ``download_ids`` that have a row (a few queries for many ids)."""
    found: set[str] = set()
    column = downloads_table.c.id
    for start in range(0, len(download_ids), _IDS_PER_QUERY):
        chunk = download_ids[start : start + _IDS_PER_QUERY]
        found.update(session.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def read_records(
    session: Session | Connection,
    *,
    source: str | None = None,
    states: Sequence[DownloadState] | None = None,
    limit: int | None = None,
) -> list[DownloadRecord]:
    """Records in submit order, filtered by source and states."""
    query = select(downloads_table).order_by(downloads_table.c.seq)
    if source is not None:
        query = query.where(downloads_table.c.source == source)
    if states is not None:
        query = query.where(downloads_table.c.state.in_([s.value for s in states]))
    if limit is not None:
        query = query.limit(limit)
    return [record_from_row(row) for row in session.execute(query)]


def load_unfinished(session: Session | Connection) -> list[DownloadRecord]:
    """Every record that is not terminal, in submit order."""
    unfinished = [s for s in DownloadState if not s.terminal]
    return read_records(session, states=unfinished)


def load_unfinished_owned(
    session: Session | Connection,
) -> list[tuple[DownloadRecord, str | None, int]]:
    """Every record that is not terminal, with its owner and claim, in submit order."""
    unfinished = [s.value for s in DownloadState if not s.terminal]
    query = (
        select(downloads_table)
        .where(downloads_table.c.state.in_(unfinished))
        .order_by(downloads_table.c.seq)
    )
    return [
        (record_from_row(row), row._mapping["owner"], int(row._mapping["claim"] or 0))
        for row in session.execute(query)
    ]


def take_over(
    session: Session | Connection, download_id: str, old_owner: str | None, owner: str
) -> bool:
    """Make ``owner`` the owner of a download ``old_owner`` held (not committed).

    Conditional on the row still naming ``old_owner``: of two processes that
    take over the same abandoned download at once, exactly one gets True.
    """
    column = downloads_table.c.owner
    held = column.is_(None) if old_owner is None else column == old_owner
    result = session.execute(
        update(downloads_table).where(downloads_table.c.id == download_id, held).values(owner=owner)
    )
    return bool(getattr(result, "rowcount", 1))


def take_over_many(
    session: Session | Connection, download_ids: Sequence[str], old_owner: str | None, owner: str
) -> set[str]:
    """:func:`take_over` of many downloads ``old_owner`` held; those taken (not committed).

    A few statements per 500 ids instead of one per download: a keeper
    starting on 80,000 unfinished downloads of a run that was stopped spent
    7 s taking them one by one, past its start timeout. Each row is still
    taken only if it names ``old_owner``, and the ids returned are those
    that name ``owner`` afterwards, within the same transaction: of two
    processes taking them at once, each row goes to exactly one.
    """
    table = downloads_table
    column = table.c.owner
    held = column.is_(None) if old_owner is None else column == old_owner
    taken: set[str] = set()
    for start in range(0, len(download_ids), _IDS_PER_QUERY):
        chunk = list(download_ids[start : start + _IDS_PER_QUERY])
        session.execute(update(table).where(table.c.id.in_(chunk), held).values(owner=owner))
        taken.update(
            session.execute(
                select(table.c.id).where(table.c.id.in_(chunk), column == owner)
            ).scalars()
        )
    return taken


def reopen(
    session: Session | Connection, record: DownloadRecord, was: DownloadState, owner: str
) -> int | None:
    """Write ``record`` (an ended download put back to run) and ``owner`` (not committed).

    Conditional on the row still being in state ``was``: of two processes
    that reopen the same download at once, exactly one does. Returns the
    claim stored with the row (the epoch of its last run), or None if the
    row is not in state ``was`` any more (or is gone).
    """
    table = downloads_table
    result = session.execute(
        update(table)
        .where(table.c.id == record.id, table.c.state == was.value)
        .values(owner=owner, **record_values(record))
    )
    if not getattr(result, "rowcount", 1):
        return None
    claim = session.execute(select(table.c.claim).where(table.c.id == record.id)).scalar()
    return int(claim or 0)


def read_owned(
    session: Session | Connection, download_id: str
) -> tuple[DownloadRecord, str | None, int] | None:
    """One record by id with its owner and claim, or None."""
    row = session.execute(
        select(downloads_table).where(downloads_table.c.id == download_id)
    ).first()
    if row is None:
        return None
    return record_from_row(row), row._mapping["owner"], int(row._mapping["claim"] or 0)


def owners_of(session: Session | Connection, ids: Sequence[str]) -> dict[str, str | None]:
    """The owner column of the given downloads (ids without a row are left out)."""
    found: dict[str, str | None] = {}
    ids = list(ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):  # SQLite bounds the parameters
        chunk = ids[start : start + _IDS_PER_QUERY]
        rows = session.execute(
            select(downloads_table.c.id, downloads_table.c.owner).where(
                downloads_table.c.id.in_(chunk)
            )
        )
        found.update((row.id, row.owner) for row in rows)
    return found
