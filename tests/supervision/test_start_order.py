"""Start order, concurrency within a level, validation, rollback, shutdown order and timeouts.

``start_timeout`` and ``shutdown_timeout`` are real seconds, so the tests
that exercise them use 0.2 s: that is waiting on a timeout, not sleeping.
Every blocking hook waits on a ``threading.Event`` the test sets at the end
(bounded by ``WAIT``), so no thread outlives its test.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.messages import ChildFailed, ChildRestarted, ChildStopTimedOut, StartupFailed
from regisseur.supervision import Backoff, ChildSpec, Directive, StartupError, Supervisor
from regisseur.supervision.testing import FaultInjector, Probe

if TYPE_CHECKING:
    from collections.abc import Iterator

WAIT = 5.0  # bound on every real wait; far above the 0.2 s timeouts under test


class Log:
    """A thread-safe list of ``"start NAME"`` / ``"stop NAME"`` lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def of(self, kind: str) -> list[str]:
        """Names of the ``kind`` lines (``"begin"``, ``"start"``, ``"stop"``), in order."""
        return [line.split(" ", 1)[1] for line in self.lines if line.startswith(f"{kind} ")]


class Recorder(Actor):
    """Logs ``begin NAME`` when ``on_start`` begins, ``start NAME`` when it ends, ``stop NAME``."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self.journal = log

    def on_start(self) -> None:
        self.journal.add(f"begin {self.name}")
        self.journal.add(f"start {self.name}")

    def on_stop(self) -> None:
        self.journal.add(f"stop {self.name}")


class WaitsForPeer(Recorder):
    """Its start needs a peer of the same level to be starting too (a barrier)."""

    def __init__(self, log: Log, barrier: threading.Barrier) -> None:
        super().__init__(log)
        self.barrier = barrier

    def on_start(self) -> None:
        self.barrier.wait(WAIT)  # BrokenBarrierError (a failed start) if started one by one
        super().on_start()


class Fails(Recorder):
    def on_start(self) -> None:
        raise OSError("disk full")


class Unhealthy(Recorder):
    def health(self) -> dict[str, Any]:
        return {"healthy": False, "reason": "no upstream"}


class SleepsOnStart(Recorder):
    """``on_start`` sleeps on the system clock; the timeout's stop request cuts it short."""

    def on_start(self) -> None:
        self.sleep(3600)  # Actor.sleep on the system clock: a stop request ends it
        super().on_start()


class BlocksOnStart(Recorder):
    """``on_start`` blocks (not cooperatively) until the test sets ``release``."""

    def __init__(self, log: Log, release: threading.Event) -> None:
        super().__init__(log)
        self.release = release

    def on_start(self) -> None:
        self.release.wait(WAIT)
        super().on_start()


class BlocksOnStop(Recorder):
    """``on_stop`` blocks until the test sets ``release``."""

    def __init__(self, log: Log, release: threading.Event) -> None:
        super().__init__(log)
        self.release = release

    def on_stop(self) -> None:
        self.release.wait(WAIT)
        super().on_stop()


def _system(children: list[ChildSpec]) -> ActorSystem:
    return ActorSystem(children, clock=ManualClock(), database_url=None)


