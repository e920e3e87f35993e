"""Nested supervisors: names, messaging, health, failure handling and stop order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting, ChildStarted
from regisseur.supervision import Backoff, Strategy
from tests.supervision.helpers import Fail, Journal, events_of, kit, spec, sub

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem, ManualClock


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _tree(journal: Journal) -> list:  # type: ignore[type-arg]
    #  root: db, sub(depends on db) = [x, y(depends on x), deep = [z]]
    return [
        spec("db", journal),
        sub(
            "sub",
            [
                spec("x", journal),
                spec("y", journal, depends_on=("x",)),
                sub("deep", [spec("z", journal)], depends_on=("y",)),
            ],
            depends_on=("db",),
            backoff=Backoff(initial=1.0),
        ),
    ]


def test_names_at_every_depth_are_reachable_through_the_system(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(_tree(journal))
    assert journal.lifecycle() == ["start db", "start x", "start y", "start z"]
    for name in ("db", "x", "y", "z"):
        assert system.ask(name, f"to {name}") == f"to {name}"
    system.tell("z", "told")
    system.settle()
    assert journal.got("z") == ["to z", "told"]
    assert system.ref("z").ask("via ref", timeout=1) == "via ref"
    assert set(system.names()) >= {"db", "sub", "x", "y", "deep", "z"}


def test_the_health_tree_nests_like_the_supervisors(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(_tree(journal))
    health = system.health()
    top = [c.name for c in health.children]
    assert top.index("db") < top.index("sub")
    sub_report = health.find("sub")
    assert sub_report is not None
    assert [c.name for c in sub_report.children] == ["x", "y", "deep"]
    deep = health.find("deep")
    assert deep is not None
    assert [c.name for c in deep.children] == ["z"]
    ours = [r for r in health.walk() if r.name in {"db", "sub", "x", "y", "deep", "z"}]
    assert len(ours) == 6
    assert all(r.healthy and r.status == "running" for r in ours)


def test_a_nested_failure_is_handled_by_the_nested_supervisor(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory(_tree(journal))
    probe, _ = kit(system)
    journal.clear()
    system.tell("x", Fail(RuntimeError("x broke")))
    # sub's own backoff (1 s), not the root's default (2 s); only x restarts.
    probe.expect(ChildRestarting, name="x", delay=1.0)
    manual_clock.advance(1.0)
    probe.expect(ChildRestarted, name="x")
    system.settle()
    assert journal.lifecycle() == ["stop x", "start x"]
    assert events_of(probe, ChildFailed, name="sub") == []
    assert events_of(probe, ChildRestarting, name="sub") == []
    report = system.health().find("x")
    assert report is not None
    assert report.restarts == 1
    assert report.status == "running"


def test_a_nested_one_for_all_supervisor_restarts_only_its_own_children(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(
        [
            spec("outside", journal),
            sub(
                "team",
                [spec("p", journal), spec("q", journal, depends_on=("p",))],
                strategy=Strategy.ONE_FOR_ALL,
                backoff=Backoff(0),
            ),
        ],
        strategy=Strategy.ONE_FOR_ALL,
    )
    probe, _ = kit(system)
    journal.clear()
    system.tell("q", Fail(RuntimeError("q broke")))
    probe.expect(ChildRestarted, name="p")
    probe.expect(ChildRestarted, name="q")
    system.settle()
    assert journal.lifecycle() == ["stop q", "stop p", "start p", "start q"]
    assert events_of(probe, ChildRestarting, name="outside") == []


def test_stopping_the_system_stops_the_whole_tree_in_reverse_start_order(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(_tree(journal))
    journal.clear()
    system.stop()
    assert journal.lifecycle() == ["stop z", "stop y", "stop x", "stop db"]
    assert system.threads() == []


def test_a_whole_subtree_can_be_spawned_and_is_supervised(
    actor_system: ActorSystem, manual_clock: ManualClock, journal: Journal
) -> None:
    probe, _ = kit(actor_system)
    actor_system.spawn(sub("late", [spec("m", journal), spec("n", journal)]))
    probe.expect(ChildStarted, name="late")
    assert actor_system.ask("n", "hi") == "hi"
    actor_system.tell("m", Fail(RuntimeError("m broke")))
    probe.expect(ChildRestarting, name="m", delay=2.0)
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="m")
    assert actor_system.ask("m", "back") == "back"
