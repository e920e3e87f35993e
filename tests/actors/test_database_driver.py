"""A bare ``postgresql://`` URL names psycopg 3, the driver
``regisseur[postgres]`` installs, whichever SQLAlchemy 2.x is installed
(opened against a real server: tests/cluster/test_postgres_driver.py).

SQLAlchemy 2.0 (the newest on Python 3.10) opens a bare URL with psycopg2:
there ``regisseur status --db postgresql://...`` said "no module
'psycopg2'" and named the extra, which installs psycopg 3 and did not help.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from regisseur.actors.database import with_default_driver


def test_a_bare_postgresql_url_names_psycopg_3() -> None:
    url = make_url("postgresql://app:secret@db.invalid:5433/app?sslmode=require")
    assert with_default_driver(url) == url.set(drivername="postgresql+psycopg")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://app@db/app",
        "postgresql+asyncpg://app@db/app",
        "postgresql+psycopg://app@db/app",
        "sqlite:///records.db",
        "mysql://app@db/app",
    ],
)
def test_a_url_that_names_its_driver_or_another_database_is_left_as_it_is(url: str) -> None:
    assert with_default_driver(make_url(url)) == make_url(url)


def test_an_application_with_only_psycopg2_keeps_sqlalchemys_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        if name == "psycopg":
            return None
        if name == "psycopg2":
            return real("json")  # any spec: "installed"
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    url = make_url("postgresql://app@db/app")
    assert with_default_driver(url) == url
