"""ServiceActor: periodic services, and the per-thread database sessions.

configure/update/cleanup, plain and ``async`` updates, Pause/Resume/RunNow,
metrics and health, ``decide(exc)``, ``retry_delay`` and ``max_failures``;
then ``self.db``: one session per actor thread, rolled back on a failure,
closed on stop and restart. Everything runs on a ``ManualClock`` against a
real SQLite file; ``system.settle()`` replaces every sleep.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from regisseur.actors import ServiceActor
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStopped,
    Pause,
    Resume,
    RunNow,
)
from regisseur.supervision import ChildSpec, Directive, StartupError
from regisseur.supervision.testing import FaultInjector, Probe
from tests.actors.helpers import Record, Script, apply, outside_engine, start

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine

    from regisseur.actors import ActorSystem, ManualClock


class Feed(ServiceActor):
    """Records its hooks; each update follows the script and returns ``batch``."""

    def configure(self, *, record: Record, script: Script | None = None, batch: int = 1) -> None:
        self.record = record
        self.script = script if script is not None else Script()
        self.batch = batch
        record.add("configure", self.service_id, batch)

    def on_start(self) -> None:
        self.record.add("start", self.service_id, threading.current_thread())

    def update(self) -> Any:
        clock = self.system.clock
        self.record.add("run", self.service_id, clock.now())
        apply(self.script.next(), clock)
        self.metrics["batches"] = self.metrics.get("batches", 0) + 1
        return self.batch

    def cleanup(self) -> None:
        self.record.add("cleanup", self.service_id)

    def on_stop(self) -> None:
        self.record.add("stop", self.service_id)


class AsyncFeed(Feed):
    """The same, with an ``async def update`` that records its event loop."""

    async def update(self) -> Any:
        loop = asyncio.get_running_loop()
        clock = self.system.clock
        self.record.add("run", self.service_id, clock.now(), loop, threading.current_thread())
        await asyncio.sleep(0)  # really suspends: the loop runs the rest
        apply(self.script.next(), clock)
        return self.batch


class RateLimited(Exception):
    pass


class AuthError(Exception):
    pass


class Mailer(Feed):
    """Waits out a rate limit, gives up on bad credentials, else the default."""

    def decide(self, exc: Exception) -> Any:
        if isinstance(exc, RateLimited):
            return Directive.restart_after(300)
        if isinstance(exc, AuthError):
            return Directive.STOP
        return super().decide(exc)


class Plain(ServiceActor):
    def update(self) -> None:
        pass


def service(
    name: str, record: Record, actor: type[ServiceActor] = Feed, **kwargs: Any
) -> ChildSpec:
    return ChildSpec(name, actor, args=(name,), kwargs={"record": record, **kwargs})


@pytest.fixture
def record() -> Record:
    return Record()


@pytest.fixture
def outside() -> Iterator[Callable[[ActorSystem], Engine]]:
    """Open engines on a system's database from outside the system."""
    engines: list[Engine] = []
    yield lambda system: outside_engine(system, engines)
    for engine in engines:
        engine.dispose()


def statistics(system: ActorSystem, name: str) -> dict[str, Any]:
    stats: dict[str, Any] = system.ref(name).proxy().statistics().get(timeout=5)
    return stats


def details(system: ActorSystem, name: str) -> tuple[str, dict[str, Any]]:
    report = system.health().find(name)
    assert report is not None
    return report.status, report.details


# -- the periodic run ----------------------------------------------------------


def test_configure_gets_the_options_and_update_runs_every_interval(
    actor_system: ActorSystem, manual_clock: ManualClock, record: Record
) -> None:
    start(actor_system, service("feed", record, interval=10, batch=25))
    actor_system.settle()
    assert record.kinds("feed") == ["configure", "start", "run"]
    assert record.of("configure") == [("configure", "feed", 25)]
    manual_clock.advance(10)
    manual_clock.advance(9.5)
    assert record.times("run", "feed") == [0.0, 10.0]
    manual_clock.advance(0.5)
    assert record.times("run", "feed") == [0.0, 10.0, 20.0]
    assert statistics(actor_system, "feed") == {
        "runs": 3,
        "processed": 75,  # update's return value adds to "processed"
        "errors": 0,
        "last_run_duration": 0.0,
        "last_run_time": 20.0,
        "batches": 3,  # the service's own metric
    }


