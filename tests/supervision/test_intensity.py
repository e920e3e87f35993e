"""Restart intensity (max_restarts within a window) and per-child max_failures."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStopped,
    DeadLetter,
    SupervisorEscalated,
    SystemFailed,
)
from regisseur.supervision import Backoff, Directive
from tests.supervision.helpers import Fail, Journal, events_of, kit, spec, sub

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _chain(journal: Journal, **options: Any) -> list[Any]:
    """a <- b <- c (start order a, b, c)."""
    return [
        spec("a", journal, **options),
        spec("b", journal, depends_on=("a",), **options),
        spec("c", journal, depends_on=("b",), **options),
    ]


def _threads_of(name: str) -> list[threading.Thread]:
    # Actor threads are named "regisseur:<system>/<actor>#<n>".
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("regisseur:") and t.name.rpartition("#")[0].endswith(f"/{name}")
    ]


def _thread_alive(name: str) -> bool:
    return any(t.is_alive() for t in _threads_of(name))


def test_too_many_restarts_escalate_and_the_parent_restarts_the_subtree(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(sub("sup", _chain(journal), max_restarts=2, within=10, backoff=Backoff(0)))
    journal.clear()
    for i in range(3):
        actor_system.tell("b", Fail(RuntimeError(f"crash {i}")))
    escalated = probe.expect(SupervisorEscalated, name="sup")
    assert "more than 2 restarts within 10s" in escalated.error
    assert "'b'" in escalated.error
    probe.expect(ChildRestarting, name="sup", delay=2.0)  # the root's backoff
    actor_system.settle()
    assert len(events_of(probe, ChildRestarted, name="b")) == 2
    # Two restarts of b, then every child of "sup" stopped in reverse start order.
    assert journal.lifecycle() == [
        "stop b",
        "start b",
        "stop b",
        "start b",
        "stop c",
        "stop b",
        "stop a",
    ]
    journal.clear()
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="sup")
    actor_system.settle()
    assert journal.lifecycle() == ["start a", "start b", "start c"]
    for name in ("a", "b", "c"):
        assert actor_system.ask(name, "hello") == "hello"
    # The restarted supervisor starts with a fresh intensity window.
    actor_system.tell("b", Fail(RuntimeError("once more")))
    probe.expect(ChildRestarted, name="b")
    actor_system.settle()
    assert len(events_of(probe, SupervisorEscalated)) == 0


def test_restarts_spread_wider_than_the_window_do_not_escalate(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(
        sub("sup", [spec("w", journal)], max_restarts=2, within=5, backoff=Backoff(0))
    )

    def crash() -> None:
        actor_system.tell("w", Fail(RuntimeError("x")))
        actor_system.settle()

    crash()  # t=0
    manual_clock.advance(3.0)
    crash()  # t=3
    manual_clock.advance(3.0)
    crash()  # t=6: the restart at t=0 has left the window
    assert events_of(probe, SupervisorEscalated) == []
    assert len(events_of(probe, ChildRestarted, name="w")) == 3
    manual_clock.advance(0.5)
    crash()  # t=6.5: restarts at 3 and 6 are in the window: a third is too many
    probe.expect(SupervisorEscalated, name="sup")


def test_max_restarts_zero_escalates_on_the_first_failure(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(sub("sup", [spec("w", journal)], max_restarts=0, backoff=Backoff(0)))
    actor_system.tell("w", Fail(RuntimeError("x")))
    probe.expect(SupervisorEscalated, name="sup")
    assert events_of(probe, ChildRestarted, name="w") == []


def test_the_roots_escalation_stops_the_system(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(_chain(journal), max_restarts=1, backoff=Backoff(0))
    probe, _ = kit(system)
    journal.clear()
    system.tell("c", Fail(RuntimeError("one")))
    system.tell("c", Fail(RuntimeError("two")))
    escalated = probe.expect(SupervisorEscalated, name="root")
    failed = probe.expect(SystemFailed)
    assert "more than 1 restarts" in escalated.error
    assert "more than 1 restarts" in failed.error
    assert journal.lifecycle() == ["stop c", "start c", "stop c", "stop b", "stop a"]
    assert not system.running
    health = system.health()
    assert health.status == "failed"
    assert not health.healthy
    assert health.last_error is not None
    assert "more than 1 restarts" in health.last_error
    assert not system.healthy
    system.tell("a", "anyone?")
    probe.expect(DeadLetter, recipient="a", message="anyone?", reason="stopped")
    with pytest.raises(pykka.ActorDeadError):
        system.ask("b", "anyone?", timeout=1)
    with pytest.raises(RuntimeError, match="not running"):
        system.spawn(spec("late", journal))
    for name in ("a", "b", "c", "root"):
        for thread in _threads_of(name):
            thread.join(2.0)
        assert not _thread_alive(name), f"{name}'s thread outlived the root's failure"


def test_a_nested_escalation_that_exhausts_the_root_fails_the_system(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory(
        [sub("sup", [spec("w", journal)], decider=lambda exc: Directive.ESCALATE)],
        max_restarts=1,
        backoff=Backoff(0),
    )
    probe, _ = kit(system)
    system.tell("w", Fail(RuntimeError("1")))
    probe.expect(SupervisorEscalated, name="sup")
    probe.expect(ChildRestarted, name="sup")
    system.tell("w", Fail(RuntimeError("2")))
    probe.expect(SupervisorEscalated, name="sup")
    probe.expect(SupervisorEscalated, name="root")
    probe.expect(SystemFailed)
    assert system.health().status == "failed"


# -- max_failures ------------------------------------------------------------------
def _status(system: ActorSystem, name: str) -> str:
    report = system.health().find(name)
    assert report is not None
    return report.status


def test_max_failures_consecutive_failures_give_the_child_up(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(
        [spec("w", journal, max_failures=3), spec("other", journal)],
        max_restarts=100,
        backoff=Backoff(0),
    )
    probe, _ = kit(system)
    for i in range(3):
        system.tell("w", Fail(RuntimeError(f"crash {i}")))
    gave_up = probe.expect(ChildGaveUp, name="w")
    assert "max_failures=3" in gave_up.error
    assert "RuntimeError: crash 2" in gave_up.error
    probe.expect(ChildStopped, name="w")
    system.settle()
    assert len(events_of(probe, ChildFailed, name="w")) == 3
    assert len(events_of(probe, ChildRestarted, name="w")) == 2
    assert events_of(probe, SupervisorEscalated) == []
    assert _status(system, "w") == "failed"
    assert _status(system, "other") == "running"
    assert system.ask("other", "still here") == "still here"
    system.tell("w", "late")
    probe.expect(DeadLetter, recipient="w", message="late", reason="stopped")


def test_failures_separated_by_successes_are_not_consecutive(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(
        [spec("w", journal, max_failures=2)], max_restarts=100, backoff=Backoff(0)
    )
    probe, _ = kit(system)
    for i in range(5):
        system.tell("w", Fail(RuntimeError(f"crash {i}")))
        assert system.ask("w", i) == i  # handled by the restarted instance
    system.settle()
    assert events_of(probe, ChildGaveUp) == []
    assert len(events_of(probe, ChildRestarted, name="w")) == 5
    assert _status(system, "w") == "running"


def test_resumed_failures_followed_by_successes_are_not_consecutive(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    def decider(exc: Exception) -> Directive:
        return Directive.RESUME if isinstance(exc, KeyError) else Directive.RESTART

    actor_system.spawn(
        sub("sup", [spec("w", journal, max_failures=3)], decider=decider, max_restarts=100)
    )
    for i in range(4):
        actor_system.tell("w", Fail(KeyError(i)))  # resumed
        assert actor_system.ask("w", i) == i  # then a success
    actor_system.tell("w", Fail(RuntimeError("restart me")))  # only one in a row
    # Neither given up, nor backed off as if this were the fifth failure in a row.
    probe.expect(ChildRestarting, name="w", delay=2.0)
    actor_system.settle()
    assert events_of(probe, ChildGaveUp) == []
