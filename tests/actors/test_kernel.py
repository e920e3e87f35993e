"""The system's own actors: supervised like a user's, and judged by health()."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.exc import OperationalError

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.messages import ChildFailed, ChildGaveUp, ChildRestarted, ChildRestarting
from regisseur.supervision import ChildSpec, FatalError, StartupError
from regisseur.supervision.testing import FaultInjector, Probe

if TYPE_CHECKING:
    from pathlib import Path


class Echo(Actor):
    def on_receive(self, message: Any) -> Any:
        return message


class Gate(Actor):
    """Its ``on_start`` blocks (its supervisor with it) until ``release`` is set."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self._entered = entered
        self._release = release

    def on_start(self) -> None:
        self._entered.set()
        self._release.wait(10)


@pytest.mark.timeout(20)
def test_a_root_supervisor_that_does_not_answer_is_reported_unhealthy() -> None:
    entered, release = threading.Event(), threading.Event()
    with ActorSystem(clock=ManualClock(), database_url=None) as system:
        assert system.healthy
        spawner = threading.Thread(
            target=system.spawn, args=(ChildSpec("gate", Gate, args=(entered, release)),)
        )
        spawner.start()
        try:
            assert entered.wait(5)  # the root is busy starting "gate"
            report = system.health()
            assert not report.healthy
            (root,) = [r for r in report.children if r.name == "root"]
            assert root.status == "unresponsive"
            assert not root.healthy
        finally:
            release.set()
            spawner.join(10)
        assert system.healthy


def _guard(system: ActorSystem) -> Any:
    report = system.health().find("single-instance guard")
    assert report is not None
    return report


@pytest.mark.timeout(30)
def test_a_failed_lease_renewal_is_restarted_with_backoff_and_reported(tmp_path: Path) -> None:
    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'app.db'}"
    options: dict[str, Any] = {"database_url": url, "single_instance": True, "name": "app"}
    with ActorSystem([ChildSpec("e", Echo)], clock=clock, lease_ttl=30, **options) as system:
        probe = Probe(system, ChildFailed, ChildRestarting, ChildRestarted)
        down = OperationalError("UPDATE regisseur_instance_lease", {}, Exception("db down"))
        FaultInjector(system).crash("regisseur.lease", exc=down)
        clock.advance(10)  # the renewal tick (a third of lease_ttl) fails
        probe.expect(ChildFailed, name="regisseur.lease")
        probe.expect(ChildRestarting, name="regisseur.lease", delay=1.0)
        guard = _guard(system)
        assert guard.status == "restarting"
        assert not guard.healthy
        assert guard.last_error is not None and "db down" in guard.last_error
        assert not system.healthy
        assert system.ask("e", "still here") == "still here"
        # The failed incarnation kept its row: another instance is still refused.
        other = ActorSystem(clock=ManualClock(), **options)
        with pytest.raises(StartupError, match="single-instance guard"):
            other.start()

        clock.advance(1.0)  # the backoff: the guard takes its own lease again
        probe.expect(ChildRestarted, name="regisseur.lease")
        assert _guard(system).healthy
        assert system.healthy
        clock.advance(10)  # and renews it as before
        probe.expect_no(ChildFailed, within=0.1)
        assert system.healthy


def test_the_user_root_is_a_child_of_the_system_supervisor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with ActorSystem([ChildSpec("e", Echo)], clock=ManualClock(), database_url=url) as system:
        names = [r.name for r in system.health().children]
        assert names == ["event bus", "database", "event journal", "e"]
        assert system.names() == ["e"]


def test_names_of_the_system_s_own_actors_are_refused_for_children() -> None:
    for name in ("root", "regisseur.lease"):
        with pytest.raises(ValueError, match=f"{name!r} are the system's own actors"):
            ActorSystem([ChildSpec(name, Echo)], clock=ManualClock(), database_url=None)


@pytest.mark.timeout(30)
def test_an_infrastructure_child_that_does_not_answer_is_reported_unhealthy(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with ActorSystem(clock=clock, database_url=f"sqlite:///{tmp_path / 'app.db'}") as system:
        FaultInjector(system).hang("regisseur.database", 60.0)
        report = system.health()  # its health() waits behind the hang
        database = report.find("database")
        assert database is not None
        assert database.details == "unresponsive"
        assert not database.healthy
        assert not report.healthy
        clock.advance(60.0)
        assert system.healthy


def test_the_system_s_own_actors_cannot_be_stopped_or_restarted_one_by_one() -> None:
    with ActorSystem([ChildSpec("e", Echo)], clock=ManualClock(), database_url=None) as system:
        for name in ("root", "regisseur.journal"):
            with pytest.raises(ValueError, match="one of the system's own actors"):
                system.stop_child(name)
            with pytest.raises(ValueError, match="one of the system's own actors"):
                system.restart_child(name)
        assert system.ask("e", 1) == 1
        assert system.healthy


@pytest.mark.timeout(30)
def test_an_infrastructure_child_that_gives_up_is_reported_failed(tmp_path: Path) -> None:
    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'app.db'}"
    options: dict[str, Any] = {"database_url": url, "single_instance": True, "lease_ttl": 30}
    with ActorSystem([ChildSpec("e", Echo)], clock=clock, **options) as system:
        probe = Probe(system, ChildGaveUp)
        FaultInjector(system).crash("regisseur.lease", exc=FatalError("lease table corrupt"))
        clock.advance(10)  # the renewal tick meets the fatal error: STOP, as for any child
        probe.expect(ChildGaveUp, name="regisseur.lease")
        guard = _guard(system)
        assert guard.status == "failed"
        assert guard.last_error is not None and "lease table corrupt" in guard.last_error
        assert not system.healthy
        assert system.running  # the user's actors carry on
        assert system.ask("e", 2) == 2