def test_the_next_run_is_due_an_interval_after_the_previous_one_ended(
    actor_system: ActorSystem, manual_clock: ManualClock, record: Record
) -> None:
    start(actor_system, service("feed", record, interval=10, script=Script(None, 2.5)))
    manual_clock.advance(10)  # this run takes 2.5 s: 10 -> 12.5
    stats = statistics(actor_system, "feed")
    assert (stats["last_run_time"], stats["last_run_duration"]) == (12.5, 2.5)
    manual_clock.advance(9.5)
    assert record.times("run", "feed") == [0.0, 10.0]
    manual_clock.advance(0.5)
    assert record.times("run", "feed") == [0.0, 10.0, 22.5]


def test_an_async_update_runs_on_an_event_loop_owned_by_the_actor(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(None, None, RuntimeError("boom"))
    start(actor_system, service("feed", record, AsyncFeed, interval=10, batch=4, script=script))
    manual_clock.advance(10)
    (_, _, _, first, thread), (_, _, _, second, _) = record.of("run", "feed")
    assert second is first  # one loop, reused from run to run
    assert not first.is_closed()
    assert not first.is_running()  # between runs nothing runs on it
    assert thread.name.startswith(f"regisseur:{actor_system.name}/feed#")  # the actor's own thread
    assert thread is record.of("start", "feed")[0][2]
    assert statistics(actor_system, "feed")["processed"] == 8  # the awaited results count

    manual_clock.advance(10)  # the third run fails: the instance goes
    assert probe.expect(ChildRestarting, name="feed").delay == 5.0
    assert first.is_closed()  # closed with its incarnation
    manual_clock.advance(5)
    probe.expect(ChildRestarted, name="feed")
    actor_system.settle()
    fresh = record.of("run", "feed")[-1][3]
    assert fresh is not first
    assert not fresh.is_closed()
    actor_system.stop_child("feed")
    assert fresh.is_closed()  # and on stop


def test_cleanup_runs_before_a_restart_and_on_stop(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    actor_system.spawn(service("feed", record, interval=10, script=Script(KeyError("id"))))
    probe.expect(ChildRestarting, name="feed")
    actor_system.settle()
    assert record.kinds("feed") == ["configure", "start", "run", "cleanup", "stop"]
    manual_clock.advance(5)
    probe.expect(ChildRestarted, name="feed")
    actor_system.settle()
    actor_system.stop_child("feed")
    assert record.kinds("feed") == [
        *["configure", "start", "run", "cleanup", "stop"],
        *["configure", "start", "run", "cleanup", "stop"],
    ]


def test_a_failing_cleanup_is_logged_and_does_not_block_the_stop(
    actor_system: ActorSystem, record: Record, caplog: pytest.LogCaptureFixture
) -> None:
    class Messy(Feed):
        def cleanup(self) -> None:
            raise OSError("disk gone")

    actor_system.spawn(service("messy", record, Messy))
    actor_system.stop_child("messy")
    assert record.kinds("messy")[-1] == "stop"  # on_stop still ran
    failed = [r for r in caplog.records if getattr(r, "event", None) == "cleanup_failed"]
    assert [r.fields["error"] for r in failed] == ["OSError: disk gone"]  # type: ignore[attr-defined]


# -- Pause, Resume, RunNow -------------------------------------------------------


def test_pause_resume_and_run_now(
    actor_system: ActorSystem, manual_clock: ManualClock, record: Record
) -> None:
    start(actor_system, service("feed", record, interval=10))
    actor_system.tell("feed", Pause())
    actor_system.settle()
    status, info = details(actor_system, "feed")
    assert status == "paused"
    assert (info["paused"], info["running"]) == (True, False)
    manual_clock.advance(10)
    manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0]  # no interval runs while paused

    actor_system.tell("feed", RunNow())  # runs even while paused ...
    actor_system.settle()
    assert record.times("run", "feed") == [0.0, 20.0]
    manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0, 20.0]  # ... and stays paused
    assert details(actor_system, "feed")[0] == "paused"

    actor_system.tell("feed", Resume())  # a run is due at once, then every interval
    actor_system.settle()
    assert record.times("run", "feed") == [0.0, 20.0, 30.0]
    status, info = details(actor_system, "feed")
    assert status == "running"
    assert (info["paused"], info["running"]) == (False, True)
    manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0, 20.0, 30.0, 40.0]

    manual_clock.advance(5)
    actor_system.tell("feed", RunNow())  # at 45: the interval starts again after it
    manual_clock.advance(5)
    assert record.times("run", "feed") == [0.0, 20.0, 30.0, 40.0, 45.0]  # nothing at 50
    manual_clock.advance(5)
    assert record.times("run", "feed") == [0.0, 20.0, 30.0, 40.0, 45.0, 55.0]