def _actor_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("regisseur:")}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event for blocking hooks; set at teardown so nothing stays blocked."""
    event = threading.Event()
    yield event
    event.set()


def _assert_threads_end(before: set[threading.Thread]) -> None:
    """Every actor thread started since ``before`` ends (bounded wait)."""
    for thread in _actor_threads() - before:
        thread.join(WAIT)
    left = sorted(t.name for t in _actor_threads() - before)
    assert left == [], f"threads left running: {left}"


# -- start order and concurrency ----------------------------------------------------
def test_children_of_one_level_start_concurrently() -> None:
    """Two children that each wait for the other: a one-by-one start would deadlock."""
    log = Log()
    barrier = threading.Barrier(2)
    children = [
        ChildSpec("base", Recorder, args=(log,)),
        ChildSpec("left", WaitsForPeer, args=(log, barrier), depends_on=("base",)),
        ChildSpec("right", WaitsForPeer, args=(log, barrier), depends_on=("base",)),
        ChildSpec("top", Recorder, args=(log,), depends_on=("left", "right")),
    ]
    with _system(children) as system:
        assert system.running
        assert not barrier.broken
        starts = log.of("start")
        assert starts[0] == "base"
        assert sorted(starts[1:3]) == ["left", "right"]
        assert starts[3] == "top"
    # Shutdown: dependents before their dependencies, in reverse start order.
    assert log.of("stop") == ["top", "right", "left", "base"]


@pytest.mark.parametrize("seed", range(6))
def test_a_random_graph_starts_dependencies_first_and_stops_them_last(seed: int) -> None:
    """On a random DAG: a child begins only after every dependency has started;
    it stops before any of them; stop order is exactly the reverse start order."""
    rng = random.Random(seed)
    log = Log()
    names = [f"n{i}" for i in range(rng.randint(8, 24))]
    deps = {
        name: tuple(rng.sample(names[:index], rng.randint(0, min(3, index))))
        for index, name in enumerate(names)
    }
    order = names[:]
    rng.shuffle(order)  # the spec order need not be the dependency order
    children = [ChildSpec(n, Recorder, args=(log,), depends_on=deps[n]) for n in order]

    level: dict[str, int] = {}
    for name in names:  # names are topologically ordered by construction
        level[name] = 1 + max((level[d] for d in deps[name]), default=-1)
    start_order = sorted(order, key=lambda n: level[n])  # stable: spec order in a level

    with _system(children):
        lines = log.lines
    for name in names:
        begun = lines.index(f"begin {name}")
        for dep in deps[name]:
            assert lines.index(f"start {dep}") < begun, f"{name} began before {dep} started"
    stops = log.of("stop")
    for name in names:
        for dep in deps[name]:
            assert stops.index(name) < stops.index(dep), f"{dep} stopped before {name}"
    assert stops == list(reversed(start_order))


# -- validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda r: [r("a"), r("b"), r("a")],
            "duplicate child name 'a'",
            id="duplicate",
        ),
        pytest.param(
            lambda r: [r("a"), r("web", ("a", "ghost"))],
            "child 'web' depends on unknown child 'ghost'",
            id="unknown",
        ),
        pytest.param(lambda r: [r("a", ("a",))], "child 'a' depends on itself", id="self"),
        pytest.param(
            lambda r: [r("free"), r("a", ("free", "c")), r("b", ("a",)), r("c", ("b",))],
            "dependency cycle: a -> c -> b -> a",
            id="cycle",
        ),
        pytest.param(
            lambda r: [r("x", ("z",)), r("y", ("x",)), r("z", ("y",)), r("w", ("x",))],
            "dependency cycle: x -> z -> y -> x",
            id="cycle-with-a-branch",
        ),
    ],
)
def test_a_bad_graph_is_a_value_error_before_anything_starts(make: Any, message: str) -> None:
    log = Log()
    before = _actor_threads()

    def recorder(name: str, depends_on: tuple[str, ...] = ()) -> ChildSpec:
        return ChildSpec(name, Recorder, args=(log,), depends_on=depends_on)

    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _system(make(recorder)).start()
    # The same graph nested one level down is rejected just as early.
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _system([recorder("outer"), ChildSpec("sub", Supervisor(make(recorder)))]).start()
    assert log.lines == [], "nothing may start when the specs are invalid"
    assert _actor_threads() == before, "no actor thread may be created"


def test_a_name_used_twice_across_nesting_levels_starts_nothing() -> None:
    log = Log()
    before = _actor_threads()
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("sub", Supervisor([ChildSpec("db", Recorder, args=(log,))])),
    ]
    with pytest.raises(ValueError, match="'db'"):
        _system(children)
    assert log.lines == []
    assert _actor_threads() == before


# -- rollback ------------------------------------------------------------------------
def _layered(log: Log, failing: ChildSpec) -> list[ChildSpec]:
    """db <- (cache, metrics[no rollback], failing) <- web: ``failing`` shares a level."""
    return [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("cache", Recorder, args=(log,), depends_on=("db",)),
        ChildSpec("metrics", Recorder, args=(log,), depends_on=("db",), rollback_on_failure=False),
        failing,
        ChildSpec("web", Recorder, args=(log,), depends_on=("cache", "bad")),
    ]


def _start_and_fail(system: ActorSystem) -> tuple[StartupError, list[StartupFailed]]:
    seen: list[StartupFailed] = []
    system.events.subscribe(seen.append, StartupFailed)
    with pytest.raises(StartupError) as info:
        system.start()
    return info.value, seen


@pytest.mark.parametrize(
    ("failing", "cause_type", "cause", "own_stop"),
    [
        pytest.param(Fails, OSError, "OSError: disk full", [], id="raises"),
        # on_start returned, so the unhealthy child's own on_stop runs first.
        pytest.param(
            Unhealthy, RuntimeError, "not healthy after on_start", ["bad"], id="unhealthy"
        ),
    ],
)
def test_a_failed_or_unhealthy_start_rolls_back_in_reverse_start_order(
    failing: type[Actor], cause_type: type, cause: str, own_stop: list[str]
) -> None:
    log = Log()
    before = _actor_threads()
    system = _system(_layered(log, ChildSpec("bad", failing, args=(log,), depends_on=("db",))))
    error, seen = _start_and_fail(system)

    assert error.child == "bad"
    assert isinstance(error.cause, cause_type)
    assert error.__cause__ is error.cause
    assert cause in str(error)
    assert "'bad'" in str(error)
    # Rolled back in reverse start order; "metrics" is stopped without its on_stop.
    assert error.rolled_back == ("cache", "db")
    assert log.of("stop") == [*own_stop, "cache", "db"]
    assert "begin web" not in log.lines, "a later level never starts"
    assert [(e.name, e.rolled_back) for e in seen] == [("bad", ("cache", "db"))]
    assert cause in seen[0].error
    assert not system.running
    assert system.threads() == []
    _assert_threads_end(before)


def test_a_start_that_times_out_cooperatively_fails_and_rolls_back() -> None:
    """A child that sleeps on the system clock: the timeout's stop request wakes it."""
    log = Log()
    before = _actor_threads()
    failing = ChildSpec("bad", SleepsOnStart, args=(log,), depends_on=("db",), start_timeout=0.2)
    system = _system(_layered(log, failing))
    error, seen = _start_and_fail(system)

    assert error.child == "bad"
    assert isinstance(error.cause, TimeoutError)
    assert "'bad' failed to start: TimeoutError: start timed out after 0.2s" in str(error)
    assert error.rolled_back == ("cache", "db")
    # Its on_start returned (late), so its on_stop runs, before its dependencies'.
    assert log.of("stop") == ["bad", "cache", "db"]
    assert [(e.name, e.rolled_back) for e in seen] == [("bad", ("cache", "db"))]
    assert "timed out after 0.2s" in seen[0].error
    assert system.threads() == []
    _assert_threads_end(before)


