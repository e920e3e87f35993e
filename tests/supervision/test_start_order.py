"""Start order, concurrency within a level, rollback, shutdown order and timeouts."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import Actor, ActorSystem, ManualClock
from messages import ChildStopTimedOut, StartupFailed
from supervision import ChildSpec, StartupError
from supervision.testing import Probe

WAIT = 5.0


class Recorder(Actor):
    """Appends ``start NAME`` / ``stop NAME`` to a shared list."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def on_start(self) -> None:
        self.log.append(f"start {self.name}")

    def on_stop(self) -> None:
        self.log.append(f"stop {self.name}")


class WaitsForPeer(Recorder):
    """Its start needs a peer of the same level to have started too (a barrier)."""

    def __init__(self, log: list[str], barrier: threading.Barrier) -> None:
        super().__init__(log)
        self.barrier = barrier

    def on_start(self) -> None:
        self.barrier.wait(WAIT)  # raises BrokenBarrierError if started one by one
        super().on_start()


class Fails(Recorder):
    def on_start(self) -> None:
        raise OSError("disk full")


class Unhealthy(Recorder):
    def health(self) -> dict[str, Any]:
        return {"healthy": False, "reason": "no upstream"}


class Hangs(Recorder):
    """``on_start`` waits on the system clock; a stop request cuts it short."""

    def on_start(self) -> None:
        self.sleep(3600)


class SlowStop(Recorder):
    """``on_stop`` blocks until the test releases it (bounded)."""

    def __init__(self, log: list[str], release: threading.Event) -> None:
        super().__init__(log)
        self.release = release

    def on_stop(self) -> None:
        self.release.wait(WAIT)
        super().on_stop()


def _system(children: list[ChildSpec]) -> ActorSystem:
    return ActorSystem(children, clock=ManualClock(), database_url=None)


def test_children_of_one_level_start_concurrently() -> None:
    """Two children that each wait for the other: a one-by-one start would deadlock."""
    log: list[str] = []
    barrier = threading.Barrier(2)
    children = [
        ChildSpec("base", Recorder, args=(log,)),
        ChildSpec("left", WaitsForPeer, args=(log, barrier), depends_on=("base",)),
        ChildSpec("right", WaitsForPeer, args=(log, barrier), depends_on=("base",)),
        ChildSpec("top", Recorder, args=(log,), depends_on=("left", "right")),
    ]
    with _system(children) as system:
        assert system.running
        assert log[0] == "start base"
        assert sorted(log[1:3]) == ["start left", "start right"]
        assert log[3] == "start top"
    # Shutdown: dependents before their dependencies.
    assert log[4] == "stop top"
    assert sorted(log[5:7]) == ["stop left", "stop right"]
    assert log[7] == "stop base"


def test_validation_errors_come_before_anything_starts() -> None:
    log: list[str] = []
    cases = [
        (
            [ChildSpec("a", Recorder, args=(log,)), ChildSpec("a", Recorder, args=(log,))],
            "duplicate.*'a'",
        ),
        ([ChildSpec("a", Recorder, args=(log,), depends_on=("ghost",))], "ghost"),
        ([ChildSpec("a", Recorder, args=(log,), depends_on=("a",))], "'a'.*itself|itself.*'a'"),
        (
            [
                ChildSpec("a", Recorder, args=(log,), depends_on=("c",)),
                ChildSpec("b", Recorder, args=(log,), depends_on=("a",)),
                ChildSpec("c", Recorder, args=(log,), depends_on=("b",)),
                ChildSpec("free", Recorder, args=(log,)),
            ],
            r"cycle.*'a' -> 'c' -> 'b' -> 'a'|cycle.*a.*c.*b.*a",
        ),
    ]
    for children, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            _system(children).start()
    assert log == [], "nothing may start when the specs are invalid"


@pytest.mark.parametrize(
    ("failing", "cause", "own_stop"),
    [
        (Fails, "OSError: disk full", []),
        # on_start returned, so the unhealthy child's on_stop cleans up first.
        (Unhealthy, "not healthy after on_start", ["stop web"]),
    ],
)
def test_a_failed_or_unhealthy_start_rolls_back_in_reverse_start_order(
    failing: type[Actor], cause: str, own_stop: list[str]
) -> None:
    log: list[str] = []
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("cache", Recorder, args=(log,), depends_on=("db",)),
        ChildSpec("metrics", Recorder, args=(log,), depends_on=("db",), rollback_on_failure=False),
        ChildSpec("web", failing, args=(log,), depends_on=("cache", "metrics")),
    ]
    system = _system(children)
    seen: list[StartupFailed] = []
    system.events.subscribe(seen.append, StartupFailed)
    with pytest.raises(StartupError) as info:
        system.start()
    error = info.value
    assert error.child == "web"
    assert cause in str(error)
    # Rolled back in reverse start order; "metrics" is stopped without its on_stop.
    assert error.rolled_back == ("cache", "db")
    stops = [line for line in log if line.startswith("stop")]
    assert stops == [*own_stop, "stop cache", "stop db"]
    assert system.threads() == []
    assert not system.running
    assert [e.name for e in seen] == ["web"]
    assert seen[0].rolled_back == ("cache", "db")
    assert cause in seen[0].error


def test_a_start_that_times_out_fails_and_rolls_back() -> None:
    log: list[str] = []
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("slow", Hangs, args=(log,), depends_on=("db",), start_timeout=0.2),
    ]
    system = _system(children)
    with pytest.raises(StartupError, match="'slow'.*timed out after 0.2s") as info:
        system.start()
    assert info.value.rolled_back == ("db",)
    assert log == ["start db", "stop db"]
    assert system.threads() == []


def test_a_child_that_overruns_its_shutdown_timeout_is_reported_and_abandoned() -> None:
    log: list[str] = []
    release = threading.Event()
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("stuck", SlowStop, args=(log, release), depends_on=("db",), shutdown_timeout=0.2),
        ChildSpec("web", Recorder, args=(log,), depends_on=("stuck",)),
    ]
    system = _system(children)
    system.start()
    probe = Probe(system, ChildStopTimedOut)
    stuck_thread = system._lookup("stuck").thread  # type: ignore[union-attr]
    try:
        system.stop()  # returns although "stuck" has not finished its on_stop
        timed_out = probe.expect(ChildStopTimedOut, name="stuck")
        assert timed_out.timeout == 0.2
        # Shutdown went on: the others stopped, in reverse start order.
        assert log == ["start db", "start stuck", "start web", "stop web", "stop db"]
    finally:
        release.set()
        assert stuck_thread is not None
        stuck_thread.join(WAIT)
    assert not stuck_thread.is_alive()
    assert log[-1] == "stop stuck"
