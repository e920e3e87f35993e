"""Restart strategies: which siblings go down and come back with a failed child."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from regisseur.messages import ChildRestarted, ChildRestarting
from regisseur.supervision import Backoff, Strategy
from tests.supervision.helpers import Fail, Journal, events_of, kit, spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _start(
    system_factory: Callable[..., ActorSystem], children: list[Any], strategy: Strategy
) -> ActorSystem:
    return system_factory(children, strategy=strategy, backoff=Backoff(0), max_restarts=100)


def _serials(system: ActorSystem, names: list[str]) -> dict[str, int]:
    return {n: system.ask(n, "serial") for n in names}


def test_one_for_one_restarts_only_the_failed_child(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    names = ["a", "b", "c"]
    system = _start(
        system_factory,
        [spec("a", journal), spec("b", journal, depends_on=("a",)), spec("c", journal)],
        Strategy.ONE_FOR_ONE,
    )
    probe, _ = kit(system)
    before = _serials(system, names)
    journal.clear()
    system.tell("a", Fail(RuntimeError("a broke")))
    probe.expect(ChildRestarted, name="a")
    system.settle()
    assert journal.lifecycle() == ["stop a", "start a"]
    after = _serials(system, names)
    assert after["a"] != before["a"]
    assert (after["b"], after["c"]) == (before["b"], before["c"])
    assert [e.name for e in events_of(probe, ChildRestarting)] == ["a"]
    assert events_of(probe, ChildRestarted) == []  # a's was taken above; no other


def test_one_for_all_stops_in_reverse_start_order_and_restarts_in_start_order(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    names = ["a", "b", "c"]
    system = _start(
        system_factory,
        [
            spec("c", journal, depends_on=("b",)),  # spec order differs from start order
            spec("b", journal, depends_on=("a",)),
            spec("a", journal),
        ],
        Strategy.ONE_FOR_ALL,
    )
    probe, _ = kit(system)
    assert journal.lifecycle() == ["start a", "start b", "start c"]
    before = _serials(system, names)
    journal.clear()
    system.tell("b", Fail(RuntimeError("b broke")))
    for name in names:
        probe.expect(ChildRestarted, name=name)
    system.settle()
    assert journal.lifecycle() == [
        "stop c",
        "stop b",
        "stop a",
        "start a",
        "start b",
        "start c",
    ]
    after = _serials(system, names)
    assert all(after[n] != before[n] for n in names)
    restarting = [e.name for e in events_of(probe, ChildRestarting)]
    assert sorted(restarting) == names


def test_one_for_all_restarts_independent_siblings_too(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = _start(
        system_factory,
        [spec("x", journal), spec("y", journal), spec("z", journal)],
        Strategy.ONE_FOR_ALL,
    )
    probe, _ = kit(system)
    journal.clear()
    system.tell("z", Fail(RuntimeError("z broke")))
    for name in ("x", "y", "z"):
        probe.expect(ChildRestarted, name=name)
    system.settle()
    lines = journal.lifecycle()
    # One level: stopped one by one in reverse start order, started together.
    assert lines[:3] == ["stop z", "stop y", "stop x"]
    assert sorted(lines[3:]) == ["start x", "start y", "start z"]


def _rest_for_one_tree(journal: Journal) -> list[Any]:
    #   a <- b <- c      (c depends on b, b on a)
    #   a <- d
    #   e                (independent)
    return [
        spec("a", journal),
        spec("b", journal, depends_on=("a",)),
        spec("c", journal, depends_on=("b",)),
        spec("d", journal, depends_on=("a",)),
        spec("e", journal),
    ]


def test_rest_for_one_restarts_the_failed_child_and_its_transitive_dependents(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    names = ["a", "b", "c", "d", "e"]
    system = _start(system_factory, _rest_for_one_tree(journal), Strategy.REST_FOR_ONE)
    probe, _ = kit(system)
    before = _serials(system, names)
    journal.clear()
    system.tell("b", Fail(RuntimeError("b broke")))
    probe.expect(ChildRestarted, name="b")
    probe.expect(ChildRestarted, name="c")
    system.settle()
    assert journal.lifecycle() == ["stop c", "stop b", "start b", "start c"]
    after = _serials(system, names)
    assert {n for n in names if after[n] != before[n]} == {"b", "c"}
    assert events_of(probe, ChildRestarted) == []  # b's and c's were taken above
    assert sorted(e.name for e in events_of(probe, ChildRestarting)) == ["b", "c"]


def test_rest_for_one_on_the_root_of_the_graph_restarts_every_dependent(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    names = ["a", "b", "c", "d", "e"]
    system = _start(system_factory, _rest_for_one_tree(journal), Strategy.REST_FOR_ONE)
    probe, _ = kit(system)
    before = _serials(system, names)
    journal.clear()
    system.tell("a", Fail(RuntimeError("a broke")))
    for name in ("a", "b", "c", "d"):
        probe.expect(ChildRestarted, name=name)
    system.settle()
    lines = journal.lifecycle()
    # Start order is a, e | b, d | c: stop in reverse (c, d, b, a) ...
    assert lines[:4] == ["stop c", "stop d", "stop b", "stop a"]
    # ... and start again by levels: a, then b and d together, then c.
    assert lines[4] == "start a"
    assert sorted(lines[5:7]) == ["start b", "start d"]
    assert lines[7:] == ["start c"]
    after = _serials(system, names)
    assert {n for n in names if after[n] != before[n]} == {"a", "b", "c", "d"}


def test_rest_for_one_on_a_leaf_restarts_only_the_leaf(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = _start(system_factory, _rest_for_one_tree(journal), Strategy.REST_FOR_ONE)
    probe, _ = kit(system)
    journal.clear()
    system.tell("d", Fail(RuntimeError("d broke")))
    probe.expect(ChildRestarted, name="d")
    system.settle()
    assert journal.lifecycle() == ["stop d", "start d"]
