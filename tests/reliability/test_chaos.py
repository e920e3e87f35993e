"""Seeded chaos: a tree of 140 actors, 20,000 messages, hundreds of faults.

The run itself is :mod:`tests.reliability.chaos` (shared with
``bench/bench_chaos.py``, which runs it long). Here: the short runs for CI,
a few seconds each, and the regressions the chaos run found, each reduced
to a deterministic test.
"""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from regisseur.actors import Actor, ActorSystem
from regisseur.actors._cell import Cell
from regisseur.messages import (
    ChildFailed,
    ChildRestarted,
    ChildRestarting,
    ChildStopTimedOut,
    DeadLetter,
)
from regisseur.supervision import Backoff, ChildSpec, Strategy, Supervisor
from regisseur.supervision.testing import FaultInjector, Probe
from tests.reliability.chaos import (
    ChaosConfig,
    ChaosWorker,
    Ledger,
    Msg,
    Report,
    build_tree,
    plan,
    run,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ManualClock

SEEDS = (1, 2, 3)


def _explain(report: Report) -> str:
    problems = "\n".join(f"  - {p}" for p in report.problems[:25])
    return f"chaos run with seed={report.config.seed} failed:\n{problems}\n{report.summary()}"


def _check_the_chaos_happened(report: Report, config: ChaosConfig) -> None:
    seed = config.seed
    assert report.actors >= 100, f"seed={seed}: only {report.actors} actors"
    assert set(report.strategies) == {s.name for s in Strategy}, f"seed={seed}"
    assert report.depends > 0, f"seed={seed}: no depends_on edge in the REST_FOR_ONE groups"
    assert report.sent >= config.messages, f"seed={seed}"
    for kind in ("crash", "fail_start", "hang", "kill (worker)"):
        assert report.faults[kind] > 0, f"seed={seed}: no {kind} was injected"
    assert sum(report.faults.values()) == config.faults, f"seed={seed}: {report.faults}"
    assert report.dead_letters >= report.crash_rules > 0, f"seed={seed}"
    assert report.failures > 0, f"seed={seed}: nothing failed"
    assert report.restarts > 0, f"seed={seed}: nothing restarted"
    assert report.asks > 0, f"seed={seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_seeded_chaos_run_loses_no_message_and_ends_healthy(seed: int) -> None:
    """120 workers, 20,000 messages from 4 senders, 200 faults of every kind."""
    config = ChaosConfig(seed=seed, actors=120, messages=20_000, faults=200)
    report = run(config)
    assert not report.problems, _explain(report)
    _check_the_chaos_happened(report, config)


def test_a_dense_chaos_run_with_many_kills_loses_no_message() -> None:
    """Five times the faults, half of them kills (of workers, hung workers, supervisors)."""
    config = ChaosConfig(
        seed=7,
        faults=1_000,
        weights=(("crash", 3), ("fail_start", 2), ("hang", 2), ("kill", 7)),
        kill_supervisor_share=0.2,
        kill_hung_share=0.5,
    )
    report = run(config)
    assert not report.problems, _explain(report)
    _check_the_chaos_happened(report, config)
    assert report.faults["kill (supervisor)"] > 0


def test_the_plan_depends_only_on_the_seed() -> None:
    """Same seed, same tree and fault schedule (the threads' interleaving aside)."""

    def draw(seed: int) -> tuple[Any, ...]:
        rng = random.Random(seed)
        config = ChaosConfig(seed=seed)
        tree = build_tree(config, Ledger(), rng)
        plans = plan(config, tree, rng)
        return (
            tree.shape,
            [(p.targets, sorted(p.asks), sorted(p.faults.items())) for p in plans],
        )

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


# -- regressions found by the chaos run ---------------------------------------


class Stubborn(Actor):
    """``"busy"`` keeps its handler running until a stop is requested (bounded).

    It stands for user code that does not use ``self.sleep``: a kill takes
    effect only when that code returns.
    """

    def __init__(self, ledger: Ledger, entered: threading.Event) -> None:
        super().__init__()
        self.ledger = ledger
        self.entered = entered

    def on_receive(self, message: Any) -> Any:
        if message == "busy":
            self.entered.set()
            # The user's own blocking code: it ends when a stop (or a kill)
            # is requested, or after 5 s on the system clock.
            self.sleep(5.0)
            return None
        if isinstance(message, Msg):
            self.ledger.record(message, self.name)
            return message.seq
        return super().on_receive(message)


def test_a_kill_during_a_hang_makes_the_message_in_hand_a_dead_letter(
    actor_system: ActorSystem, probe: Probe, faults: FaultInjector, manual_clock: ManualClock
) -> None:
    """Found by the chaos run: the message was neither handled nor a dead letter,
    and an ``ask`` for it was never answered."""
    ledger = Ledger()
    actor_system.spawn(ChildSpec("w", ChaosWorker, args=(ledger,)))
    faults.hang("w", 60.0)
    future = actor_system.ref("w").ask(Msg(0, 0), block=False)
    actor_system.settle()  # returns once the handler waits in the hang
    assert ledger.handled == []
    faults.kill("w")
    letter = probe.expect(DeadLetter, recipient="w", timeout=2.0)
    assert letter.message == Msg(0, 0)
    assert letter.reason == "failed: thread killed"
    with pytest.raises(pykka.ActorDeadError, match="thread killed"):
        future.get(timeout=2.0)
    probe.expect(ChildRestarting, name="w")
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    assert actor_system.ask("w", Msg(0, 1)) == 1
    assert ledger.handled == [(0, 1, "w")]


def test_a_kill_queued_before_a_group_teardown_does_not_stall_the_restart(
    system_factory: Callable[..., ActorSystem],
) -> None:
    """Found by the chaos run: the killed thread died before the supervisor's
    teardown command, which nobody answered; after ``shutdown_timeout`` the
    child was abandoned and replaced by a new cell, losing its queued
    messages and invalidating its ``ActorRef``."""
    ledger = Ledger()
    entered = threading.Event()
    group = Supervisor(
        [
            ChildSpec("a", ChaosWorker, args=(ledger,)),
            ChildSpec("w", Stubborn, args=(ledger, entered), shutdown_timeout=1.0),
        ],
        strategy=Strategy.ONE_FOR_ALL,
        backoff=Backoff(initial=0),
        max_restarts=100,
    )
    system = system_factory([ChildSpec("group", group)], database_url=None)
    probe, faults = Probe(system), FaultInjector(system)
    ref = system.ref("w")
    system.tell("w", "busy")
    assert entered.wait(2.0)
    faults.kill("w")  # takes effect when the busy handler returns
    faults.crash("a", message_type=Msg)
    system.tell("a", Msg(0, 0))  # a fails: the group goes down, w's handler sees the stop
    system.tell("w", Msg(0, 1))  # waits in w's mailbox across the restart
    probe.expect(ChildRestarted, name="w", timeout=5.0)
    system.settle(timeout=5.0)
    assert ref.ask(Msg(0, 2), timeout=2.0) == 2  # the same ref, a new thread
    assert [e for e in probe.events if isinstance(e, ChildStopTimedOut)] == []
    assert sorted(ledger.handled) == [(0, 1, "w"), (0, 2, "w")]


def test_a_killed_thread_that_lingers_after_reporting_its_death_is_replaced(
    system_factory: Callable[..., ActorSystem], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the chaos run: with zero backoff the supervisor restarts a
    killed child at once; if the dying thread was still alive then, the
    supervisor queued a teardown (or a start) for it, which nobody took."""
    died = Cell._died
    decided = threading.Event()

    def lingering(cell: Cell, error: str) -> None:
        died(cell, error)
        # The dying thread stays alive until the supervisor is handling its
        # death (as if descheduled right after reporting it).
        decided.wait(5.0)

    monkeypatch.setattr(Cell, "_died", lingering)
    ledger = Ledger()
    system = system_factory(
        [ChildSpec("w", ChaosWorker, args=(ledger,), shutdown_timeout=1.0, start_timeout=2.0)],
        database_url=None,
        backoff=Backoff(initial=0),
    )
    probe, faults = Probe(system), FaultInjector(system)
    system.events.subscribe(lambda event: decided.set(), ChildFailed)
    ref = system.ref("w")
    system.tell("w", Msg(0, 0))
    system.settle(timeout=2.0)
    faults.kill("w")
    system.tell("w", Msg(0, 1))
    probe.expect(ChildRestarted, name="w", timeout=5.0)
    assert ref.ask(Msg(0, 2), timeout=2.0) == 2
    system.settle(timeout=2.0)
    assert [e for e in probe.events if isinstance(e, ChildStopTimedOut)] == []
    assert ledger.handled == [(0, 0, "w"), (0, 1, "w"), (0, 2, "w")]


# -- found on the way ------------------------------------------------------------


# Found by the chaos runs: the bus kept its subscribers in instance state.
def test_subscriptions_survive_a_restart_of_the_event_bus() -> None:
    received: list[Any] = []
    second = threading.Event()
    calls = [0]

    def keep(event: Any) -> None:
        received.append(event)
        if event.message == "second":
            second.set()

    def quits_once(event: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise SystemExit("a callback that ends its thread")

    with ActorSystem([], database_url=None) as system:
        system.events.subscribe(keep, DeadLetter)
        system.events.subscribe(quits_once, DeadLetter)
        system.dead_letter("nobody", "first", "test")
        system.settle(timeout=2.0)
        system.dead_letter("nobody", "second", "test")
        # The bus may still be restarting (settle counts a dead cell as idle).
        assert second.wait(2.0), "the restarted bus lost its subscribers"
    assert [e.message for e in received if e.recipient == "nobody"] == ["first", "second"]
