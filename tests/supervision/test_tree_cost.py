"""What a supervisor keeps so restarts, spawns and stops do not scan siblings.

The kept start levels, dependents and start order must always agree with
what ``graph`` computes from the current children, through spawns,
``stop_child`` and children that stop for good; and children without a stop
hook are stopped together, while those with one keep the exact order.
"""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor
from regisseur.messages import ChildRestarted, ChildStopped, ChildStopTimedOut
from regisseur.supervision import Backoff, ChildSpec, Strategy, graph
from regisseur.supervision.supervisor import _Child, _Tree
from tests.supervision.helpers import Block, Fail, Journal, events_of, kit, spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem


class Plain(Actor):
    """No stop hook: nothing can tell when it stopped."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Block):
            message.entered.set()
            message.gate.wait(5.0)
        return message


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _expected(tree: _Tree) -> list[str]:
    return [s.name for level in graph.levels(tree.specs()) for s in level]


@pytest.mark.parametrize("seed", range(8))
def test_the_kept_order_and_dependents_follow_every_add_and_remove(seed: int) -> None:
    """Random spawns (depending on present children) and removals, some of a
    child that stopped children still name (they move up a level, and back
    down when it is spawned again): order and dependents equal graph's."""
    rng = random.Random(seed)
    statics = [ChildSpec("s0", Plain), ChildSpec("s1", Plain, depends_on=("s2",))]
    statics.append(ChildSpec("s2", Plain, depends_on=("s0",)))  # names a later spec
    tree = _Tree(statics)
    removed: list[ChildSpec] = []
    for step in range(60):
        present = list(tree.children)
        if removed and rng.random() < 0.2:
            back = removed.pop(rng.randrange(len(removed)))
            if all(d in tree.children for d in back.depends_on):
                tree.add(_Child(back, dynamic=True))
        elif present and rng.random() < 0.35:
            name = rng.choice(present)
            removed.append(tree.children[name].spec)
            tree.remove(name)
        else:
            deps = tuple(rng.sample(present, min(len(present), rng.randint(0, 2))))
            tree.add(_Child(ChildSpec(f"d{step}", Plain, depends_on=deps), dynamic=True))
        assert tree.order() == _expected(tree)
        specs = tree.specs()
        for name in tree.children:
            assert tree.dependents(name) == graph.dependents(name, specs)
            assert tree.level(name) == next(
                i for i, level in enumerate(graph.levels(specs)) if name in {s.name for s in level}
            )


def test_a_spawned_dependent_joins_its_dependency_s_rest_for_one_group_until_removed(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    system = system_factory(
        [spec("a", journal), spec("c", journal)],
        strategy=Strategy.REST_FOR_ONE,
        backoff=Backoff(0),
        max_restarts=100,
    )
    probe, _ = kit(system)
    system.spawn(spec("b", journal, depends_on=("a",)))
    journal.clear()
    system.tell("a", Fail(RuntimeError("a broke")))
    probe.expect(ChildRestarted, name="a")
    probe.expect(ChildRestarted, name="b")
    system.settle()
    assert journal.lifecycle() == ["stop b", "stop a", "start a", "start b"]

    system.stop_child("b")
    journal.clear()
    system.tell("a", Fail(RuntimeError("a broke again")))
    probe.expect(ChildRestarted, name="a")
    system.settle()
    assert journal.lifecycle() == ["stop a", "start a"]
    # The start order the supervisor reports follows the spawn and the removal.
    system.spawn(spec("b", journal, depends_on=("c",)))
    system.spawn(spec("d", journal))
    assert system.count_children().specs == 4
    system.stop()
    assert journal.lifecycle()[-4:] == ["stop b", "stop d", "stop c", "stop a"]


@pytest.mark.timeout(30)
def test_children_without_a_stop_hook_are_stopped_together(
    system_factory: Callable[..., ActorSystem], journal: Journal
) -> None:
    """Two hookless children stuck in a handler: the system waits for their
    shutdown_timeout once, not once per child; a hooked child of the same
    level still stops after them, and its stop is awaited on its own."""
    timeout = 1.5
    children = [
        spec("hooked", journal),
        ChildSpec("p1", Plain, shutdown_timeout=timeout),
        ChildSpec("p2", Plain, shutdown_timeout=timeout),
    ]
    system = system_factory(children)
    probe, _ = kit(system)
    gate = threading.Event()
    try:
        for name in ("p1", "p2"):
            entered = threading.Event()
            system.tell(name, Block(entered, gate))
            assert entered.wait(5)
        started = time.monotonic()
        system.stop()
        took = time.monotonic() - started
    finally:
        gate.set()
    assert took < 1.9 * timeout  # one after the other would be 2x (3.0 s)
    assert journal.lifecycle()[-1] == "stop hooked"
    ours = {"p1", "p2", "hooked"}  # the system's own actors stop after them
    stopped = [e.name for e in events_of(probe, ChildStopped) if e.name in ours]
    assert stopped == ["p2", "p1", "hooked"]


class SlowStop(Actor):
    """Its on_stop hangs (bounded) until ``gate`` is set; counts its starts."""

    def __init__(self, gate: threading.Event, starts: list[str]) -> None:
        super().__init__()
        self.gate = gate
        self.starts = starts

    def on_start(self) -> None:
        self.starts.append(threading.current_thread().name)

    def on_stop(self) -> None:
        self.gate.wait(5.0)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Fail):
            raise message.exc
        return message


@pytest.mark.timeout(30)
def test_a_restart_at_once_still_bounds_the_old_incarnation_s_stop(
    system_factory: Callable[..., ActorSystem],
) -> None:
    """A zero-backoff restart queues teardown and start together; an on_stop
    that overruns shutdown_timeout is still reported and abandoned, and the
    child starts once, on a new thread, not also on the abandoned one."""
    gate = threading.Event()
    starts: list[str] = []
    child = ChildSpec("w", SlowStop, args=(gate, starts), backoff=Backoff(0), shutdown_timeout=0.3)
    system = system_factory([child], max_restarts=10)
    probe, _ = kit(system)
    try:
        system.tell("w", Fail(RuntimeError("w broke")))
        probe.expect(ChildStopTimedOut, name="w", timeout=5.0)
        probe.expect(ChildRestarted, name="w", timeout=5.0)
        assert system.ask("w", "back", timeout=5.0) == "back"
    finally:
        gate.set()
    system.settle()
    assert len(starts) == 2
    assert starts[0] != starts[1]  # the new incarnation runs on a new cell's thread
