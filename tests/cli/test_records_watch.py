"""RecordsWatch: a refusal of the records ends a run only when it lasts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest

from regisseur.cli._records_watch import RecordsWatch
from regisseur.messages.health import HealthReport

if TYPE_CHECKING:
    from regisseur.actors.system import ActorSystem


class _System:
    """Just ``health()``: the keeper's report with the given ``write_error``."""

    def __init__(self) -> None:
        self.write_error: str | None = None
        self.passes = False  # the keeper's write_error_passes
        self.busy = False  # the keeper does not answer in time (in a busy wait)
        self.asked = 0

    def health(self) -> HealthReport:
        self.asked += 1
        keeper = HealthReport(
            name="download-keeper",
            status="running",
            healthy=self.write_error is None and not self.busy,
            details="unresponsive"
            if self.busy
            else {
                "unsaved_writes": int(self.write_error is not None),
                "write_error": self.write_error,
                "write_error_passes": self.passes if self.write_error is not None else None,
            },
        )
        return HealthReport(name="root", status="running", healthy=True, children=(keeper,))


def _watch(system: _System, now: list[float], notices: list[str] | None = None) -> RecordsWatch:
    return RecordsWatch(
        cast("Any", system),
        "/d/records.db",
        grace=5.0,
        every=1.0,
        clock=lambda: now[0],
        notice=None if notices is None else notices.append,
    )


def test_a_refusal_that_lasts_the_grace_is_named_with_the_database_s_words() -> None:
    system, now = _System(), [0.0]
    watch = _watch(system, now)
    system.write_error = "OperationalError: database or disk is full"
    seen = []
    for second in range(1, 8):
        now[0] = float(second)
        seen.append(watch.problem())
    # first seen at 1 s, still refused 5 s later
    assert seen[:5] == [None] * 5
    assert seen[5] == "cannot write to the records database /d/records.db: database or disk is full"


def test_a_refusal_that_ends_within_the_grace_starts_the_count_again() -> None:
    system, now = _System(), [0.0]
    watch = _watch(system, now)
    system.write_error = "OperationalError: database is locked"
    for second in range(1, 5):
        now[0] = float(second)
        assert watch.problem() is None
    system.write_error = None  # a retry stored it
    now[0] = 5.0
    assert watch.problem() is None
    system.write_error = "OperationalError: database is locked"
    for second in range(6, 11):
        now[0] = float(second)
        assert watch.problem() is None, second


def test_the_keeper_is_asked_at_most_once_per_interval() -> None:
    system, now = _System(), [0.0]
    watch = _watch(system, now)
    for tenth in range(1, 31):  # three seconds of waits a tenth of a second apart
        now[0] = tenth / 10
        watch.problem()
    assert system.asked == 3


def test_only_the_first_line_of_a_server_s_reason_is_shown() -> None:
    system, now = _System(), [0.0]
    watch = _watch(system, now)
    system.write_error = (
        "OperationalError: could not extend file: No space left on device\n"
        "\tHINT: Check free disk space."
    )
    found = None
    for second in range(1, 8):
        now[0] = float(second)
        found = watch.problem() or found
    assert found == (
        "cannot write to the records database /d/records.db: "
        "could not extend file: No space left on device"
    )