def test_run_now_and_resume_together_never_double_the_schedule(
    actor_system: ActorSystem, manual_clock: ManualClock, record: Record
) -> None:
    start(actor_system, service("feed", record, interval=10))
    actor_system.tell("feed", Pause())
    actor_system.tell("feed", Resume())  # queues a run that is due at once ...
    actor_system.tell("feed", RunNow())  # ... and RunNow overtakes it: one run, not two
    actor_system.settle()
    assert record.times("run", "feed") == [0.0, 0.0]
    for _ in range(3):
        manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0, 0.0, 10.0, 20.0, 30.0]
    actor_system.tell("feed", RunNow())
    actor_system.tell("feed", RunNow())
    manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0, 0.0, 10.0, 20.0, 30.0, 30.0, 30.0, 40.0]


def test_a_run_now_held_during_a_restart_does_not_double_the_schedule(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    actor_system.spawn(service("feed", record, interval=10, script=Script(ValueError("x"))))
    probe.expect(ChildRestarting, name="feed")
    actor_system.tell("feed", RunNow())  # waits in the mailbox until the restart
    manual_clock.advance(5)
    probe.expect(ChildRestarted, name="feed")
    actor_system.settle()  # RunNow and the run due at the start are one run
    assert record.times("run", "feed") == [0.0, 5.0]
    for _ in range(2):
        manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0, 5.0, 15.0, 25.0]


