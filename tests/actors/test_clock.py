"""ManualClock, RealClock and the timer heap."""

from __future__ import annotations

import math
import threading

import pytest

from regisseur.actors.clock import ManualClock, RealClock, Timers, check_duration


def test_manual_clock_is_frozen_until_advanced() -> None:
    clock = ManualClock(start=10.0)
    assert clock.now() == 10.0
    clock.advance(2.5)
    assert clock.now() == 12.5


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf])
def test_manual_clock_only_moves_forward(bad: float) -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="advance"):
        clock.advance(bad)
    assert clock.now() == 0.0


@pytest.mark.parametrize("bad", ["1", None, True])
def test_manual_clock_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(TypeError, match="number of seconds"):
        ManualClock().advance(bad)  # type: ignore[arg-type]


def test_timers_fire_in_deadline_order_with_time_at_deadline() -> None:
    clock = ManualClock()
    timers = Timers(clock)
    timers.start()
    fired: list[tuple[str, float]] = []
    timers.call_later(3, lambda: fired.append(("c", clock.now())))
    timers.call_later(1, lambda: fired.append(("a", clock.now())))
    timers.call_later(2, lambda: fired.append(("b", clock.now())))
    timers.call_later(2, lambda: fired.append(("b2", clock.now())))  # tie: schedule order
    clock.advance(2.5)
    assert fired == [("a", 1.0), ("b", 2.0), ("b2", 2.0)]
    assert clock.now() == 2.5
    clock.advance(10)
    assert fired[-1] == ("c", 3.0)
    timers.close()


def test_cancelled_timer_does_not_fire() -> None:
    clock = ManualClock()
    timers = Timers(clock)
    timers.start()
    fired: list[int] = []
    handle = timers.call_later(1, lambda: fired.append(1))
    handle.cancel()
    assert not handle.active
    clock.advance(5)
    assert fired == []
    timers.close()


def test_periodic_timer_fires_every_interval_under_manual_clock() -> None:
    clock = ManualClock()
    timers = Timers(clock)
    timers.start()
    times: list[float] = []
    handle = timers.call_every(1.0, lambda: times.append(clock.now()))
    clock.advance(3.5)
    assert times == [1.0, 2.0, 3.0]
    handle.cancel()
    clock.advance(3)
    assert times == [1.0, 2.0, 3.0]
    timers.close()


def test_advance_to_next_steps_exactly_to_the_next_timer() -> None:
    clock = ManualClock()
    timers = Timers(clock)
    timers.start()
    timers.call_later(4, lambda: None)
    assert clock.advance_to_next() == 4
    assert clock.now() == 4
    assert clock.advance_to_next() == 0
    timers.close()


def test_callback_errors_are_reported_and_others_still_fire() -> None:
    clock = ManualClock()
    errors: list[BaseException] = []
    timers = Timers(clock, on_error=errors.append)
    timers.start()
    fired: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    timers.call_later(1, boom)
    timers.call_later(2, lambda: fired.append(2))
    clock.advance(3)
    assert [str(e) for e in errors] == ["boom"]
    assert fired == [2]
    timers.close()


def test_closed_timers_refuse_new_timers_with_a_clear_error() -> None:
    timers = Timers(ManualClock(), name="t")
    timers.start()
    timers.close()
    with pytest.raises(RuntimeError, match="closed"):
        timers.call_later(1, lambda: None)


def test_real_clock_drives_one_thread_and_joins_it_on_close() -> None:
    timers = Timers(RealClock(), name="real")
    before = threading.active_count()
    timers.start()
    assert threading.active_count() == before + 1
    fired = threading.Event()
    timers.call_later(0.01, fired.set)
    for _ in range(50):
        timers.call_later(100, lambda: None)  # many timers, still one thread
    assert threading.active_count() == before + 1
    assert fired.wait(5)
    timers.close()
    assert threading.active_count() == before


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (math.nan, ValueError), ("3", TypeError), (False, TypeError)],
)
def test_check_duration_names_the_argument(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="my_timeout"):
        check_duration(value, "my_timeout")


def test_wall_time_is_the_epoch_on_a_real_clock_and_frozen_on_a_manual_one() -> None:
    import time

    before = time.time()
    assert before <= RealClock().wall() <= time.time()
    clock = ManualClock(start=5.0, wall_start=1_700_000_000.0)
    assert clock.wall() == 1_700_000_000.0
    clock.advance(2.5)
    assert (clock.now(), clock.wall()) == (7.5, 1_700_000_002.5)
    assert ManualClock().wall() == 0.0
    with pytest.raises(ValueError, match="wall_start"):
        ManualClock(wall_start=-1.0)
