"""Directives (RESUME, RESTART, STOP, ESCALATE, restart_after) and who decides them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStopped,
    DeadLetter,
    SupervisorEscalated,
)
from regisseur.supervision import Directive, FatalError
from tests.supervision.helpers import Deciding, Fail, Journal, events_of, spec, sub

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe


class Unrecoverable(FatalError):
    """A FatalError subclass: the default decider stops for it too."""


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _status(system: ActorSystem, name: str) -> str:
    report = system.health().find(name)
    assert report is not None, f"{name} missing from the health tree"
    return report.status


# -- RESUME ------------------------------------------------------------------
def test_resume_keeps_the_instance_and_its_state(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(sub("sup", [spec("w", journal)], decider=lambda exc: Directive.RESUME))
    for _ in range(3):
        actor_system.ask("w", "incr")
    serial = actor_system.ask("w", "serial")
    with pytest.raises(RuntimeError, match="boom"):
        actor_system.ask("w", Fail(RuntimeError("boom")))
    # The very next message is handled by the same instance, with its state.
    assert actor_system.ask("w", "count") == 3
    assert actor_system.ask("w", "serial") == serial
    actor_system.settle()
    probe.expect(ChildFailed, name="w")
    assert events_of(probe, ChildRestarting) == []
    assert events_of(probe, ChildRestarted) == []
    assert journal.lifecycle("w") == ["start w"]  # no on_stop, no second on_start
    assert _status(actor_system, "w") == "running"


# -- RESTART -------------------------------------------------------------------
def test_restart_builds_a_fresh_instance_and_runs_on_start_again(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    ref = actor_system.ref("w")
    actor_system.ask("w", "incr")
    actor_system.ask("w", "incr")
    first = actor_system.ask("w", "serial")
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=2.0)  # default Backoff: 2 s first
    actor_system.settle()
    assert journal.lifecycle("w") == ["start w", "stop w"]
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    assert actor_system.ask("w", "count") == 0  # state did not survive
    second = actor_system.ask("w", "serial")
    assert second != first
    assert journal.serials("w") == [first, second]
    assert journal.lifecycle("w") == ["start w", "stop w", "start w"]
    assert actor_system.ref("w") is ref
    assert _status(actor_system, "w") == "running"


def test_restart_after_uses_exactly_the_given_delay(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(
        sub("sup", [spec("w", journal)], decider=lambda exc: Directive.restart_after(7.5))
    )
    actor_system.tell("w", Fail(RuntimeError("slow down")))
    probe.expect(ChildRestarting, name="w", delay=7.5)
    manual_clock.advance(7.49)
    assert events_of(probe, ChildRestarted) == []
    assert journal.lifecycle("w") == ["start w", "stop w"]
    manual_clock.advance(0.01)
    probe.expect(ChildRestarted, name="w")
    assert journal.lifecycle("w") == ["start w", "stop w", "start w"]


def test_restart_after_zero_restarts_at_once(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(
        sub("sup", [spec("w", journal)], decider=lambda exc: Directive.restart_after(0))
    )
    actor_system.tell("w", Fail(RuntimeError("x")))
    probe.expect(ChildRestarting, name="w", delay=0.0)
    probe.expect(ChildRestarted, name="w")  # without advancing the clock


# -- STOP --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "decider"),
    [
        (FatalError("bad config"), None),  # the default rule
        (Unrecoverable("gone"), None),  # FatalError subclasses too
        (RuntimeError("transient?"), lambda exc: Directive.STOP),  # a decider
    ],
    ids=["fatal-default", "fatal-subclass", "decider-stop"],
)
def test_stop_stops_for_good_and_health_says_failed(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    journal: Journal,
    exc: Exception,
    decider: Any,
) -> None:
    actor_system.spawn(sub("sup", [spec("w", journal), spec("other", journal)], decider=decider))
    actor_system.tell("w", Fail(exc))
    gave_up = probe.expect(ChildGaveUp, name="w")
    assert type(exc).__name__ in gave_up.error
    probe.expect(ChildStopped, name="w")
    manual_clock.advance(3600)
    assert events_of(probe, ChildRestarting) == []
    assert journal.lifecycle("w") == ["start w", "stop w"]
    assert _status(actor_system, "w") == "failed"
    assert not actor_system.healthy
    actor_system.tell("w", "anyone?")
    probe.expect(DeadLetter, recipient="w", message="anyone?", reason="stopped")
    assert actor_system.ask("other", "still here") == "still here"  # siblings carry on
    assert _status(actor_system, "other") == "running"


# -- ESCALATE ------------------------------------------------------------------
def test_escalate_fails_the_supervisor_and_its_parent_restarts_the_subtree(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(
        sub(
            "sup",
            [spec("a", journal), spec("w", journal, depends_on=("a",))],
            decider=lambda exc: Directive.ESCALATE,
        )
    )
    actor_system.tell("w", Fail(RuntimeError("not mine to fix")))
    escalated = probe.expect(SupervisorEscalated, name="sup")
    assert "'w'" in escalated.error
    assert "RuntimeError: not mine to fix" in escalated.error
    # The nested supervisor's own children were stopped in reverse start order,
    # and the parent (root) treats "sup" as a failed child: default backoff 2 s.
    probe.expect(ChildFailed, name="sup")
    probe.expect(ChildRestarting, name="sup", delay=2.0)
    actor_system.settle()
    assert journal.lifecycle() == ["start a", "start w", "stop w", "stop a"]
    assert events_of(probe, ChildRestarting, name="w") == []
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="sup")
    actor_system.settle()
    assert journal.lifecycle()[4:] == ["start a", "start w"]
    assert actor_system.ask("w", "back") == "back"
    assert _status(actor_system, "sup") == "running"


# -- who decides ---------------------------------------------------------------
def test_the_actors_own_decide_overrides_the_supervisors_decider(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    def own(exc: Exception) -> Any:
        if isinstance(exc, KeyError):
            return Directive.RESUME
        if isinstance(exc, TimeoutError):
            return Directive.restart_after(3.0)
        return None  # defer to the supervisor

    actor_system.spawn(
        sub(
            "sup",
            [spec("w", journal, actor=Deciding, kwargs={"decide": own})],
            decider=lambda exc: Directive.restart_after(11.0),
        )
    )
    actor_system.ask("w", "incr")
    actor_system.tell("w", Fail(KeyError("k")))  # own: RESUME
    assert actor_system.ask("w", "count") == 1
    actor_system.tell("w", Fail(TimeoutError("rate limited")))  # own: 3 s
    probe.expect(ChildRestarting, name="w", delay=3.0)
    manual_clock.advance(3.0)
    probe.expect(ChildRestarted, name="w")
    actor_system.tell("w", Fail(ValueError("other")))  # own: None -> supervisor's 11 s
    probe.expect(ChildRestarting, name="w", delay=11.0)


def test_default_rule_restarts_on_any_other_exception(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    actor_system.tell("w", Fail(ValueError("bad row")))
    failed = probe.expect(ChildFailed, name="w")
    assert failed.error == "ValueError: bad row"
    probe.expect(ChildRestarting, name="w", delay=2.0)
    actor_system.settle()
    assert events_of(probe, ChildGaveUp) == []


def _raises(exc: Exception) -> Any:
    raise RuntimeError("decider bug")


@pytest.mark.parametrize(
    "decider",
    [_raises, lambda exc: "stop", lambda exc: 42, lambda exc: True],
    ids=["raises", "string", "int", "bool"],
)
def test_a_broken_supervisor_decider_falls_back_to_the_default(
    actor_system: ActorSystem, probe: Probe, journal: Journal, decider: Any
) -> None:
    actor_system.spawn(sub("sup", [spec("w", journal), spec("f", journal)], decider=decider))
    actor_system.tell("w", Fail(RuntimeError("ordinary")))
    probe.expect(ChildRestarting, name="w", delay=2.0)  # default: RESTART
    actor_system.tell("f", Fail(FatalError("fatal")))
    probe.expect(ChildGaveUp, name="f")  # default: STOP
    actor_system.settle()
    assert events_of(probe, ChildRestarting, name="f") == []
    assert events_of(probe, SupervisorEscalated) == []


@pytest.mark.parametrize(
    "decide",
    [_raises, lambda exc: "resume", lambda exc: 3.0],
    ids=["raises", "string", "float"],
)
def test_a_broken_decide_method_falls_back_to_the_supervisor(
    actor_system: ActorSystem, probe: Probe, journal: Journal, decide: Any
) -> None:
    actor_system.spawn(
        sub(
            "sup",
            [spec("w", journal, actor=Deciding, kwargs={"decide": decide})],
            decider=lambda exc: Directive.restart_after(5.0),
        )
    )
    actor_system.tell("w", Fail(RuntimeError("ordinary")))
    probe.expect(ChildRestarting, name="w", delay=5.0)
    assert events_of(probe, ChildGaveUp) == []


def test_a_broken_decide_method_without_a_decider_uses_the_default(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal, actor=Deciding, kwargs={"decide": _raises}))
    actor_system.spawn(spec("f", journal, actor=Deciding, kwargs={"decide": lambda e: "nope"}))
    actor_system.tell("w", Fail(RuntimeError("ordinary")))
    probe.expect(ChildRestarting, name="w", delay=2.0)
    actor_system.tell("f", Fail(FatalError("fatal")))
    probe.expect(ChildGaveUp, name="f")