def test_paused_state_and_metrics_survive_a_restart(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(None, ConnectionError("reset"))
    start(actor_system, service("feed", record, interval=10, script=script))
    actor_system.tell("feed", Pause())
    actor_system.tell("feed", RunNow())  # fails
    assert probe.expect(ChildFailed, name="feed").error == "ConnectionError: reset"
    assert probe.expect(ChildRestarting, name="feed").delay == 5.0
    manual_clock.advance(5)
    probe.expect(ChildRestarted, name="feed")
    actor_system.settle()
    assert record.times("run", "feed") == [0.0, 0.0]  # no run after the restart: paused
    status, info = details(actor_system, "feed")
    assert status == "paused"
    assert (info["runs"], info["errors"], info["batches"]) == (1, 1, 1)
    assert info["last_error"] == "ConnectionError: reset"


# -- metrics and health ----------------------------------------------------------


def test_health_reports_the_builtin_metrics_and_the_services_own(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(None, ValueError("bad feed"), 1.5)
    start(actor_system, service("feed", record, interval=10, batch=3, script=script))
    manual_clock.advance(10)  # the run at 10 fails
    probe.expect(ChildRestarting, name="feed", delay=5.0)
    report = actor_system.health().find("feed")
    assert report is not None
    assert (report.status, report.failures, report.healthy) == ("restarting", 1, False)
    assert report.last_error == "ValueError: bad feed"
    manual_clock.advance(5)  # restarted at 15; the run takes 1.5 s
    status, info = details(actor_system, "feed")
    assert status == "running"
    assert info == {
        "healthy": True,
        "running": True,
        "paused": False,
        "failures": 0,  # reset by the successful run
        "max_failures": 3,
        "last_run": 16.5,
        "last_error": "ValueError: bad feed",
        "processed": 6,
        "errors": 1,
        "runs": 2,
        "last_run_duration": 1.5,
        "last_run_time": 16.5,
        "batches": 2,
    }
    assert actor_system.healthy


# -- failures --------------------------------------------------------------------


def test_retry_delay_is_the_restart_delay_after_a_failure(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    boom = RuntimeError("boom")
    actor_system.spawn(
        service("feed", record, interval=60, retry_delay=7, script=Script(boom, boom))
    )
    for _ in range(2):  # the same delay every time: no exponential backoff
        assert probe.expect(ChildRestarting, name="feed").delay == 7.0
        manual_clock.advance(6.5)
        probe.expect_no(ChildRestarted, within=0)
        manual_clock.advance(0.5)
        probe.expect(ChildRestarted, name="feed")
    actor_system.settle()
    assert record.times("run", "feed") == [0.0, 7.0, 14.0]
    assert statistics(actor_system, "feed")["errors"] == 2


def test_decide_waits_out_a_rate_limit_and_stops_on_bad_credentials(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(None, RateLimited("429"), None, KeyError("id"), None, AuthError("401"))
    start(
        actor_system,
        service("mailer", record, Mailer, interval=10, script=script),
        service("other", record, interval=10),
    )
    manual_clock.advance(10)  # rate limited at 10
    assert probe.expect(ChildRestarting, name="mailer").delay == 300.0
    manual_clock.advance(299.5)
    probe.expect_no(ChildRestarted, name="mailer", within=0)
    manual_clock.advance(0.5)
    probe.expect(ChildRestarted, name="mailer")  # at 310
    actor_system.settle()

    manual_clock.advance(10)  # any other error: restart after retry_delay
    assert probe.expect(ChildRestarting, name="mailer").delay == 5.0
    manual_clock.advance(5)
    probe.expect(ChildRestarted, name="mailer")  # at 325
    actor_system.settle()

    manual_clock.advance(10)  # bad credentials: stopped for good
    gave_up = probe.expect(ChildGaveUp, name="mailer")
    assert gave_up.error == "AuthError: 401"
    probe.expect_no(ChildRestarting, name="mailer", within=0)
    assert record.times("run", "mailer") == [0.0, 10.0, 310.0, 320.0, 325.0, 335.0]
    report = actor_system.health().find("mailer")
    assert report is not None
    assert (report.status, report.healthy) == ("failed", False)
    runs = len(record.times("run", "other"))
    manual_clock.advance(10)
    assert len(record.times("run", "other")) == runs + 1  # the rest keeps running


def test_max_failures_consecutive_failures_stop_the_service_and_the_rest_runs_on(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(*[OSError("feed unreachable")] * 5)
    start(
        actor_system,
        service("feed", record, interval=10, max_failures=3, script=script),
        service("other", record, interval=10),
    )
    for _ in range(2):
        assert probe.expect(ChildRestarting, name="feed").delay == 5.0
        manual_clock.advance(5)
        probe.expect(ChildRestarted, name="feed")
    gave_up = probe.expect(ChildGaveUp, name="feed")
    assert gave_up.error == "OSError: feed unreachable (3 consecutive failures, max_failures=3)"
    probe.expect(ChildStopped, name="feed")
    actor_system.settle()
    assert record.times("run", "feed") == [0.0, 5.0, 10.0]
    assert record.kinds("feed").count("cleanup") == 3  # before each restart, and at the end
    assert record.kinds("feed")[-2:] == ["cleanup", "stop"]

    health = actor_system.health()
    feed, other = health.find("feed"), health.find("other")
    assert feed is not None
    assert other is not None
    assert (feed.status, feed.healthy, feed.failures) == ("failed", False, 3)
    assert (other.status, other.healthy) == ("running", True)
    assert not health.healthy
    assert actor_system.running
    manual_clock.advance(10)
    manual_clock.advance(10)
    assert record.times("run", "feed") == [0.0, 5.0, 10.0]
    assert record.times("run", "other") == [0.0, 10.0, 20.0, 30.0]


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"interval": -1}, ValueError, r"Plain interval must be > 0 seconds, got -1"),
        ({"interval": 0}, ValueError, r"Plain interval must be > 0 seconds, got 0"),
        ({"interval": "60"}, TypeError, r"Plain interval must be a number of seconds"),
        ({"max_failures": 0}, ValueError, r"Plain max_failures must be >= 1 \(or None\), got 0"),
        ({"max_failures": -3}, ValueError, r"Plain max_failures must be >= 1"),
        ({"max_failures": 2.5}, TypeError, r"Plain max_failures must be an int or None, got 2.5"),
        ({"max_failures": "3"}, TypeError, r"Plain max_failures must be an int or None, got '3'"),
        ({"max_failures": True}, TypeError, r"Plain max_failures must be an int or None"),
        ({"retry_delay": -5}, ValueError, r"Plain retry_delay must be >= 0 seconds"),
        ({"retry_delay": None}, TypeError, r"Plain retry_delay must be a number of seconds"),
        ({"colour": "red"}, TypeError, r"Plain got unexpected option\(s\) colour"),
    ],
)
def test_bad_arguments_fail_the_start_naming_the_argument(
    actor_system: ActorSystem, kwargs: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(StartupError) as info:
        actor_system.spawn(ChildSpec("bad", Plain, args=("bad",), kwargs=kwargs))
    assert info.value.child == "bad"
    assert isinstance(info.value.cause, error)
    assert re.search(pattern, str(info.value.cause))
    assert "bad" not in actor_system.names()


@pytest.mark.parametrize("service_id", ["", "   ", None])
def test_an_empty_service_id_is_refused(actor_system: ActorSystem, service_id: Any) -> None:
    with pytest.raises(StartupError) as info:
        actor_system.spawn(ChildSpec("bad", Plain, args=(service_id,)))
    assert isinstance(info.value.cause, ValueError)
    assert "Plain service_id must be a non-empty id" in str(info.value.cause)


def test_max_failures_none_never_gives_up(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(*[OSError("down")] * 4)
    actor_system.spawn(service("feed", record, max_failures=None, script=script))
    for _ in range(4):  # more than the default limit of 3
        assert probe.expect(ChildRestarting, name="feed").delay == 5.0
        manual_clock.advance(5)
        probe.expect(ChildRestarted, name="feed")
    actor_system.settle()
    probe.expect_no(ChildGaveUp, within=0)
    status, info = details(actor_system, "feed")
    assert (status, info["max_failures"], info["errors"], info["runs"]) == ("running", None, 4, 1)


# -- sessions per thread -----------------------------------------------------------


class TracedSession(Session):
    """A Session that remembers rollbacks and closes (with the thread doing them)."""

    def __init__(self, bind: Any) -> None:
        super().__init__(bind)
        self.calls: list[str] = []
        self.threads: set[threading.Thread] = set()

    def rollback(self) -> None:
        self.calls.append("rollback")
        self.threads.add(threading.current_thread())
        super().rollback()

    def close(self) -> None:
        self.calls.append("close")
        self.threads.add(threading.current_thread())
        super().close()


class Notes(ServiceActor):
    """Each run writes a note through ``self.db``; the script may fail it before the commit."""

    def configure(self, *, record: Record, script: Script | None = None) -> None:
        self.record = record
        self.script = script if script is not None else Script()

    def update(self) -> None:
        clock = self.system.clock
        session = self.db
        self.record.add("session", self.service_id, session, threading.current_thread())
        session.execute(
            text("INSERT INTO notes (who, at) VALUES (:w, :t)"),
            {"w": self.service_id, "t": clock.now()},
        )
        apply(self.script.next(), clock)  # a failure here leaves the insert uncommitted
        session.commit()
        borrowed: list[BaseException] = []
        thief = threading.Thread(target=lambda: _try(lambda: self.db, borrowed))
        thief.start()
        thief.join(5.0)
        self.record.add("borrowed", self.service_id, borrowed)


class ResumingNotes(Notes):
    def decide(self, exc: Exception) -> Any:
        return Directive.RESUME


def _try(call: Callable[[], object], errors: list[BaseException]) -> None:
    try:
        call()
    except Exception as exc:
        errors.append(exc)


@pytest.fixture
def traced(
    actor_system: ActorSystem,
    outside: Callable[[ActorSystem], Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> list[TracedSession]:
    """Every session the system opens from now on; creates the ``notes`` table."""
    database = actor_system.database
    assert database is not None
    opened: list[TracedSession] = []

    def session() -> Session:
        opened.append(TracedSession(database.engine))
        return opened[-1]

    monkeypatch.setattr(database, "session", session)
    with outside(actor_system).begin() as connection:
        connection.execute(text("CREATE TABLE notes (who TEXT, at REAL)"))
    return opened


def notes(system: ActorSystem, outside: Callable[[ActorSystem], Engine]) -> list[tuple[Any, ...]]:
    with outside(system).connect() as connection:
        rows = connection.execute(text("SELECT who, at FROM notes ORDER BY at, who")).all()
    return [tuple(row) for row in rows]


def test_each_actor_has_its_own_session_bound_to_its_own_thread(
    actor_system: ActorSystem,
    manual_clock: ManualClock,
    record: Record,
    traced: list[TracedSession],
    outside: Callable[[ActorSystem], Engine],
) -> None:
    start(
        actor_system,
        service("a", record, Notes, interval=10),
        service("b", record, Notes, interval=10),
    )
    manual_clock.advance(10)
    (_, _, a1, thread_a), (_, _, a2, _) = record.of("session", "a")
    (_, _, b1, thread_b), (_, _, b2, _) = record.of("session", "b")
    assert a1 is a2  # one session per actor, reused from run to run
    assert b1 is b2
    assert a1 is not b1
    assert len(traced) == 2
    assert thread_a is not thread_b
    assert thread_a.name.startswith(f"regisseur:{actor_system.name}/a#")
    assert thread_b.name.startswith(f"regisseur:{actor_system.name}/b#")
    assert a1.get_bind() is b1.get_bind() is actor_system.database.engine  # type: ignore[union-attr]
    for name in ("a", "b"):  # another thread may not use an actor's session
        (_, _, errors), *_ = record.of("borrowed", name)
        assert len(errors) == 1
        assert isinstance(errors[0], RuntimeError)
        assert f"self.db of {name!r} may only be used on that actor's own thread" in str(errors[0])
    assert notes(actor_system, outside) == [("a", 0.0), ("b", 0.0), ("a", 10.0), ("b", 10.0)]


def test_a_failure_rolls_back_the_uncommitted_work_and_a_restart_opens_a_fresh_session(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    record: Record,
    traced: list[TracedSession],
    outside: Callable[[ActorSystem], Engine],
) -> None:
    script = Script(None, ConnectionResetError("lost the feed"))
    start(
        actor_system,
        service("a", record, Notes, interval=10, script=script),
        service("b", record, Notes, interval=10),
    )
    manual_clock.advance(10)  # a's run at 10 fails after its insert
    probe.expect(ChildRestarting, name="a", delay=5.0)
    actor_system.settle()
    first = traced[0]
    assert record.of("session", "a")[0][2] is first
    assert first.calls == ["rollback", "close"]  # rolled back, then closed by the restart
    assert first.threads == {record.of("session", "a")[0][3]}  # on a's own thread
    assert notes(actor_system, outside) == [("a", 0.0), ("b", 0.0), ("b", 10.0)]
    with outside(actor_system).begin() as connection:  # no lock was left behind
        connection.execute(text("INSERT INTO notes VALUES ('app', 11.0)"))

    manual_clock.advance(5)
    probe.expect(ChildRestarted, name="a")
    actor_system.settle()
    fresh = record.of("session", "a")[-1][2]
    assert fresh is not first  # a fresh session after the restart
    assert fresh.calls == []
    b_session = record.of("session", "b")[0][2]
    assert b_session.calls == []  # b's session was never touched by a's failure
    assert notes(actor_system, outside) == [
        ("a", 0.0),
        ("b", 0.0),
        ("b", 10.0),
        ("app", 11.0),
        ("a", 15.0),
    ]
    actor_system.stop_child("a")
    assert fresh.calls == ["close"]  # closed on stop
    actor_system.stop()
    assert b_session.calls == ["close"]


def test_a_resumed_failure_rolls_back_and_keeps_the_session_and_the_schedule(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    record: Record,
    traced: list[TracedSession],
    outside: Callable[[ActorSystem], Engine],
) -> None:
    script = Script(None, ValueError("bad note"))
    start(actor_system, service("a", record, ResumingNotes, interval=10, script=script))
    manual_clock.advance(10)
    assert probe.expect(ChildFailed, name="a").error == "ValueError: bad note"
    (session,) = traced
    assert session.calls == ["rollback"]  # the same session goes on, rolled back
    manual_clock.advance(10)  # and the service keeps its schedule
    probe.expect_no(ChildRestarting, within=0)
    assert [e[2] for e in record.of("session", "a")] == [session] * 3
    assert notes(actor_system, outside) == [("a", 0.0), ("a", 20.0)]
    status, info = details(actor_system, "a")
    assert (status, info["failures"], info["errors"], info["runs"]) == ("running", 0, 1, 2)


def test_a_service_resumed_after_a_crash_before_its_update_keeps_its_schedule(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    record: Record,
    faults: FaultInjector,
    traced: list[TracedSession],
    outside: Callable[[ActorSystem], Engine],
) -> None:
    # The injected crash consumes the tick before update() runs: the resume,
    # not the failed run, must plan the next one.
    start(actor_system, service("a", record, ResumingNotes, interval=10))
    faults.crash("a", exc=ValueError("injected"))
    manual_clock.advance(10)
    assert probe.expect(ChildFailed, name="a").error == "ValueError: injected"
    manual_clock.advance(10)
    manual_clock.advance(10)
    probe.expect_no(ChildRestarting, within=0)
    assert notes(actor_system, outside) == [("a", 0.0), ("a", 20.0), ("a", 30.0)]