def test_a_start_that_blocks_past_its_timeout_is_abandoned_and_its_thread_ends_later(
    release: threading.Event,
) -> None:
    """A child blocked in on_start (deaf to stop requests) is abandoned after its
    shutdown_timeout; the rollback goes on; once it returns, its thread ends."""
    log = Log()
    before = _actor_threads()
    failing = ChildSpec(
        "bad",
        BlocksOnStart,
        args=(log, release),
        depends_on=("db",),
        start_timeout=0.2,
        shutdown_timeout=0.2,
    )
    system = _system(_layered(log, failing))
    timed_out: list[ChildStopTimedOut] = []
    system.events.subscribe(timed_out.append, ChildStopTimedOut)
    error, seen = _start_and_fail(system)

    assert error.child == "bad"
    assert isinstance(error.cause, TimeoutError)
    assert error.rolled_back == ("cache", "db")
    assert log.of("stop") == ["cache", "db"]
    assert [e.name for e in seen] == ["bad"]
    assert timed_out == [ChildStopTimedOut("bad", 0.2)]
    assert not system.running
    prefix = f"regisseur:{system.name}/bad#"
    blocked = [t for t in _actor_threads() - before if t.name.startswith(prefix)]
    assert len(blocked) == 1 and blocked[0].is_alive()

    release.set()  # on_start returns: the late start is stopped and the thread ends
    _assert_threads_end(before)
    assert log.of("start")[-1] == "bad"
    assert log.of("stop") == ["cache", "db", "bad"]


