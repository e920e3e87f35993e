"""Restart types: PERMANENT, TRANSIENT, TEMPORARY after a failure and after self.stop()."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from regisseur.messages import (
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStopped,
    DeadLetter,
)
from regisseur.supervision import Restart
from tests.supervision.helpers import Fail, Journal, events_of, spec

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _status(system: ActorSystem, name: str) -> str:
    report = system.health().find(name)
    assert report is not None
    return report.status


@pytest.mark.parametrize("restart", [Restart.PERMANENT, Restart.TRANSIENT])
def test_permanent_and_transient_children_are_restarted_after_a_failure(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    journal: Journal,
    restart: Restart,
) -> None:
    actor_system.spawn(spec("w", journal, restart=restart))
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=2.0)
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    assert journal.lifecycle() == ["start w", "stop w", "start w"]
    assert actor_system.ask("w", "hi") == "hi"
    assert _status(actor_system, "w") == "running"


def test_a_temporary_child_is_not_restarted_after_a_failure(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal, restart=Restart.TEMPORARY))
    actor_system.spawn(spec("other", journal))
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildGaveUp, name="w")
    probe.expect(ChildStopped, name="w")
    manual_clock.advance(3600)
    assert events_of(probe, ChildRestarting) == []
    assert events_of(probe, ChildRestarted) == []
    assert journal.lifecycle("w") == ["start w", "stop w"]
    actor_system.tell("w", "late")
    probe.expect(DeadLetter, recipient="w", message="late", reason="stopped")
    assert actor_system.ask("other", "fine") == "fine"


def test_a_permanent_child_that_stops_itself_is_restarted_at_once(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal, restart=Restart.PERMANENT))
    ref = actor_system.ref("w")
    first = actor_system.ask("w", "serial")
    actor_system.tell("w", "stop-self")
    probe.expect(ChildRestarted, name="w")  # no clock advance needed: not a failure
    actor_system.settle()
    assert journal.lifecycle() == ["start w", "stop w", "start w"]
    assert actor_system.ask("w", "serial") != first
    assert ref.ask("via old ref", timeout=1) == "via old ref"
    assert events_of(probe, ChildStopped) == []
    assert _status(actor_system, "w") == "running"


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.TEMPORARY])
def test_transient_and_temporary_children_that_stop_themselves_stay_stopped(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    journal: Journal,
    restart: Restart,
) -> None:
    actor_system.spawn(spec("w", journal, restart=restart))
    actor_system.spawn(spec("other", journal))
    actor_system.tell("w", "stop-self")
    probe.expect(ChildStopped, name="w")
    manual_clock.advance(3600)
    assert events_of(probe, ChildRestarted) == []
    assert events_of(probe, ChildRestarting) == []
    assert events_of(probe, ChildGaveUp) == []  # a normal exit, not a failure
    assert journal.lifecycle("w") == ["start w", "stop w"]
    actor_system.tell("w", "late")
    probe.expect(DeadLetter, recipient="w", message="late", reason="stopped")
    assert actor_system.ask("other", "fine") == "fine"
    assert actor_system.healthy  # stopping normally is not a failure


def test_a_dynamic_child_that_stopped_itself_frees_its_name(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal, restart=Restart.TRANSIENT))
    actor_system.tell("w", "stop-self")
    probe.expect(ChildStopped, name="w")
    actor_system.settle()
    actor_system.spawn(spec("w", journal, restart=Restart.TRANSIENT))
    assert actor_system.ask("w", "again") == "again"


def test_stopping_via_the_ref_is_for_good_whatever_the_restart_type(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    # As in Pykka ("the actor may not be restarted"); self.stop() is the
    # normal exit that a PERMANENT child is restarted after.
    actor_system.spawn(spec("t", journal, restart=Restart.TRANSIENT))
    actor_system.spawn(spec("p", journal, restart=Restart.PERMANENT))
    assert actor_system.ref("t").stop(timeout=1) is True
    assert actor_system.ref("p").stop(timeout=1) is True
    probe.expect(ChildStopped, name="t")
    probe.expect(ChildStopped, name="p")
    actor_system.settle()
    probe.expect_no(ChildRestarted, within=0.05)
    assert journal.lifecycle("t") == ["start t", "stop t"]
    assert journal.lifecycle("p") == ["start p", "stop p"]
