"""Fixtures for tests against a real PostgreSQL server (see ``tests/cluster/pg.py``).

* ``pg_server`` (session): the ``PostgresServer`` — the one in
  ``$REGISSEUR_PG_URL``, or a throwaway server started once for the session
  and stopped (its files removed) at the end.
* ``pg_url`` (function): the SQLAlchemy URL of a fresh, empty database on it,
  dropped (``WITH (FORCE)``) after the test.

When no server can be had, the tests that use them are skipped with
"PostgreSQL not available: <reason>", unless ``REGISSEUR_REQUIRE_POSTGRES=1``
(as in CI), where they fail with that reason instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.cluster.pg import PostgresServer, PostgresUnavailable
from tests.downloads.conftest import http_server  # noqa: F401 - the downloads' HTTP server fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

REQUIRE_ENV = "REGISSEUR_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of the session (skips or fails when there is none)."""
    server = PostgresServer()
    reason = None
    try:
        server.start()
    except PostgresUnavailable as exc:
        reason = exc.reason
    if reason is not None:
        message = f"PostgreSQL not available: {reason}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database on ``pg_server`` for this test; dropped after it."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def refusing(pg_server: PostgresServer, pg_url: str) -> Iterator[Any]:
    """``refusing(True)`` cuts every session of the test database and refuses
    new ones (as an unreachable database would); ``refusing(False)`` lets
    them in again (also done after the test)."""
    name = make_url(pg_url).database
    admin = create_engine(pg_server.url("postgres"), isolation_level="AUTOCOMMIT")

    def switch(refuse: bool) -> None:
        with admin.connect() as connection:
            allow = "false" if refuse else "true"
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allow}'))
            if refuse:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )

    try:
        yield switch
    finally:
        switch(False)
        admin.dispose()