def test_a_rollback_goes_on_past_a_child_that_overruns_its_shutdown_timeout(
    release: threading.Event,
) -> None:
    log = Log()
    before = _actor_threads()
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec(
            "stuck", BlocksOnStop, args=(log, release), depends_on=("db",), shutdown_timeout=0.2
        ),
        ChildSpec("bad", Fails, args=(log,), depends_on=("stuck",)),
    ]
    system = _system(children)
    timed_out: list[ChildStopTimedOut] = []
    system.events.subscribe(timed_out.append, ChildStopTimedOut)
    error, _ = _start_and_fail(system)

    assert error.child == "bad"
    assert error.rolled_back == ("stuck", "db")
    assert timed_out == [ChildStopTimedOut("stuck", 0.2)]
    assert log.of("stop") == ["db"], "the rollback went on without waiting for 'stuck'"

    release.set()
    _assert_threads_end(before)
    assert log.of("stop") == ["db", "stuck"]


def test_a_nested_start_failure_names_the_innermost_child_and_rolls_back_both_levels() -> None:
    log = Log()
    before = _actor_threads()
    inner = Supervisor(
        [
            ChildSpec("cache", Recorder, args=(log,)),
            ChildSpec("api", Fails, args=(log,), depends_on=("cache",)),
        ]
    )
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("services", inner, depends_on=("db",)),
        ChildSpec("web", Recorder, args=(log,), depends_on=("services",)),
    ]
    system = _system(children)
    error, seen = _start_and_fail(system)

    assert error.child == "api"
    assert isinstance(error.cause, OSError)
    assert error.rolled_back == ("cache", "db")
    assert log.of("stop") == ["cache", "db"]
    assert "begin web" not in log.lines
    assert [e.name for e in seen] == ["api"]
    assert system.threads() == []
    _assert_threads_end(before)


def test_children_without_rollback_are_stopped_without_their_on_stop() -> None:
    log = Log()
    before = _actor_threads()
    children = [
        ChildSpec("db", Recorder, args=(log,), rollback_on_failure=False),
        ChildSpec("queue", Recorder, args=(log,), rollback_on_failure=False),
        ChildSpec("cache", Recorder, args=(log,), depends_on=("db",)),
        ChildSpec("bad", Fails, args=(log,), depends_on=("cache", "queue")),
    ]
    error, seen = _start_and_fail(_system(children))
    assert error.rolled_back == ("cache",)
    assert seen[0].rolled_back == ("cache",)
    started = log.of("start")
    assert sorted(started[:2]) == ["db", "queue"]  # one level: concurrent, any order
    assert started[2:] == ["cache"]
    assert log.of("stop") == ["cache"]
    _assert_threads_end(before)  # their threads end all the same


# -- shutdown ----------------------------------------------------------------------
def test_shutdown_stops_dependents_before_their_dependencies() -> None:
    log = Log()
    children = [
        ChildSpec("web", Recorder, args=(log,), depends_on=("api", "cache")),
        ChildSpec("api", Recorder, args=(log,), depends_on=("db",)),
        ChildSpec("cache", Recorder, args=(log,)),
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec("metrics", Recorder, args=(log,)),
    ]
    with _system(children):
        # Levels: [cache, db, metrics], [api], [web] (spec order within a level).
        assert log.of("start")[3:] == ["api", "web"]
    assert log.of("stop") == ["web", "api", "metrics", "db", "cache"]


