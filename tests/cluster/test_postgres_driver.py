"""A bare ``postgresql://`` URL opens with psycopg 3 on a real server, for the
system's database and for ``regisseur status --db``.

SQLAlchemy 2.0 (the newest on Python 3.10) opens a bare URL with psycopg2,
which ``regisseur[postgres]`` does not install: there both failed with "no
module 'psycopg2'" (and status told the user to install the extra they had).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from regisseur.actors import ActorSystem
from regisseur.actors.database import Database
from tests.test_cli_download import run as run_cli


def _bare(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.timeout(60)
def test_the_systems_database_opens_a_bare_url_with_psycopg_3(pg_url: str) -> None:
    database = Database(_bare(pg_url))
    database.open()
    try:
        assert database.engine.dialect.driver == "psycopg"
        assert database.url.startswith("postgresql://")  # shown as the user wrote it
    finally:
        database.close()


@pytest.mark.timeout(60)
def test_a_system_on_a_bare_url_starts_and_keeps_its_journal(pg_url: str) -> None:
    with ActorSystem([], database_url=_bare(pg_url)) as system:
        assert system.health().healthy
    result = run_cli("status", "--db", _bare(pg_url), "--json")
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)["events"]
    assert events, "the system's start and stop were journalled"
