"""ServerActor: one supervised loop per server.

Interval runs scheduled from the end of the previous run, hooks, ``self.db``,
``server_id`` in the logs, backoff 2 → 4 → … → 60 s reset by a successful
run, ``FatalError`` for good, and one actor per row of a ``servers`` table
added and removed at runtime. Everything runs on a ``ManualClock`` against a
real SQLite file; ``system.settle()`` replaces every sleep.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

import pykka
import pytest
from sqlalchemy import text

from regisseur.actors import ServerActor
from regisseur.actors.log import JsonFormatter
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
)
from regisseur.supervision import ChildSpec, Directive, FatalError, StartupError
from regisseur.supervision.testing import FaultInjector, Probe
from tests.actors.helpers import Record, Script, apply, outside_engine, start

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine

    from regisseur.actors import ActorSystem, ManualClock


class Poller(ServerActor):
    """Records its lifecycle; each run follows the script, then writes a row."""

    def __init__(
        self,
        server_id: Any,
        *,
        interval: float = 1.0,
        record: Record,
        script: Script | None = None,
    ) -> None:
        super().__init__(server_id, interval=interval)
        self.record = record
        self.script = script if script is not None else Script()

    def on_start(self) -> None:
        now = self.system.clock.now()
        self.record.add("start", self.server_id, now, threading.current_thread())
        self.db.execute(text("CREATE TABLE IF NOT EXISTS polls (server INTEGER, at REAL)"))
        self.db.commit()

    def run_loop(self) -> None:
        clock = self.system.clock
        self.record.add("run", self.server_id, clock.now())
        apply(self.script.next(), clock)
        self.db.execute(
            text("INSERT INTO polls (server, at) VALUES (:s, :t)"),
            {"s": self.server_id, "t": clock.now()},
        )
        self.db.commit()
        self.log.info("polled", at=clock.now())
        self.record.add("end", self.server_id, clock.now())

    def on_stop(self) -> None:
        self.record.add("stop", self.server_id, self.system.clock.now())


class Resuming(Poller):
    """Keeps its instance on a ``ValueError`` (a bad row is not worth a restart)."""

    def decide(self, exc: Exception) -> Any:
        if isinstance(exc, ValueError):
            return Directive.RESUME
        return super().decide(exc)


class Idle(ServerActor):
    def run_loop(self) -> None:
        pass


def poller(server_id: int, record: Record, **kwargs: Any) -> ChildSpec:
    actor = kwargs.pop("actor", Poller)
    kwargs["record"] = record
    return ChildSpec(f"server-{server_id}", actor, args=(server_id,), kwargs=kwargs)


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


# -- the loop ----------------------------------------------------------------


def test_run_loop_runs_right_after_start_then_every_interval(
    system_factory: Any, manual_clock: ManualClock, record: Record
) -> None:
    system = system_factory([poller(1, record, interval=2.5)])
    system.settle()
    assert record.kinds(1) == ["start", "run", "end"]  # on_start first, then a run at once
    assert record.times("run", 1) == [0.0]
    manual_clock.advance(2.5)
    assert record.times("run", 1) == [0.0, 2.5]
    manual_clock.advance(2.25)
    assert record.times("run", 1) == [0.0, 2.5]
    manual_clock.advance(0.25)
    assert record.times("run", 1) == [0.0, 2.5, 5.0]
    report = system.health().find("server-1")
    assert report is not None
    assert report.status == "running"
    assert report.details == {"server_id": 1, "runs": 3, "interval": 2.5}


def test_the_next_run_is_scheduled_when_the_previous_one_ends(
    system_factory: Any, manual_clock: ManualClock, record: Record
) -> None:
    # The second run takes 3 s (it moves the manual clock from 1 to 4 itself).
    # Runs due at 2, 3 and 4 on a fixed rate must not pile up behind it: the
    # next run is due one interval after it ended, at 5.
    system_factory([poller(1, record, interval=1.0, script=Script(None, 3.0))])
    manual_clock.advance(1.0)
    assert manual_clock.now() == 4.0
    assert record.times("run", 1) == [0.0, 1.0]
    assert record.times("end", 1) == [0.0, 4.0]
    manual_clock.advance(0.75)
    assert record.times("run", 1) == [0.0, 1.0]
    manual_clock.advance(0.25)
    assert record.times("run", 1) == [0.0, 1.0, 5.0]
    manual_clock.advance(1.0)
    assert record.times("run", 1) == [0.0, 1.0, 5.0, 6.0]


def test_run_loop_writes_through_self_db_and_another_engine_sees_the_rows(
    system_factory: Any,
    manual_clock: ManualClock,
    record: Record,
    outside: Callable[[ActorSystem], Engine],
) -> None:
    system = system_factory([poller(7, record), poller(8, record, interval=2.0)])
    system.settle()
    for _ in range(2):
        manual_clock.advance(1.0)
    with outside(system).connect() as connection:
        rows = connection.execute(text("SELECT server, at FROM polls ORDER BY server, at")).all()
    assert [tuple(row) for row in rows] == [(7, 0.0), (7, 1.0), (7, 2.0), (8, 0.0), (8, 2.0)]


def test_logs_carry_server_id(
    system_factory: Any,
    manual_clock: ManualClock,
    record: Record,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    system_factory([poller(7, record)])
    manual_clock.advance(1.0)
    polled = [r for r in caplog.records if getattr(r, "event", None) == "polled"]
    assert len(polled) == 2
    for line in polled:
        assert line.actor == "server-7"  # type: ignore[attr-defined]
        assert line.fields["server_id"] == 7  # type: ignore[attr-defined]
    assert [r.fields["at"] for r in polled] == [0.0, 1.0]  # type: ignore[attr-defined]
    as_json = json.loads(JsonFormatter().format(polled[-1]))
    assert as_json["actor"] == "server-7"
    assert as_json["fields"] == {"server_id": 7, "at": 1.0}


# -- failures ----------------------------------------------------------------


def test_failures_back_off_2_4_8_16_32_60_60_seconds(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(*[ConnectionError("connection refused")] * 7)
    actor_system.spawn(poller(1, record, script=script))
    for delay in (2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0):
        assert probe.expect(ChildRestarting, name="server-1").delay == delay
        manual_clock.advance(delay - 0.5)
        probe.expect_no(ChildRestarted, within=0)  # not a moment early
        manual_clock.advance(0.5)
        probe.expect(ChildRestarted, name="server-1")
    actor_system.settle()  # the 8th run succeeded
    report = actor_system.health().find("server-1")
    assert report is not None
    assert (report.status, report.restarts, report.failures) == ("running", 7, 0)
    assert report.last_error == "ConnectionError: connection refused"
    starts = record.times("start", 1)
    assert starts == [0.0, 2.0, 6.0, 14.0, 30.0, 62.0, 122.0, 182.0]
    # Every incarnation ran on the same thread; each old one's on_stop came first.
    assert len({e[3] for e in record.of("start", 1)}) == 1
    assert record.kinds(1)[:5] == ["start", "run", "stop", "start", "run"]


def test_the_backoff_resets_after_a_successful_run(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    boom = RuntimeError("boom")
    actor_system.spawn(poller(1, record, script=Script(boom, boom, boom, None, boom)))
    for delay in (2.0, 4.0, 8.0):
        assert probe.expect(ChildRestarting, name="server-1").delay == delay
        if delay == 8.0:
            actor_system.settle()
            restarting = actor_system.health().find("server-1")
            assert restarting is not None
            assert (restarting.status, restarting.failures) == ("restarting", 3)
        manual_clock.advance(delay)
        probe.expect(ChildRestarted, name="server-1")
    actor_system.settle()  # the run at 14 succeeded: the count of failures is reset
    report = actor_system.health().find("server-1")
    assert report is not None
    assert (report.status, report.failures, report.restarts) == ("running", 0, 3)
    manual_clock.advance(1.0)  # the next run (at 15) fails: back to the first delay
    assert probe.expect(ChildRestarting, name="server-1").delay == 2.0
    assert record.times("run", 1) == [0.0, 2.0, 6.0, 14.0, 15.0]


def test_fatal_error_stops_the_server_for_good_and_the_others_run_on(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    start(
        actor_system,
        poller(1, record),
        poller(2, record, script=Script(None, FatalError("licence revoked"))),
    )
    manual_clock.advance(1.0)
    gave_up = probe.expect(ChildGaveUp, name="server-2")
    assert gave_up.error == "FatalError: licence revoked"
    probe.expect(ChildStopped, name="server-2")
    probe.expect_no(ChildRestarting, within=0)
    assert record.kinds(2)[-1] == "stop"  # its on_stop ran
    for _ in range(3):
        manual_clock.advance(1.0)
    assert record.times("run", 1) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert record.times("run", 2) == [0.0, 1.0]
    health = actor_system.health()
    failed, running = health.find("server-2"), health.find("server-1")
    assert failed is not None
    assert running is not None
    assert (failed.status, failed.healthy) == ("failed", False)
    assert failed.last_error == "FatalError: licence revoked"
    assert (running.status, running.healthy) == ("running", True)
    assert not health.healthy
    assert actor_system.running
    with pytest.raises(pykka.ActorDeadError):
        actor_system.ref("server-2")


def test_a_resumed_server_keeps_its_instance_and_keeps_looping(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, record: Record
) -> None:
    script = Script(None, ValueError("bad row"))
    start(actor_system, poller(1, record, actor=Resuming, script=script))
    manual_clock.advance(1.0)
    assert probe.expect(ChildFailed, name="server-1").error == "ValueError: bad row"
    manual_clock.advance(1.0)
    manual_clock.advance(1.0)
    probe.expect_no(ChildRestarting, within=0)
    assert record.times("run", 1) == [0.0, 1.0, 2.0, 3.0]
    assert record.kinds(1).count("start") == 1  # the same instance
    report = actor_system.health().find("server-1")
    assert report is not None
    assert (report.status, report.failures, report.restarts) == ("running", 0, 0)
    assert report.details["runs"] == 3


def test_a_server_resumed_after_a_crash_before_its_handler_keeps_looping(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    record: Record,
    faults: FaultInjector,
) -> None:
    # The injected crash consumes the run's message before run_loop: the
    # resume, not the failed run, must plan the next one.
    start(actor_system, poller(1, record, actor=Resuming))
    faults.crash("server-1", exc=ValueError("injected"))
    manual_clock.advance(1.0)
    assert probe.expect(ChildFailed, name="server-1").error == "ValueError: injected"
    manual_clock.advance(1.0)
    manual_clock.advance(1.0)
    probe.expect_no(ChildRestarting, within=0)
    assert record.times("run", 1) == [0.0, 2.0, 3.0]
    assert record.kinds(1).count("start") == 1  # the same instance


# -- one server actor per row --------------------------------------------------


def test_one_server_actor_per_row_of_a_servers_table_added_and_removed_at_runtime(
    actor_system: ActorSystem,
    probe: Probe,
    manual_clock: ManualClock,
    record: Record,
    outside: Callable[[ActorSystem], Engine],
) -> None:
    app = outside(actor_system)  # the application's own connection
    with app.begin() as connection:
        connection.execute(text("CREATE TABLE servers (id INTEGER PRIMARY KEY, host TEXT)"))
        connection.execute(
            text("INSERT INTO servers VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")
        )
    running: set[int] = set()

    def sync() -> None:
        """Make the running server actors match the rows of ``servers``."""
        with app.connect() as connection:
            wanted = set(connection.execute(text("SELECT id FROM servers")).scalars())
        for server_id in sorted(wanted - running):
            actor_system.spawn(poller(server_id, record))
            running.add(server_id)
        for server_id in sorted(running - wanted):
            actor_system.stop_child(f"server-{server_id}")
            running.discard(server_id)
        actor_system.settle()  # the new servers' first runs are done

    sync()
    for name in ("server-1", "server-2", "server-3"):
        probe.expect(ChildStarted, name=name)
    manual_clock.advance(1.0)
    threads = {e[1]: e[3] for e in record.of("start")}
    assert len(set(threads.values())) == 3  # one thread per server
    assert all(thread.is_alive() for thread in threads.values())

    with app.begin() as connection:
        connection.execute(text("DELETE FROM servers WHERE id = 2"))
        connection.execute(text("INSERT INTO servers VALUES (4, 'delta')"))
    sync()
    probe.expect(ChildStopped, name="server-2")
    assert record.kinds(2)[-1] == "stop"  # on_stop ran
    threads[2].join(5.0)
    assert not threads[2].is_alive()
    assert "server-2" not in actor_system.names()
    assert "server-4" in actor_system.names()
    with pytest.raises(pykka.ActorDeadError):
        actor_system.ref("server-2")

    manual_clock.advance(1.0)
    manual_clock.advance(1.0)
    with app.connect() as connection:
        polls = connection.execute(
            text("SELECT server, COUNT(*) FROM polls GROUP BY server ORDER BY server")
        ).all()
    assert [tuple(row) for row in polls] == [(1, 4), (2, 2), (3, 4), (4, 3)]
    assert {r.name for r in actor_system.health().walk()} >= {
        "server-1",
        "server-3",
        "server-4",
    }
    actor_system.stop()
    assert actor_system.threads() == []
    assert sorted(e[1] for e in record.of("stop")) == [1, 2, 3, 4]


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "pattern"),
    [
        ((1,), {"interval": 0}, ValueError, r"Idle interval must be > 0 seconds, got 0"),
        ((1,), {"interval": -1.0}, ValueError, r"Idle interval must be > 0 seconds"),
        ((1,), {"interval": float("nan")}, ValueError, r"Idle interval must be a finite"),
        ((1,), {"interval": "1"}, TypeError, r"Idle interval must be a number of seconds"),
        ((1,), {"interval": True}, TypeError, r"Idle interval must be a number of seconds"),
        (
            ("",),
            {},
            ValueError,
            r"Idle server_id must be a non-empty id \(an int or a str\), got ''",
        ),
        (("  ",), {}, ValueError, r"Idle server_id must be a non-empty id"),
        (
            (None,),
            {},
            ValueError,
            r"Idle server_id must be a non-empty id \(an int or a str\), got None",
        ),
    ],
)
def test_bad_arguments_fail_the_start_naming_the_argument(
    actor_system: ActorSystem,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    pattern: str,
) -> None:
    with pytest.raises(StartupError) as info:
        actor_system.spawn(ChildSpec("bad", Idle, args=args, kwargs=kwargs))
    assert info.value.child == "bad"
    assert isinstance(info.value.cause, error)
    assert re.search(pattern, str(info.value.cause))
    assert re.search(pattern, str(info.value))
    assert "bad" not in actor_system.names()


def test_a_server_actor_without_run_loop_is_a_clear_failure(
    actor_system: ActorSystem, probe: Probe
) -> None:
    actor_system.spawn(ChildSpec("bare", ServerActor, args=(1,), max_failures=1))
    gave_up = probe.expect(ChildGaveUp, name="bare")
    assert "ServerActor must override run_loop()" in gave_up.error
