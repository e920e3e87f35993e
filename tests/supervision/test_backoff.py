"""The restart backoff schedule, driven by the manual clock."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting
from regisseur.supervision import Backoff
from tests.supervision.helpers import Fail, Journal, events_of, kit, spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe

EPSILON = 0.001


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _new_events(probe: Probe) -> list[Any]:
    return [
        e for e in probe.events if isinstance(e, (ChildFailed, ChildRestarting, ChildRestarted))
    ]


def _wait_out(
    system: ActorSystem, probe: Probe, clock: ManualClock, name: str, delay: float
) -> None:
    """Expect ChildRestarting(delay); prove nothing happens before it; then let it pass."""
    probe.expect(ChildRestarting, name=name, delay=delay)
    system.settle()
    assert _new_events(probe) == []
    clock.advance(delay - EPSILON)
    assert _new_events(probe) == [], f"something happened before {delay}s had passed"
    clock.advance(EPSILON)


def test_consecutive_failures_back_off_2_4_8_16_32_60_60(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory([spec("w", journal)], max_restarts=1000)
    probe, faults = kit(system)
    faults.fail_start("w", times=6)  # the next six restarts fail again
    system.tell("w", Fail(RuntimeError("first")))
    probe.expect(ChildFailed, name="w")
    delays = [2, 4, 8, 16, 32, 60, 60]
    for attempt, delay in enumerate(delays):
        _wait_out(system, probe, manual_clock, "w", delay)
        if attempt < len(delays) - 1:
            failed = probe.expect(ChildFailed, name="w", timeout=0.5)
            assert "injected start failure" in failed.error
    probe.expect(ChildRestarted, name="w")
    assert _new_events(probe) == []
    assert manual_clock.now() == sum(delays)
    assert system.ask("w", "ok") == "ok"
    assert journal.lifecycle() == ["start w", "stop w", "start w"]


def test_crashing_on_the_first_message_after_each_restart_also_backs_off(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory([spec("w", journal)], max_restarts=1000)
    probe, _ = kit(system)
    for delay in [2, 4, 8, 16, 32, 60, 60]:
        system.tell("w", Fail(RuntimeError("again")))  # handled by the fresh instance
        probe.expect(ChildFailed, name="w")
        _wait_out(system, probe, manual_clock, "w", delay)
        probe.expect(ChildRestarted, name="w", timeout=0.5)


def _crash_and_restart(
    system: ActorSystem, probe: Probe, clock: ManualClock, expected_delay: float
) -> None:
    system.tell("w", Fail(RuntimeError("boom")))
    restarting = probe.expect(ChildRestarting, name="w")
    assert restarting.delay == expected_delay
    clock.advance(restarting.delay)
    probe.expect(ChildRestarted, name="w")


def test_one_successful_message_after_a_restart_resets_the_backoff(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory([spec("w", journal)], max_restarts=1000)
    probe, _ = kit(system)
    _crash_and_restart(system, probe, manual_clock, 2.0)
    _crash_and_restart(system, probe, manual_clock, 4.0)  # no success in between
    _crash_and_restart(system, probe, manual_clock, 8.0)
    assert system.ask("w", "works") == "works"  # a success resets the count
    system.settle()
    _crash_and_restart(system, probe, manual_clock, 2.0)
    _crash_and_restart(system, probe, manual_clock, 4.0)


def test_a_successful_start_alone_does_not_reset_the_backoff(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    journal: Journal,
) -> None:
    system = system_factory([spec("w", journal)], max_restarts=1000)
    probe, _ = kit(system)
    _crash_and_restart(system, probe, manual_clock, 2.0)
    manual_clock.advance(1000)  # time alone does not reset it either
    _crash_and_restart(system, probe, manual_clock, 4.0)


def test_a_childs_own_backoff_overrides_the_supervisors(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    own = Backoff(initial=1.0, multiplier=3.0, maximum=5.0)
    system = system_factory(
        [spec("w", journal, backoff=own), spec("v", journal)],
        max_restarts=1000,
        backoff=Backoff(initial=10.0, maximum=10.0),
    )
    probe, _ = kit(system)
    for delay in [1.0, 3.0, 5.0, 5.0]:
        _crash_and_restart(system, probe, manual_clock, delay)
    system.tell("v", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="v", delay=10.0)


def test_jittered_delays_stay_within_the_jitter_fraction(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, journal: Journal
) -> None:
    system = system_factory(
        [spec("w", journal, backoff=Backoff(initial=10.0, maximum=10.0, jitter=0.2))],
        max_restarts=1000,
    )
    probe, _ = kit(system)
    seen = []
    for _ in range(8):
        system.tell("w", Fail(RuntimeError("boom")))
        delay = probe.expect(ChildRestarting, name="w").delay
        seen.append(delay)
        manual_clock.advance(delay)
        probe.expect(ChildRestarted, name="w")
    assert all(8.0 <= d <= 12.0 for d in seen), seen
    assert len(set(seen)) > 1, "jitter should vary the delays"


# -- the pure schedule -----------------------------------------------------------
def test_default_backoff_schedule() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 9)] == [2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.delay(0) == 0.0
    assert backoff.delay(10_000) == 60.0  # no overflow for huge counts


def test_zero_backoff_restarts_at_once() -> None:
    assert [Backoff(0).delay(n) for n in range(1, 5)] == [0, 0, 0, 0]


def test_jitter_is_bounded_and_reproducible_with_a_seeded_rng() -> None:
    backoff = Backoff(initial=2.0, jitter=0.5)
    first = [backoff.delay(3, random.Random(7)) for _ in range(3)]
    assert first == [backoff.delay(3, random.Random(7))] * 3
    rng = random.Random(1)
    delays = [backoff.delay(3, rng) for _ in range(200)]
    assert all(4.0 <= d <= 12.0 for d in delays)
    assert min(delays) < 6.0 < max(delays)


def test_each_child_has_its_own_failure_count(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(spec("w", journal))
    actor_system.spawn(spec("v", journal))
    actor_system.tell("w", Fail(RuntimeError("1")))
    probe.expect(ChildRestarting, name="w", delay=2.0)
    actor_system.tell("v", Fail(RuntimeError("1")))
    probe.expect(ChildRestarting, name="v", delay=2.0)
    assert events_of(probe, ChildRestarting) == []
