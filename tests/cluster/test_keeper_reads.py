"""The (single-node) keeper's reads during and after a database outage.

``status()`` of a record only the database holds and ``list()`` read from
the database. A read that failed was never rolled back, so every later read
raised ``PendingRollbackError`` (until a write happened to fail and roll
back), while the keeper's health said healthy. Here: on a real PostgreSQL,
restarted (every connection cut), or refusing connections to the database.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import DownloadSettings, DownloadSource
from regisseur.messages.downloads import DownloadState
from tests.cluster.pg import PostgresServer

if TYPE_CHECKING:
    pass

WAIT = 30.0


def _noop(download_id: str, target_id: str, name: str) -> str:
    return f"/done/{target_id}"


def _keeper_health(system: ActorSystem) -> dict[str, Any]:
    def find(report: Any) -> Any:
        if report.name == "download-keeper":
            return report
        return next((f for c in report.children if (f := find(c)) is not None), None)

    report = find(system.health())
    assert report is not None, "no download-keeper in the health tree"
    details: dict[str, Any] = report.details
    return details


def _system(url: str) -> ActorSystem:
    # history=0: a finished record is read back from the database.
    return ActorSystem(
        database_url=url,
        download_sources=[DownloadSource("noop", _noop)],
        downloads=DownloadSettings(history=0),
        name="keeper-reads",
    )


def _durable(url: str) -> str:
    """The test server trades durability for speed (synchronous_commit off);
    an immediate stop is a crash, so this database commits durably."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        name = make_url(url).database
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = on'))
    engine.dispose()
    return url


@pytest.mark.timeout(120)
def test_reads_fail_while_the_database_refuses_and_recover_after(
    pg_url: str, refusing: Any
) -> None:
    with _system(pg_url) as system:
        done = system.downloads.submit("noop", "t", "done")
        assert system.downloads.wait(done, WAIT).state is DownloadState.SUCCEEDED
        assert _keeper_health(system)["healthy"] is True

        refusing(True)
        with pytest.raises(SQLAlchemyError):
            system.downloads.status(done)
        with pytest.raises(SQLAlchemyError):
            system.downloads.list()
        details = _keeper_health(system)
        assert details["healthy"] is False
        assert details["database_error"]
        assert system.healthy is False

        refusing(False)
        details = _keeper_health(system)  # no read needed: the report looks again
        assert details["healthy"] is True, details
        assert details["database_error"] is None
        assert system.downloads.status(done).state is DownloadState.SUCCEEDED
        assert [r.id for r in system.downloads.list()] == [done]
        after = system.downloads.submit("noop", "t", "after")
        assert system.downloads.wait(after, WAIT).state is DownloadState.SUCCEEDED


@pytest.mark.timeout(180)
def test_reads_during_and_after_a_restart_of_postgres(pg_server: PostgresServer) -> None:
    if pg_server.external:
        pytest.skip("needs a throwaway PostgreSQL server to restart (REGISSEUR_PG_URL is set)")
    with PostgresServer() as own, _system(_durable(own.create_database())) as system:
        done = system.downloads.submit("noop", "t", "done")
        assert system.downloads.wait(done, WAIT).state is DownloadState.SUCCEEDED

        during: list[str] = []
        restart = threading.Thread(target=own.restart, name="regisseur:pg-restart", daemon=True)
        restart.start()
        while restart.is_alive():
            try:
                system.downloads.list()
            except SQLAlchemyError as exc:
                during.append(type(exc).__name__)
            else:
                during.append("ok")
            restart.join(0.05)
        restart.join()

        # The first read after the restart may still meet the cut connection
        # (if no read failed during it); from the next one on, reads work.
        try:
            system.downloads.status(done)
        except SQLAlchemyError as exc:
            assert "PendingRollback" not in type(exc).__name__, exc
        for _ in range(3):
            assert system.downloads.status(done).state is DownloadState.SUCCEEDED
            assert [r.id for r in system.downloads.list()] == [done]
        assert "PendingRollbackError" not in during, during
        details = _keeper_health(system)
        assert details["healthy"] is True, details
        after = system.downloads.submit("noop", "t", "after")
        assert system.downloads.wait(after, WAIT).state is DownloadState.SUCCEEDED