def test_a_child_that_overruns_its_shutdown_timeout_is_reported_and_abandoned(
    release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()
    before = _actor_threads()
    children = [
        ChildSpec("db", Recorder, args=(log,)),
        ChildSpec(
            "stuck", BlocksOnStop, args=(log, release), depends_on=("db",), shutdown_timeout=0.2
        ),
        ChildSpec("web", Recorder, args=(log,), depends_on=("stuck",)),
    ]
    system = _system(children)
    system.start()
    probe = Probe(system, ChildStopTimedOut)
    with caplog.at_level(logging.ERROR, logger="regisseur"):
        began = time.monotonic()
        system.stop()  # returns although "stuck" has not finished its on_stop
        elapsed = time.monotonic() - began
    assert elapsed < WAIT - 1, "stop() waited for the blocked on_stop"
    assert probe.expect(ChildStopTimedOut, name="stuck").timeout == 0.2
    records = [r for r in caplog.records if getattr(r, "event", None) == "child_stop_timed_out"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].fields == {"child": "stuck", "timeout": 0.2}  # type: ignore[attr-defined]
    # Shutdown went on: the others stopped, in reverse start order.
    assert log.lines == [
        "begin db",
        "start db",
        "begin stuck",
        "start stuck",
        "begin web",
        "start web",
        "stop web",
        "stop db",
    ]
    assert not system.running

    release.set()
    _assert_threads_end(before)
    assert log.of("stop") == ["web", "db", "stuck"]


# -- starts during a restart ---------------------------------------------------------
class Echo(Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        return message


def test_resume_after_a_failed_restart_starts_a_fresh_instance(
    system_factory: Any, manual_clock: ManualClock
) -> None:
    """RESUME has no instance to resume when on_start failed: the child starts afresh
    instead of keeping its mailbox held for ever."""
    group = Supervisor(
        [ChildSpec("echo", Echo)],
        backoff=Backoff(initial=0),
        decider=lambda exc: Directive.RESUME if isinstance(exc, OSError) else None,
    )
    system = system_factory([ChildSpec("group", group)], database_url=None)
    probe = Probe(system)
    FaultInjector(system).fail_start("echo", exc=OSError("port in use"))
    system.tell("echo", "boom")  # RESTART; that start fails with OSError -> RESUME
    system.tell("echo", "after")
    assert system.ask("echo", "ping", timeout=WAIT) == "ping"
    probe.expect(ChildFailed, name="echo", error="OSError: port in use")
    probe.expect(ChildRestarted, name="echo")
    system.settle(timeout=WAIT)
    (group_report,) = [c for c in system.health().children if c.name == "group"]
    report = group_report.children[0]
    assert report.name == "echo" and report.healthy and report.status == "running"


def test_a_nested_supervisor_is_awaited_while_its_children_stop_within_their_bounds(
    release: threading.Event,
) -> None:
    """A nested supervisor's stop is bounded by what its children may take,
    not by its own ``shutdown_timeout`` alone: the slow child is the one
    abandoned (by its own supervisor, at its own bound), never the supervisor
    mid-stop, whose children would then still be registered beside a restart."""
    log = Log()
    before = _actor_threads()
    assert ChildSpec("a", Recorder, args=(log,), shutdown_timeout=0.3).stop_bound() == 0.3
    inner = Supervisor(
        [
            ChildSpec("db", Recorder, args=(log,)),
            ChildSpec(
                "stuck", BlocksOnStop, args=(log, release), depends_on=("db",), shutdown_timeout=0.3
            ),
        ]
    )
    services = ChildSpec("services", inner, shutdown_timeout=0.1)
    assert services.stop_bound() == pytest.approx(0.1 + 5.0 + 0.3)  # its own, db's, stuck's
    system = _system([services])
    timed_out: list[ChildStopTimedOut] = []
    system.events.subscribe(timed_out.append, ChildStopTimedOut)
    system.start()
    system.stop()

    assert timed_out == [ChildStopTimedOut("stuck", 0.3)], "only the slow child is abandoned"
    assert log.of("stop") == ["db"], "its supervisor went on with the stop in order"
    release.set()
    _assert_threads_end(before)
    assert log.of("stop") == ["db", "stuck"]
