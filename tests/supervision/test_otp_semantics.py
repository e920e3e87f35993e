"""OTP supervisor semantics: temporary children in group restarts,
terminate/restart/delete of children, significant children, count_children."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from regisseur.actors import UnknownActorError
from regisseur.messages import (
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    SupervisorShutDown,
)
from regisseur.supervision import (
    AutoShutdown,
    Backoff,
    ChildCounts,
    FatalError,
    Restart,
    StartupError,
    Strategy,
    Supervisor,
)
from tests.supervision.helpers import Fail, Journal, Worker, kit, spec, sub

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ManualClock
    from regisseur.actors.system import ActorSystem
    from regisseur.supervision.testing import Probe

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def journal() -> Journal:
    return Journal()


# -- 1. a TEMPORARY child is never restarted, also by a group restart ------------
@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
def test_a_temporary_sibling_stopped_by_a_group_restart_is_not_restarted(
    system_factory: Callable[..., ActorSystem], journal: Journal, strategy: Strategy
) -> None:
    system = system_factory(
        [
            spec("a", journal),
            spec("t", journal, restart=Restart.TEMPORARY, depends_on=("a",)),
            spec("p", journal, depends_on=("a",)),
            spec("q", journal, depends_on=("t",)),
        ],
        strategy=strategy,
        backoff=Backoff(0),
    )
    probe, _ = kit(system)
    system.tell("a", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarted, name="a")
    probe.expect(ChildRestarted, name="p")
    probe.expect(ChildRestarted, name="q")  # restarted without its temporary dependency
    system.settle()
    probe.expect(ChildStopped, name="t")
    probe.expect_no(ChildStarted, within=0.05, name="t")
    assert journal.lifecycle("t") == ["start t", "stop t"]
    assert journal.lifecycle("p") == ["start p", "stop p", "start p"]
    assert system.count_children() == ChildCounts(specs=4, active=3, supervisors=0, workers=4)
    system.restart_child("t")  # a stopped static child can be started by hand
    assert system.ask("t", "hi") == "hi"


def test_a_dynamic_temporary_sibling_is_removed_by_a_group_restart(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory([spec("a", journal)], strategy=Strategy.ONE_FOR_ALL, backoff=Backoff(0))
    probe, _ = kit(system)
    system.spawn(spec("t", journal, restart=Restart.TEMPORARY))
    system.tell("a", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarted, name="a")
    probe.expect(ChildStopped, name="t")
    system.settle()
    assert system.names() == ["a"]
    system.spawn(spec("t", journal, restart=Restart.TEMPORARY))  # the name is free


# -- 2. stop_child / restart_child ----------------------------------------------------
def test_stop_child_removes_a_child_that_gave_up(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    actor_system.tell("w", Fail(FatalError("bad config")))
    probe.expect(ChildGaveUp, name="w")
    actor_system.stop_child("w")
    actor_system.stop_child("w")  # already removed: nothing to do
    assert actor_system.count_children().specs == 0
    actor_system.spawn(spec("w", journal))
    assert actor_system.ask("w", "again") == "again"


def test_restart_child_starts_a_child_that_gave_up_or_was_stopped(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory([spec("w", journal), spec("u", journal, depends_on=("w",))])
    probe, _ = kit(system)
    system.tell("w", Fail(FatalError("bad config")))
    probe.expect(ChildGaveUp, name="w")
    assert system.count_children().active == 1
    old = system.ref("u")
    with pytest.raises(ValueError, match="'u'.*running"):
        system.restart_child("u")
    ref = system.restart_child("w")
    assert ref.ask("hello", timeout=2) == "hello"
    assert old.stop() is True
    assert not old.is_alive()
    new = system.restart_child("u")
    assert new is not old and new.ask("x", timeout=2) == "x"
    assert system.count_children() == ChildCounts(specs=2, active=2, supervisors=0, workers=2)
    system.stop_child("u")
    with pytest.raises(UnknownActorError):
        system.restart_child("u")
    with pytest.raises(UnknownActorError):
        system.restart_child("never")


class StartsOnce(Worker):
    """Starts the first time; every later incarnation fails in ``on_start``."""

    def on_start(self) -> None:
        if any(kind == "start" for kind, *_ in self.journal.items):
            raise OSError("port 8080 in use")
        super().on_start()


def test_restart_child_that_fails_to_start_raises_and_stays_failed(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory([spec("w", journal, actor=StartsOnce)])
    probe, _ = kit(system)
    assert system.ref("w").stop() is True
    with pytest.raises(StartupError, match="port 8080"):
        system.restart_child("w")
    info = system.health().children[-1]
    assert (info.name, info.status) == ("w", "failed")
    assert "w" not in system.names()
    system.stop_child("w")
    assert system.count_children().specs == 0


def test_a_dynamic_child_is_forgotten_once_stopped_by_its_ref(
    actor_system: ActorSystem, journal: Journal
) -> None:
    ref = actor_system.spawn(spec("d", journal, restart=Restart.PERMANENT))
    assert ref.stop() is True
    with pytest.raises(UnknownActorError):
        actor_system.restart_child("d")
    actor_system.spawn(spec("d", journal))  # the name is free again


# -- 7. significant children and auto_shutdown -------------------------------------------
def test_significant_children_need_auto_shutdown_and_a_non_permanent_restart(
    journal: Journal,
) -> None:
    with pytest.raises(ValueError, match="TRANSIENT or TEMPORARY"):
        spec("s", journal, significant=True)
    with pytest.raises(ValueError, match="auto_shutdown"):
        Supervisor([spec("s", journal, restart=Restart.TRANSIENT, significant=True)])
    with pytest.raises(ValueError, match="auto_shutdown must be one of"):
        Supervisor([], auto_shutdown="sometimes")  # type: ignore[arg-type]
    assert Supervisor([], auto_shutdown="any_significant").auto_shutdown is (  # type: ignore[arg-type]
        AutoShutdown.ANY_SIGNIFICANT
    )


def test_a_significant_child_is_spawned_only_under_auto_shutdown(
    actor_system: ActorSystem, journal: Journal
) -> None:
    with pytest.raises(ValueError, match="auto_shutdown"):
        actor_system.spawn(spec("s", journal, restart=Restart.TRANSIENT, significant=True))
    assert actor_system.count_children().specs == 0


def test_any_significant_child_ending_shuts_its_supervisor_down(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    job = sub(
        "job",
        [
            spec("helper", journal),
            spec("step", journal, restart=Restart.TRANSIENT, significant=True),
        ],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        restart=Restart.TRANSIENT,
    )
    system = system_factory([job, spec("other", journal)])
    probe, _ = kit(system)
    system.tell("step", "stop-self")
    probe.expect(SupervisorShutDown, name="job", child="step")
    probe.expect(ChildStopped, name="job")
    system.settle()
    assert journal.lifecycle("helper") == ["start helper", "stop helper"]
    assert system.names() == ["other"]
    assert system.count_children() == ChildCounts(specs=2, active=1, supervisors=1, workers=1)
    assert system.running


def test_all_significant_waits_for_the_last_one_and_ends_the_system_at_the_root(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(
        [
            spec("a", journal, restart=Restart.TEMPORARY, significant=True),
            spec("b", journal, restart=Restart.TRANSIENT, significant=True),
            spec("helper", journal),
        ],
        auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
    )
    probe, _ = kit(system)
    system.tell("a", Fail(RuntimeError("boom")))  # TEMPORARY: gives up, ends by itself
    probe.expect(ChildGaveUp, name="a")
    system.settle()
    probe.expect_no(SupervisorShutDown, within=0.05)
    assert system.running
    system.tell("b", "stop-self")
    probe.expect(SupervisorShutDown, name="root", child="b")
    system.settle()  # the root handles its own stop
    assert not system.running
    assert system.health().status == "stopped"
    system.stop()
    assert "stop helper" in journal.lifecycle("helper")


def test_ref_stop_during_a_backoff_cancels_the_pending_restart(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory([spec("w", journal, backoff=Backoff(initial=30))])
    probe, _ = kit(system)
    ref = system.ref("w")
    system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=30.0)
    assert ref.stop(timeout=2) is True  # not held back by the 30 s backoff
    assert not ref.is_alive()
    probe.expect(ChildStopped, name="w")
    manual_clock.advance(60)
    system.settle()
    probe.expect_no(ChildStarted, within=0.05, name="w")
    assert journal.lifecycle("w") == ["start w", "stop w"]
    assert system.count_children() == ChildCounts(specs=1, active=0, supervisors=0, workers=1)
    assert system.restart_child("w").ask("back", timeout=2) == "back"