def test_a_refusal_that_passes_by_itself_is_waited_out_and_said_once() -> None:
    """A database server restarting (or another run's lock) ends without a
    person: the run waits as long as it lasts, and says so once it has
    lasted the grace, with the reason's first line."""
    system, now, notices = _System(), [0.0], []
    watch = _watch(system, now, notices)
    system.write_error = (
        "OperationalError: connection to server failed: Connection refused\n"
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    system.passes = True
    for second in range(1, 120):
        now[0] = float(second)
        assert watch.problem() is None, second
    assert notices == [
        "waiting for the records database /d/records.db: connection to server failed: "
        "Connection refused (Ctrl-C stops the run; its partial files are kept)"
    ]
    system.write_error = None  # the server is back: a retry stored the records
    now[0] = 120.0
    assert watch.problem() is None
    system.write_error = "OperationalError: server closed the connection unexpectedly"
    for second in range(121, 128):
        now[0] = float(second)
        assert watch.problem() is None
    assert len(notices) == 2, "a new refusal is said again"
    assert "server closed the connection unexpectedly" in notices[1]


def _locked_for_minutes(system: _System, now: list[float], watch: RecordsWatch) -> list[str | None]:
    """What a lock held for minutes looks like: each retry waits SQLite's busy
    timeout (10 s); the keeper's health is seen once, between two retries
    (the health checks of a busy keeper take a second each, and miss most
    of the second the keeper waits between retries)."""
    seen = []
    for second in range(1, 60):
        now[0] = float(second)
        system.busy = second != 11  # answered between two retries, seen once
        seen.append(watch.problem())
    return seen


def test_a_lock_that_keeps_the_keeper_busy_is_said_once_not_forgotten() -> None:
    """Before: each unanswered health check started the count again, so
    another program's lock held for minutes was never said: the run sat
    silent (found with a real lock held 25 s on a run's records)."""
    system, now, notices = _System(), [0.0], []
    watch = _watch(system, now, notices)
    system.write_error = "OperationalError: database is locked"
    system.passes = True
    assert _locked_for_minutes(system, now, watch) == [None] * 59
    assert notices == [
        "waiting for the records database /d/records.db: database is locked "
        "(Ctrl-C stops the run; its partial files are kept)"
    ]


def test_a_lasting_refusal_seen_between_busy_checks_still_ends_the_run() -> None:
    system, now = _System(), [0.0]
    watch = _watch(system, now)
    system.write_error = "OperationalError: database or disk is full"
    seen = _locked_for_minutes(system, now, watch)
    assert (
        seen[21] == "cannot write to the records database /d/records.db: database or disk is full"
    )


def test_a_keeper_whose_restart_the_database_refuses_ends_the_run() -> None:
    """A records file regisseur's checks refuse (its -wal swapped for a link)
    cannot be loaded by a restarted keeper: it reports no details while the
    supervisor tries again, only its last error. Before, that was no
    refusal at all, and the run waited for downloads no keeper could end."""
    refused = (
        "DatabaseError: refusing to open the database '/d/records.db': "
        "'/d/records.db-wal' is a symbolic link (SQLite would follow it out of the "
        "directory); remove it"
    )
    now = [0.0]
    reports = {"status": "restarting", "last_error": refused}

    class _Restarting:
        def health(self) -> HealthReport:
            keeper = HealthReport(name="download-keeper", healthy=False, **reports)
            return HealthReport(name="root", status="running", healthy=False, children=(keeper,))

    watch = RecordsWatch(cast("Any", _Restarting()), "/d/records.db", clock=lambda: now[0])
    seen = []
    for second in range(1, 8):
        now[0] = float(second)
        seen.append(watch.problem())
    assert seen[:5] == [None] * 5
    assert seen[5] == (
        "cannot write to the records database /d/records.db: refusing to open the database "
        "'/d/records.db': '/d/records.db-wal' is a symbolic link (SQLite would follow it "
        "out of the directory); remove it"
    )
    # Restarting for another reason (a bug of its own) is no refusal of the records.
    reports["last_error"] = "InjectedFault: injected crash in 'download-keeper'"
    watch = RecordsWatch(cast("Any", _Restarting()), "/d/records.db", clock=lambda: now[0])
    for second in range(8, 20):
        now[0] = float(second)
        assert watch.problem() is None


def test_writes_stored_again_are_seen_only_by_a_look_after_the_moment() -> None:
    """The run's asks pause while the keeper is busy in a locked write; the
    pause ends once a look after it began finds the keeper answering with
    nothing refused (before, the run sat out the whole pause)."""
    system, now = _System(), [0.0]
    watch = _watch(system, now)
    now[0] = 1.0
    assert watch.problem() is None  # answered, nothing refused
    assert watch.stored_since(1.0) and not watch.stored_since(1.5)
    system.busy = True
    now[0] = 2.0
    watch.problem()
    assert not watch.stored_since(1.5), "a keeper that does not answer has stored nothing"
    system.busy, system.write_error, system.passes = False, "OperationalError: locked", True
    now[0] = 3.0
    watch.problem()
    assert not watch.stored_since(1.5), "a refusal is not stored writes"
    system.write_error = None
    now[0] = 4.0
    watch.problem()
    assert watch.stored_since(1.5)


def test_an_ask_that_timed_out_is_asked_again_once_writes_are_stored() -> None:
    from regisseur.actors.errors import WaitTimeoutError
    from regisseur.cli.download import _patiently

    system, now = _System(), [0.0]
    watch = _watch(system, now)
    answers: list[object] = [WaitTimeoutError("no reply from 'download-keeper' within 10s"), 7]
    slept: list[float] = []

    def ask() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            now[0] = 5.0  # the keeper's commit got through meanwhile
            raise answer
        return answer

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    assert _patiently(ask, watch, clock=lambda: now[0], sleep=sleep) == 7
    assert slept == [], "asked again at the first look that found the writes stored"


def test_the_plans_list_is_allowed_twice_the_time_at_each_ask() -> None:
    """Before: each ask of the plan's list of every record had 10 s, the
    keeper still working through the asks before it: with 100,000 records
    and the workers running, a list that needs 30 s never came in 10 s while
    the downloads lasted (132 s before the plan went on, measured)."""
    from regisseur.actors.errors import WaitTimeoutError
    from regisseur.cli.download import _longer_each_time

    timeouts: list[float | None] = []

    class _Downloads:
        def list(self, source: str | None = None, *, timeout: float | None = None) -> list[str]:
            timeouts.append(timeout)
            if len(timeouts) < 9:
                raise WaitTimeoutError(f"no reply within {timeout}s")
            return ["records"]

    class _System:
        downloads = _Downloads()

    ask = _longer_each_time(_System())  # type: ignore[arg-type]
    for _ in range(8):
        with pytest.raises(WaitTimeoutError):
            ask()
    assert ask() == ["records"]
    assert timeouts == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 640.0, 640.0]


def test_list_takes_a_timeout(actor_system: ActorSystem) -> None:
    assert actor_system.downloads.list(timeout=None) == []
    with pytest.raises(ValueError, match="list"):
        actor_system.downloads.list(timeout=-1)
