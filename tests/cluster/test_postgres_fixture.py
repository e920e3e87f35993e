"""The PostgreSQL fixtures give a working server with the features cluster mode uses.

Each test gets its own database (``pg_url``): plain queries through
SQLAlchemy, row locks with ``FOR UPDATE SKIP LOCKED`` across two sessions,
and LISTEN/NOTIFY between two psycopg connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from tests.cluster.pg import PostgresServer


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.timeout(60)
def test_select_one_through_sqlalchemy(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            assert conn.execute(text("SELECT current_database()")).scalar_one() == (
                make_url(pg_url).database
            )
    finally:
        engine.dispose()


@pytest.mark.timeout(60)
def test_each_test_gets_a_fresh_database(pg_server: PostgresServer, pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    assert pg_server.url(make_url(pg_url).database or "") == pg_url
    other = pg_server.create_database()
    try:
        assert other != pg_url
        with psycopg.connect(_conninfo(other)) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            assert tables == (0,)
    finally:
        pg_server.drop_database(other)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(_conninfo(other), connect_timeout=5).close()


@pytest.mark.timeout(60)
def test_skip_locked_skips_the_row_another_session_holds(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE jobs (id integer PRIMARY KEY, owner text)"))
            conn.execute(text("INSERT INTO jobs (id) VALUES (1), (2)"))
        claim = text("SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
        with engine.connect() as first, engine.connect() as second:
            with first.begin():
                assert first.execute(claim).scalar_one() == 1
                with second.begin():
                    assert second.execute(claim).scalar_one() == 2
                    third = second.execute(
                        text("SELECT id FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED")
                    ).scalars()
                    assert list(third) == [2]  # row 1 is skipped; its own lock on row 2 is not
            with second.begin():
                assert second.execute(claim).scalar_one() == 1  # released at commit
    finally:
        engine.dispose()


@pytest.mark.timeout(60)
def test_listen_notify_between_two_connections(pg_url: str) -> None:
    conninfo = _conninfo(pg_url)
    with (
        psycopg.connect(conninfo, autocommit=True) as listener,
        psycopg.connect(conninfo, autocommit=True) as sender,
    ):
        listener.execute("LISTEN regisseur_events")
        sender.execute("SELECT pg_notify('regisseur_events', 'node-1 up')")
        received = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
        assert received == [("regisseur_events", "node-1 up")]
        # Nothing more is pending: the wait ends on its timeout.
        assert list(listener.notifies(timeout=0.2)) == []
