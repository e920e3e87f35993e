"""A database outage does not stop the system (the kernel's children retry).

The single-instance guard of a system on a real PostgreSQL server: while the
database refuses connections (or restarts), its renewal fails and it is
restarted with backoff, reported unhealthy meanwhile; the user's actors that
do not need the database keep answering; once the database is back the guard
takes its own lease again and the system is healthy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting
from regisseur.supervision import ChildSpec, StartupError
from regisseur.supervision.testing import Probe
from tests.cluster.pg import PostgresServer

if TYPE_CHECKING:
    pass


class Echo(Actor):
    def on_receive(self, message: Any) -> Any:
        return message


def _report(system: ActorSystem, name: str) -> Any:
    report = system.health().find(name)
    assert report is not None, f"no {name!r} in the health tree"
    return report


def _system(url: str, clock: ManualClock) -> ActorSystem:
    return ActorSystem(
        [ChildSpec("echo", Echo)],
        clock=clock,
        database_url=url,
        single_instance=True,
        lease_ttl=300.0,  # outlives the outage: the guard must keep it
        name="outage",
    )


def _assert_guarded(url: str) -> None:
    """Another instance on the same database is still refused."""
    other = ActorSystem(clock=ManualClock(), database_url=url, single_instance=True, name="outage")
    with pytest.raises(StartupError, match="single-instance guard.*held by"):
        other.start()


def _durable(url: str) -> str:
    """The test server trades durability for speed; this database keeps its commits."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        name = make_url(url).database
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = on'))
    engine.dispose()
    return url


@pytest.mark.timeout(120)
def test_a_database_outage_of_minutes_does_not_stop_the_system(pg_url: str, refusing: Any) -> None:
    clock = ManualClock()
    with _system(pg_url, clock) as system:
        probe = Probe(system, ChildFailed, ChildRestarting, ChildRestarted)
        assert system.healthy

        refusing(True)
        for _ in range(14):  # three and a half minutes of the system clock
            clock.advance(15.0)
            assert system.ask("echo", "ping") == "ping"
        probe.expect(ChildFailed, name="regisseur.lease")
        restarting = [e for e in probe.events if isinstance(e, ChildRestarting)]
        assert len(restarting) >= 5, restarting  # it kept retrying, with backoff
        assert [e.delay for e in restarting[:4]] == [1.0, 2.0, 4.0, 8.0]
        assert _report(system, "single-instance guard").healthy is False
        assert _report(system, "database").healthy is False
        assert not system.healthy
        assert system.running

        refusing(False)
        clock.advance(15.0)  # the next retry finds the database back
        probe.expect(ChildRestarted, name="regisseur.lease")
        assert system.healthy, system.health()
        _assert_guarded(pg_url)
        assert system.ask("echo", "pong") == "pong"


@pytest.mark.timeout(180)
def test_a_restart_of_postgres_is_one_retry_of_the_guard(pg_server: PostgresServer) -> None:
    if pg_server.external:
        pytest.skip("needs a throwaway PostgreSQL server to restart (REGISSEUR_PG_URL is set)")
    clock = ManualClock()
    with PostgresServer() as own:
        url = _durable(own.create_database())
        with _system(url, clock) as system:
            probe = Probe(system, ChildFailed, ChildRestarted)
            system.settle()  # the journal has written: the renewal is the next use
            own.restart()  # every pooled connection is cut
            clock.advance(100.0)  # the renewal meets a cut connection
            failed = probe.expect(ChildFailed, name="regisseur.lease")
            assert "OperationalError" in failed.error
            clock.advance(1.0)
            probe.expect(ChildRestarted, name="regisseur.lease")
            assert system.healthy, system.health()
            _assert_guarded(url)
