"""The state-keeper: transitions, events, persistence, restarts and bounded memory.

Every test drives downloads through the public API (``system.downloads``,
``DownloadSource``, the events on ``system.events``) and controls the
impls with ``threading.Event``/``Condition`` and bounded waits; nothing
sleeps. The database checks read the SQLite file through a separate
SQLAlchemy engine, as another process would.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, event

from regisseur.actors.downloads import DownloadSettings, DownloadSource
from regisseur.actors.downloads import _protocol as p
from regisseur.actors.downloads.store import read_record
from regisseur.messages import ChildRestarting, DownloadRecord, DownloadState
from regisseur.messages.downloads import (
    CORE_FIELDS,
    CompleteDownload,
    DownloadProgressed,
    DownloadStateChanged,
    QueueDownload,
    initial_record,
)
from regisseur.supervision.testing import FaultInjector, InjectedFault, Probe
from tests.downloads.helpers import CANCELLED, ERRORED, INIT, RUNNING, SUCCEEDED, WAIT, Gate, quick

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine

    from regisseur.actors import ActorSystem
    from regisseur.supervision.testing import ManualClock


# -- helpers ---------------------------------------------------------------------


class Recorder:
    """Records download events through ``system.downloads.subscribe``."""

    def __init__(self, system: ActorSystem, *, progress: bool = False) -> None:
        self._cond = threading.Condition()
        self._events: list[Any] = []
        self.subscription = system.downloads.subscribe(self._record, progress=progress)

    def _record(self, event: Any) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def events(
        self, download_id: str | None = None, kind: type = DownloadStateChanged
    ) -> list[Any]:
        with self._cond:
            return [
                e
                for e in self._events
                if isinstance(e, kind) and (download_id is None or e.record.id == download_id)
            ]

    def changes(self, download_id: str) -> list[tuple[DownloadState | None, DownloadState]]:
        """``(previous, state)`` of every state change of the download, in order."""
        return [(e.previous, e.record.state) for e in self.events(download_id)]

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, WAIT), f"no {what} within {WAIT}s"

    def wait_state(self, download_id: str, state: DownloadState) -> DownloadRecord:
        self.wait_for(
            lambda: any(e.record.state is state for e in self._events_of(download_id)),
            f"{state.value} event for {download_id}",
        )
        return next(e.record for e in self.events(download_id) if e.record.state is state)

    def _events_of(self, download_id: str) -> list[Any]:
        return [
            e
            for e in self._events
            if isinstance(e, DownloadStateChanged) and e.record.id == download_id
        ]


class UpdateWatch:
    """Counts the UPDATE statements an engine runs while it is attached (a
    context manager), and waits for the first one."""

    def __init__(self, engine: Engine, when: str = "before_cursor_execute") -> None:
        self._engine, self._when = engine, when
        self._cond = threading.Condition()
        self.updates: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            with self._cond:
                self.updates.append(statement)
                self._cond.notify_all()

    def __enter__(self) -> UpdateWatch:
        event.listen(self._engine, self._when, self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine, self._when, self._count)

    def wait_first(self) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: bool(self.updates), WAIT), (
                "no write after the interval"
            )


def stored(engine: Engine, download_id: str) -> DownloadRecord | None:
    """The record as the database holds it, read through ``engine``."""
    with engine.connect() as connection:
        return read_record(connection, download_id)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'downloads.db'}"


@pytest.fixture
def reader(db_url: str) -> Iterator[Engine]:
    """A separate engine on the systems' SQLite file (another process's view)."""
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def keeper_details(system: ActorSystem) -> dict[str, Any]:
    """The ``details`` of the download keeper's health report."""

    def find(report: Any) -> Any:
        if report.name == "download-keeper":
            return report
        for child in report.children:
            found = find(child)
            if found is not None:
                return found
        return None

    report = find(system.health())
    assert report is not None, "no download-keeper in the health tree"
    assert isinstance(report.details, dict), report.details
    return report.details


# -- transitions and events ---------------------------------------------------------------


def test_a_successful_download_goes_initializing_in_progress_succeeded(system_factory):
    system = system_factory(download_sources=[DownloadSource("s", quick)])
    recorder = Recorder(system)

    download = system.downloads.submit("s", "target-1", "movie.mkv")
    final = system.downloads.wait(download, WAIT)
    system.settle()

    assert final.state is SUCCEEDED
    assert final.file_path == "/files/movie.mkv"
    assert final.progress == 100.0
    assert final.error is None
    assert (final.source, final.target_id, final.filename) == ("s", "target-1", "movie.mkv")
    assert recorder.changes(download) == [(None, INIT), (INIT, RUNNING), (RUNNING, SUCCEEDED)]
    assert system.downloads.status(download) == final


def test_a_path_object_result_is_stored_as_a_string(system_factory):
    system = system_factory(download_sources=[DownloadSource("s", lambda i, t, n: Path("/x") / n)])

    final = system.downloads.wait(system.downloads.submit("s", "t", "f.bin"), WAIT)

    assert final.state is SUCCEEDED
    assert final.file_path == str(Path("/x") / "f.bin")


def test_an_impl_exception_makes_the_download_errored_with_its_text(system_factory):
    def impl(download_id: str, target_id: str, name: str) -> str:
        raise ConnectionError("peer reset the connection")

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    recorder = Recorder(system)

    download = system.downloads.submit("s", "t", "f")
    final = system.downloads.wait(download, WAIT)
    system.settle()

    assert final.state is ERRORED
    assert "peer reset the connection" in (final.error or "")
    assert "ConnectionError" in (final.error or "")
    assert final.file_path is None
    assert recorder.changes(download) == [(None, INIT), (INIT, RUNNING), (RUNNING, ERRORED)]


def test_an_impl_returning_none_makes_the_download_errored(system_factory):
    system = system_factory(download_sources=[DownloadSource("s", lambda i, t, n: None)])

    final = system.downloads.wait(system.downloads.submit("s", "t", "f"), WAIT)

    assert final.state is ERRORED
    assert final.error
    assert final.file_path is None


@pytest.mark.parametrize("result", [42, b"/bytes/path", ["/a/list"]], ids=["int", "bytes", "list"])
def test_an_impl_returning_a_non_path_makes_the_download_errored(system_factory, result):
    system = system_factory(download_sources=[DownloadSource("s", lambda i, t, n: result)])

    final = system.downloads.wait(system.downloads.submit("s", "t", "f"), WAIT)

    assert final.state is ERRORED
    assert type(result).__name__ in (final.error or "")
    assert final.file_path is None


def test_cancel_of_a_queued_download_ends_it_at_once_and_it_never_runs(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=1)])
    recorder = Recorder(system)
    first = system.downloads.submit("s", "t", "first")
    gate.wait_started(1)

    queued = system.downloads.submit("s", "t", "queued")
    assert system.downloads.cancel(queued) is True
    assert system.downloads.status(queued).state is CANCELLED  # at once, no waiting

    gate.open()
    assert system.downloads.wait(first, WAIT).state is SUCCEEDED
    system.settle()
    assert gate.started == ["first"]
    assert system.downloads.status(queued).state is CANCELLED
    assert recorder.changes(queued) == [(None, INIT), (INIT, CANCELLED)]


@pytest.mark.timeout(30)
def test_a_cancelled_download_taken_before_its_queue_heard_of_the_cancel_never_runs(
    system_factory, manual_clock: ManualClock
):
    """A worker can take a download off the board before the queue actor has
    handled the keeper's ``Withdraw`` (the race behind the flaky test
    above): the keeper's answer to ``cancel`` came first, so the run must
    not start. The queue is held on the ``Withdraw`` to make the race sure.
    """
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=1)])
    recorder = Recorder(system)
    first = system.downloads.submit("s", "t", "first")
    gate.wait_started(1)
    queued = system.downloads.submit("s", "t", "queued")  # its Enqueue passes the hang
    faults = FaultInjector(system)
    faults.hang(p.queue_name("s"), 600.0, message_type=p.Withdraw)
    try:
        assert system.downloads.cancel(queued) is True
        gate.open()
        assert system.downloads.wait(first, WAIT).state is SUCCEEDED
        gate.wait_for(lambda: gate.running == 0, "the worker is idle")
        assert faults.pending(p.queue_name("s")) == 0  # the Withdraw is held
    finally:
        manual_clock.advance(600.0)
    system.settle()
    assert gate.started == ["first"]
    assert system.downloads.status(queued).state is CANCELLED
    assert recorder.changes(queued) == [(None, INIT), (INIT, CANCELLED)]


def test_cancel_of_a_running_download_ends_it_at_once_and_the_impl_sees_it(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    recorder = Recorder(system)
    download = system.downloads.submit("s", "t", "big.iso")
    gate.wait_started(1)

    assert system.downloads.cancel(download) is True
    record = system.downloads.status(download)
    assert record.state is CANCELLED  # before the impl has even noticed
    assert record.speed == 0.0

    gate.wait_for(lambda: gate.saw_cancel == ["big.iso"], "impl saw ctx.cancelled")
    system.settle()
    # The impl returned None after the cancel: that late "error" is ignored.
    assert system.downloads.status(download).state is CANCELLED
    assert recorder.changes(download) == [(None, INIT), (INIT, RUNNING), (RUNNING, CANCELLED)]
    assert system.downloads.cancel(download) is False  # already ended


@pytest.mark.parametrize("outcome", ["succeeds", "raises", "returns-none"])
def test_a_late_result_never_overwrites_cancelled(system_factory, reader, db_url, outcome):
    entered, finish = threading.Event(), threading.Event()

    def impl(download_id: str, target_id: str, name: str) -> str | None:
        # Deaf to cancellation: finishes only when the test says so.
        entered.set()
        assert finish.wait(WAIT)
        if outcome == "raises":
            raise RuntimeError("late failure")
        if outcome == "returns-none":
            return None
        return "/files/late"

    system = system_factory(download_sources=[DownloadSource("s", impl)], database_url=db_url)
    recorder = Recorder(system)
    download = system.downloads.submit("s", "t", "f")
    assert entered.wait(WAIT)

    assert system.downloads.cancel(download) is True
    finish.set()
    system.settle()

    record = system.downloads.status(download)
    assert record.state is CANCELLED
    assert record.file_path is None
    assert recorder.changes(download) == [(None, INIT), (INIT, RUNNING), (RUNNING, CANCELLED)]
    assert stored(reader, download).state is CANCELLED


def test_terminal_states_are_final(system_factory):
    def impl(download_id: str, target_id: str, name: str) -> str:
        if name == "bad":
            raise ValueError("nope")
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    recorder = Recorder(system)
    good = system.downloads.submit("s", "t", "good")
    bad = system.downloads.submit("s", "t", "bad")
    done = {d: system.downloads.wait(d, WAIT) for d in (good, bad)}
    system.settle()
    before = len(recorder.events())

    assert system.downloads.cancel(good) is False
    assert system.downloads.cancel(bad) is False
    system.settle()

    assert system.downloads.status(good) == done[good]
    assert system.downloads.status(bad) == done[bad]
    assert system.downloads.wait(good, WAIT) == done[good]  # returns at once once ended
    assert len(recorder.events()) == before


def test_every_change_is_an_immutable_event_in_order(system_factory):
    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        ctx.report(10, 20)
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl, concurrency=3)])
    recorder = Recorder(system, progress=True)
    ids = [system.downloads.submit("s", "t", f"f{i}", extra={"n": i}) for i in range(6)]
    for download in ids:
        system.downloads.wait(download, WAIT)
    system.settle()

    for download in ids:
        changes = recorder.changes(download)
        assert changes == [(None, INIT), (INIT, RUNNING), (RUNNING, SUCCEEDED)]
        # Each event's ``previous`` is the state of the event before it.
        events = recorder.events(download)
        for earlier, later in zip(events, events[1:], strict=False):
            assert later.previous is earlier.record.state
    progressed = recorder.events(ids[0], DownloadProgressed)
    assert progressed, "no DownloadProgressed event"
    assert progressed[0].record.transferred == 10
    assert progressed[0].record.progress == 50.0

    changed = recorder.events(ids[0])[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.record = changed.record  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.record.state = CANCELLED  # type: ignore[misc]
    with pytest.raises(TypeError):
        changed.record.extra["n"] = 99  # type: ignore[index]
    flat = changed.record.as_dict()
    flat["state"] = "tampered"
    assert changed.record.state is SUCCEEDED
    assert system.downloads.status(ids[0]).extra["n"] == 0


def test_evolve_copies_with_changes_and_leaves_the_record_alone():
    record = DownloadRecord(id="a" * 32, source="s", target_id="t", filename="f", extra={"k": 1})
    started = record.evolve(state=RUNNING, transferred=5)
    assert (started.state, started.transferred, started.filename) == (RUNNING, 5, "f")
    assert (record.state, record.transferred) == (INIT, 0)
    assert started == dataclasses.replace(record, state=RUNNING, transferred=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        started.state = CANCELLED  # type: ignore[misc]
    tagged = record.evolve(extra={"k": 2})  # a plain dict is frozen like at construction
    assert tagged.extra == {"k": 2} and record.extra == {"k": 1}
    with pytest.raises(TypeError):
        tagged.extra["k"] = 3  # type: ignore[index]
    with pytest.raises(TypeError, match="no field.*colour.*stat"):
        record.evolve(stat=RUNNING, colour="red")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Tagged(DownloadRecord):
        tag: str = "keep"

    tagged_record = Tagged(id="b" * 32, source="s", target_id="t", filename="f", tag="mine")
    moved = tagged_record.evolve(size=1)
    assert isinstance(moved, Tagged) and (moved.tag, moved.size) == ("mine", 1)


def test_initial_record_is_the_record_the_constructor_makes():
    """The keeper's fast constructor of a submit's record agrees with DownloadRecord(...)."""
    for extra in ({}, {"k": [1, 2]}):
        for original, username in ((None, None), ("Orig.mkv", "alice")):
            message = QueueDownload(
                id="c" * 32,
                source="s",
                target_id="http://h/f",
                filename="f",
                original_filename=original,
                extra=extra,
            )
            made = initial_record(message, username, 1700000000.5)
            assert type(made) is DownloadRecord
            assert made == DownloadRecord(
                id=message.id,
                source="s",
                target_id="http://h/f",
                filename="f",
                username=username,
                original_filename=original,
                extra=extra,
                created_at=1700000000.5,
                updated_at=1700000000.5,
            )
            assert made.state is INIT and made.extra == extra
            with pytest.raises(TypeError):
                made.extra["k"] = 3  # type: ignore[index]


def test_state_strings_are_the_legacy_ones():
    assert [s.value for s in DownloadState] == [
        "Initializing",
        "InProgress, Downloading",
        "Completed, Succeeded",
        "Errored",
        "Cancelled",
    ]
    assert [s.terminal for s in DownloadState] == [False, False, True, True, True]


def test_as_dict_is_the_legacy_flat_dict_with_extras_merged(system_factory):
    system = system_factory(download_sources=[DownloadSource("s", quick, username="alice")])
    extra = {"priority": 3, "tags": ["a", "b"], "state": "bogus", "id": "forged", "error": "x"}

    download = system.downloads.submit("s", "t", "show.mkv", "Show.S01E01.mkv", extra)
    flat = system.downloads.wait(download, WAIT).as_dict()

    assert flat["id"] == download
    assert flat["state"] == "Completed, Succeeded"
    assert isinstance(flat["state"], str)
    assert flat["error"] is None
    assert flat["filename"] == "show.mkv"
    assert flat["username"] == "alice"
    assert flat["file_path"] == "/files/show.mkv"
    assert flat["progress"] == 100.0
    assert flat["priority"] == 3
    assert flat["tags"] == ["a", "b"]
    assert set(CORE_FIELDS) <= set(flat)
    assert set(flat) == set(CORE_FIELDS) | {"priority", "tags"}


@pytest.mark.parametrize(
    ("impl", "legacy"),
    [
        (quick, "Completed, Succeeded"),
        (lambda i, t, n: None, "Errored"),
    ],
    ids=["succeeded", "errored"],
)
def test_as_dict_state_is_the_legacy_string(system_factory, impl, legacy):
    system = system_factory(download_sources=[DownloadSource("s", impl)])
    download = system.downloads.submit("s", "t", "f")
    assert system.downloads.wait(download, WAIT).as_dict()["state"] == legacy


# -- persistence ----------------------------------------------------------------------------


def test_each_transition_is_stored_before_it_is_published(system_factory, db_url, reader):
    seen: list[tuple[DownloadState, DownloadState | None]] = []
    seen_lock = threading.Lock()

    def check(evt: Any) -> None:
        # Runs on the event bus thread as the event is delivered.
        if isinstance(evt, DownloadStateChanged):
            record = stored(reader, evt.record.id)
            with seen_lock:
                seen.append((evt.record.state, record.state if record else None))

    def impl(download_id: str, target_id: str, name: str) -> str:
        if name.startswith("bad"):
            raise OSError("disk full")
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", impl, concurrency=2)], database_url=db_url
    )
    system.downloads.subscribe(check, progress=False)
    ids = [system.downloads.submit("s", "t", name) for name in ("ok1", "bad1", "ok2", "bad2")]
    finals = [system.downloads.wait(d, WAIT) for d in ids]
    system.settle()

    rank = {INIT: 0, RUNNING: 1, SUCCEEDED: 2, ERRORED: 2, CANCELLED: 2}
    with seen_lock:
        assert len(seen) == 12, seen
        for published, in_db in seen:
            # The bus is asynchronous: by the time the event is delivered the
            # database may hold a later state, never an earlier one.
            assert in_db is not None, seen
            assert rank[in_db] >= rank[published], seen
            if published.terminal:
                assert in_db is published, seen
    for final in finals:
        # Once the terminal event is seen, another engine reads exactly it.
        assert stored(reader, final.id) == final


def test_progress_writes_are_coalesced(system_factory, manual_clock: ManualClock):
    chunks = 1000
    handled = threading.Condition()
    progressed = [0]

    def on_progress(evt: Any) -> None:
        if isinstance(evt, DownloadProgressed):
            with handled:
                progressed[0] += 1
                handled.notify_all()

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        for chunk in range(1, chunks + 1):
            manual_clock.advance(0.2)  # so the context forwards every report
            ctx.report(chunk * 100, chunks * 100)
            with handled:  # the keeper has handled it before time moves on
                assert handled.wait_for(lambda c=chunk: progressed[0] >= c, WAIT)
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", impl)],
        downloads=DownloadSettings(flush_interval=10.0),
    )
    system.downloads.subscribe(on_progress)
    updates: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    engine = system.database.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        download = system.downloads.submit("s", "t", "f")
        final = system.downloads.wait(download, WAIT)
        system.settle()
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert final.state is SUCCEEDED
    assert final.transferred == chunks * 100
    assert progressed[0] == chunks  # every report reached the keeper
    # 200 virtual seconds at one progress write per 10 s, plus the state changes.
    assert 15 <= len(updates) <= 30, len(updates)


def test_progress_reaches_the_database_only_after_the_flush_interval(
    system_factory, manual_clock: ManualClock, db_url, reader
):
    release = threading.Event()
    recorder: Recorder

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        # Report only once InProgress is stored (its event is published after
        # the commit): a report racing that commit may ride along with it.
        recorder.wait_state(download_id, RUNNING)
        ctx.report(500, 1000)
        assert release.wait(WAIT)
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", impl)],
        database_url=db_url,
        downloads=DownloadSettings(flush_interval=10.0),
    )
    recorder = Recorder(system, progress=True)
    try:
        download = system.downloads.submit("s", "t", "f")
        recorder.wait_for(
            lambda: bool(recorder.events(download, DownloadProgressed)), "DownloadProgressed"
        )
        # The keeper has handled the report (it published it) and has nothing
        # else to do; only its flush timer can make it write now.
        with UpdateWatch(system.database.engine) as watch:
            before = stored(reader, download)
            assert before.state is RUNNING
            assert before.transferred == 0

            # jump, not advance: the worker is held in its download on purpose.
            manual_clock.jump(9.5)  # fires nothing: the flush is due at 10
            assert watch.updates == []
            assert stored(reader, download).transferred == 0

            manual_clock.jump(0.5)  # the flush timer puts Flush in the keeper's mailbox
            watch.wait_first()
        # status() is answered after the flush has committed.
        assert system.downloads.status(download).transferred == 500
        after = stored(reader, download)
        assert (after.transferred, after.size, after.progress) == (500, 1000, 50.0)
    finally:
        release.set()
    assert system.downloads.wait(download, WAIT).state is SUCCEEDED


def test_other_downloads_commits_do_not_write_coalesced_progress(
    system_factory, manual_clock: ManualClock, db_url, reader
):
    """Progress waits for the flush interval even while other records are committed."""
    release = threading.Event()
    recorder: Recorder

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        if name == "slow":
            recorder.wait_state(download_id, RUNNING)
            ctx.report(500, 1000)
            assert release.wait(WAIT)
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", impl, concurrency=2)],
        database_url=db_url,
        downloads=DownloadSettings(flush_interval=10.0),
    )
    recorder = Recorder(system, progress=True)
    try:
        slow = system.downloads.submit("s", "t", "slow")
        recorder.wait_for(
            lambda: bool(recorder.events(slow, DownloadProgressed)), "DownloadProgressed"
        )
        # Three commits of another download's states, none of them the flush.
        quick_one = system.downloads.submit("s", "t", "quick")
        assert system.downloads.wait(quick_one, WAIT).state is SUCCEEDED
        assert stored(reader, quick_one).state is SUCCEEDED
        assert stored(reader, slow).transferred == 0
        with UpdateWatch(system.database.engine, "after_cursor_execute") as watch:
            manual_clock.jump(10.0)  # the flush timer puts Flush in the keeper's mailbox
            watch.wait_first()
        assert system.downloads.status(slow).transferred == 500  # answered after the commit
        assert stored(reader, slow).transferred == 500
    finally:
        release.set()
    assert system.downloads.wait(slow, WAIT).state is SUCCEEDED


def test_records_survive_a_restart(system_factory, db_url):
    def impl(download_id: str, target_id: str, name: str) -> str:
        if name == "bad":
            raise ValueError("broken archive")
        return f"/files/{name}"

    first = system_factory(
        download_sources=[DownloadSource("s", impl, username="bob")], database_url=db_url
    )
    good = first.downloads.submit("s", "t1", "good", "Good.Original", {"k": [1, 2]})
    bad = first.downloads.submit("s", "t2", "bad")
    before = {d: first.downloads.wait(d, WAIT) for d in (good, bad)}
    first.stop()

    second = system_factory(database_url=db_url)  # no sources at all

    assert second.downloads.status(good) == before[good]
    assert second.downloads.status(bad) == before[bad]
    assert second.downloads.status(good).extra == {"k": [1, 2]}
    assert [r.id for r in second.downloads.list()] == [good, bad]
    assert second.downloads.status(good).as_dict() == before[good].as_dict()


def _interrupt(system_factory, db_url: str, reader: Engine) -> tuple[str, str]:
    """Start a system whose source holds one download and queues another, stop it.

    Returns (the running one, the queued one); the database holds them
    InProgress and Initializing.
    """
    gate = Gate()
    first = system_factory(
        download_sources=[DownloadSource("s", gate, concurrency=1)], database_url=db_url
    )
    running = first.downloads.submit("s", "t1", "running")
    gate.wait_started(1)
    queued = first.downloads.submit("s", "t2", "queued")
    assert first.downloads.status(queued).state is INIT
    began = time.monotonic()
    first.stop()
    assert time.monotonic() - began < 3.0, "stop did not end the download promptly"
    assert first.threads() == []
    assert gate.saw_cancel == ["running"]
    assert stored(reader, running).state is RUNNING
    assert stored(reader, queued).state is INIT
    return running, queued


def test_unfinished_downloads_resume_when_their_source_is_given_again(
    system_factory, db_url, reader
):
    running, queued = _interrupt(system_factory, db_url, reader)
    order: list[str] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        order.append(name)
        return f"/files/{name}"

    second = system_factory(
        download_sources=[DownloadSource("s", impl, concurrency=1)], database_url=db_url
    )

    assert second.downloads.wait(running, WAIT).state is SUCCEEDED
    assert second.downloads.wait(queued, WAIT).state is SUCCEEDED
    assert order == ["running", "queued"]
    assert stored(reader, running).file_path == "/files/running"


def test_unfinished_downloads_are_errored_interrupted_without_their_source(
    system_factory, db_url, reader
):
    running, queued = _interrupt(system_factory, db_url, reader)

    second = system_factory(download_sources=[DownloadSource("other", quick)], database_url=db_url)

    for download in (running, queued):
        record = second.downloads.status(download)
        assert record.state is ERRORED
        assert "interrupted" in (record.error or "")
        assert stored(reader, download).state is ERRORED
    assert {r.id for r in second.downloads.list(states=[ERRORED])} == {running, queued}


# -- bounded memory -----------------------------------------------------------------------


def test_history_bounds_memory_but_old_records_stay_readable(system_factory, db_url):
    system = system_factory(
        download_sources=[DownloadSource("s", quick)],
        database_url=db_url,
        downloads=DownloadSettings(history=5),
    )
    ids = []
    for i in range(20):
        ids.append(system.downloads.submit("s", "t", f"f{i}"))
        assert system.downloads.wait(ids[-1], WAIT).state is SUCCEEDED
    system.settle()

    details = keeper_details(system)
    assert details["in_memory"] <= 5, details

    oldest = system.downloads.status(ids[0])
    assert oldest is not None
    assert oldest.state is SUCCEEDED
    assert oldest.file_path == "/files/f0"
    listed = system.downloads.list()
    assert [r.id for r in listed] == ids
    assert all(r.state is SUCCEEDED for r in listed)
    assert keeper_details(system)["in_memory"] <= 5  # reading them back keeps none


def test_without_a_database_old_records_are_forgotten(system_factory):
    system = system_factory(
        download_sources=[DownloadSource("s", quick)],
        database_url=None,
        downloads=DownloadSettings(history=2),
    )
    ids = []
    for i in range(5):
        ids.append(system.downloads.submit("s", "t", f"f{i}"))
        system.downloads.wait(ids[-1], WAIT)
    system.settle()

    assert keeper_details(system)["in_memory"] <= 2
    assert system.downloads.status(ids[0]) is None
    assert system.downloads.status(ids[-1]).state is SUCCEEDED


def test_history_holds_after_a_burst_of_completions(system_factory, manual_clock, db_url):
    go = threading.Event()
    calls = threading.Semaphore(0)

    def impl(download_id: str, target_id: str, name: str) -> str:
        assert go.wait(WAIT)
        calls.release()
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", impl)],
        database_url=db_url,
        downloads=DownloadSettings(history=5),
    )
    ids = [system.downloads.submit("s", "t", f"f{i}") for i in range(20)]
    assert system.downloads.status(ids[-1]).state is INIT  # all queued and stored
    # The keeper stalls on the first result (a slow disk, say): the other
    # results pile up in its mailbox and are handled in one group commit.
    FaultInjector(system).hang("download-keeper", 10.0, message_type=CompleteDownload)
    go.set()
    for _ in ids:
        assert calls.acquire(timeout=WAIT)
    # Answered after the worker's last Run handler, which told the keeper its result.
    system.ref("source:s.worker-1").proxy().health().get(timeout=WAIT)
    # The keeper may not have reached the hang yet (its timer starts when it
    # does): advance until everything settles, a bounded number of times.
    for _ in range(50):
        manual_clock.advance(10.0)
        try:
            system.settle(timeout=0.2)
            break
        except TimeoutError:
            continue
    system.settle()

    assert [system.downloads.status(d).state for d in ids] == [SUCCEEDED] * 20
    assert keeper_details(system)["in_memory"] <= 5


def test_history_zero_still_stores_terminal_states(system_factory, db_url, reader):
    system = system_factory(
        download_sources=[DownloadSource("s", quick)],
        database_url=db_url,
        downloads=DownloadSettings(history=0),
    )
    download = system.downloads.submit("s", "t", "f")
    final = system.downloads.wait(download, WAIT)
    system.settle()

    assert final.state is SUCCEEDED
    assert stored(reader, download).state is SUCCEEDED
    assert system.downloads.status(download).state is SUCCEEDED
    assert keeper_details(system)["in_memory"] == 0


# -- a crashed keeper -----------------------------------------------------------------------


def test_a_crashed_keeper_reloads_its_records_and_carries_on(system_factory, manual_clock, db_url):
    system = system_factory(download_sources=[DownloadSource("s", quick)], database_url=db_url)
    before = system.downloads.submit("s", "t", "before")
    done = system.downloads.wait(before, WAIT)
    system.settle()
    probe = Probe(system, ChildRestarting)

    FaultInjector(system).crash("download-keeper")
    with pytest.raises(InjectedFault):
        system.downloads.status(before)  # the ask that hits the crash
    probe.expect(ChildRestarting, timeout=WAIT, name="download-keeper")
    probe.close()
    manual_clock.advance(60)  # past the restart backoff

    assert system.downloads.status(before) == done
    after = system.downloads.submit("s", "t", "after")
    assert system.downloads.wait(after, WAIT).state is SUCCEEDED
    assert [r.id for r in system.downloads.list()] == [before, after]


def test_a_crashed_keeper_keeps_the_sources_registered_at_runtime(
    system_factory, manual_clock, db_url
):
    system = system_factory(database_url=db_url)
    system.downloads.register(DownloadSource("r", quick))
    system.settle()
    probe = Probe(system, ChildRestarting)

    FaultInjector(system).crash("download-keeper")
    with pytest.raises(InjectedFault):
        system.downloads.sources()
    probe.expect(ChildRestarting, timeout=WAIT, name="download-keeper")
    probe.close()
    manual_clock.advance(60)
    system.settle(timeout=2.0)

    assert keeper_details(system)["sources"] == ["r"]
    late = system.downloads.submit("r", "t", "late")
    assert system.downloads.wait(late, 2.0).state is SUCCEEDED


# -- a failing database ---------------------------------------------------------------------


def _refuse_writes(engine: Engine) -> None:
    """Make every write of a download record fail inside SQLite (a full disk, say)."""
    with engine.begin() as connection:
        for verb in ("INSERT", "UPDATE"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_{verb.lower()} BEFORE {verb} ON regisseur_downloads "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END"
            )


def _accept_writes(engine: Engine) -> None:
    with engine.begin() as connection:
        for verb in ("insert", "update"):
            connection.exec_driver_sql(f"DROP TRIGGER refuse_{verb}")


def _ended_unstored(system_factory, db_url, reader) -> tuple[ActorSystem, Recorder, str]:
    """A system whose one download ended while the database refused every
    write (retried every 2 s of the manual clock): its end in memory only."""
    gate = Gate()
    system = system_factory(
        download_sources=[DownloadSource("s", gate)],
        database_url=db_url,
        downloads=DownloadSettings(flush_interval=2.0),
    )
    recorder = Recorder(system)
    download = system.downloads.submit("s", "t", "one")
    gate.wait_started(1)
    recorder.wait_state(download, RUNNING)
    _refuse_writes(reader)
    gate.open()
    system.settle()
    return system, recorder, download


def test_a_failed_write_is_kept_unacknowledged_and_retried_until_it_is_stored(
    system_factory, manual_clock: ManualClock, db_url, reader
):
    system, recorder, download = _ended_unstored(system_factory, db_url, reader)
    # Not stored, so not announced: no Succeeded event yet, the keeper unhealthy.
    assert [state for _previous, state in recorder.changes(download)] == [INIT, RUNNING]
    details = keeper_details(system)
    assert details["unsaved_writes"] == 1 and details["healthy"] is False
    # The database's own words, without the wrapper's (a caller shows them).
    assert details["write_error"] == "IntegrityError: database or disk is full (simulated)"
    assert details["write_error_passes"] is False  # nothing ends it but a person
    assert stored(reader, download).state is RUNNING
    assert system.downloads.status(download).state is SUCCEEDED  # memory knows

    manual_clock.advance(2.0)  # a retry, still refused
    assert keeper_details(system)["unsaved_writes"] == 1

    _accept_writes(reader)
    manual_clock.advance(2.0)  # the next retry stores it, then announces it
    final = recorder.wait_state(download, SUCCEEDED)
    assert stored(reader, download) == final
    details = keeper_details(system)
    assert details["unsaved_writes"] == 0 and details["healthy"] is True
    assert details["write_error"] is None and details["write_error_passes"] is None


def test_a_keeper_busy_in_a_retry_reports_the_same_write_details(
    system_factory, manual_clock: ManualClock, db_url, reader
):
    """While a retry is under way (SQLite's busy timeout can hold it for
    seconds), ``health()`` is answered from a snapshot without asking the
    busy keeper: the same fields, all of one failed commit (before, only
    some of them: ``unsaved_writes`` was missing)."""
    system, recorder, download = _ended_unstored(system_factory, db_url, reader)
    idle = keeper_details(system)  # asked through the mailbox
    assert idle["unsaved_writes"] == 1

    injector = FaultInjector(system)
    injector.hang("download-keeper", 30.0, message_type=p.Flush)
    manual_clock.jump(2.0)  # the retry's Flush arrives, and hangs
    system.settle()  # ... in a wait on the system clock
    cell = system.registry.lookup("download-keeper")
    assert cell is not None and not cell.idle()
    busy = keeper_details(system)
    write_fields = ("unsaved_writes", "write_error", "write_error_passes")
    assert busy["healthy"] is False
    assert {k: busy[k] for k in write_fields} == {k: idle[k] for k in write_fields}

    _accept_writes(reader)
    manual_clock.advance(30.0)  # the hang ends, the retry stores it
    recorder.wait_state(download, SUCCEEDED)
    details = keeper_details(system)
    assert details["unsaved_writes"] == 0 and details["healthy"] is True
    injector.close()


def test_progress_keeps_flowing_while_a_write_waits_for_its_retry(
    system_factory, manual_clock: ManualClock, db_url, reader
):
    """Progress is not state: a database refusing writes holds back the state
    events of what it could not store, never the progress of a running
    download (which the flush timer writes, and which must not pile up)."""
    go, release = threading.Event(), threading.Event()

    def reporting(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        if name == "busy":
            assert go.wait(WAIT)
            ctx.report(10, 100)  # the first report and the complete one always go out
            ctx.report(100, 100)
            assert release.wait(WAIT)
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("s", reporting, concurrency=2)],
        database_url=db_url,
        downloads=DownloadSettings(flush_interval=60.0),
    )
    recorder = Recorder(system, progress=True)
    busy = system.downloads.submit("s", "t", "busy")
    recorder.wait_state(busy, RUNNING)
    _refuse_writes(reader)
    later = system.downloads.submit("s", "t", "later")  # its insert is refused: unsaved
    system.downloads.status(later)  # answered after the keeper tried to store it
    assert keeper_details(system)["unsaved_writes"] >= 1
    go.set()
    recorder.wait_for(
        lambda: any(e.record.transferred == 100 for e in recorder.events(busy, DownloadProgressed)),
        "progress of the running download during the outage",
    )
    assert len(recorder.events(busy, DownloadProgressed)) <= 2  # the latest per batch
    _accept_writes(reader)
    release.set()
    manual_clock.advance(60.0)  # the retry stores what waited, then announces it
    recorder.wait_state(later, SUCCEEDED)
    recorder.wait_state(busy, SUCCEEDED)


def test_a_keeper_restarted_while_writes_are_refused_starts_and_answers(
    system_factory, manual_clock: ManualClock, db_url, reader
):
    """Warming the statements at start is best effort: a database that refuses
    writes (full, read-only) must not keep the keeper from starting, nor leak
    its connection."""
    system = system_factory(download_sources=[DownloadSource("s", quick)], database_url=db_url)
    before = system.downloads.submit("s", "t", "before")
    done = system.downloads.wait(before, WAIT)
    system.settle()
    _refuse_writes(reader)
    probe = Probe(system, ChildRestarting)
    FaultInjector(system).crash("download-keeper")
    with pytest.raises(InjectedFault):
        system.downloads.status(before)
    probe.expect(ChildRestarting, timeout=WAIT, name="download-keeper")
    probe.close()
    manual_clock.advance(60)  # past any restart backoff
    assert system.downloads.status(before) == done
    details = keeper_details(system)
    assert details["unsaved_writes"] == 0 and details["healthy"] is True
    assert system.database is not None
    assert system.database.engine.pool.checkedout() <= 1  # only the keeper's own connection
    _accept_writes(reader)


# -- the record contract: who, when, how big ------------------------------------------


def test_username_defaults_to_the_source_name(system_factory):
    system = system_factory(
        download_sources=[DownloadSource("books", quick), DownloadSource("s", quick, username="al")]
    )
    plain = system.downloads.wait(system.downloads.submit("books", "t", "a"), WAIT)
    named = system.downloads.wait(system.downloads.submit("s", "t", "b"), WAIT)
    assert plain.username == "books"
    assert plain.as_dict()["username"] == "books"
    assert named.username == "al"


def test_times_are_wall_clock_from_the_system_clock(system_factory, db_url, reader):
    from regisseur.supervision.testing import ManualClock

    clock = ManualClock(wall_start=1_700_000_000.0)
    gate = Gate()
    system = system_factory(
        download_sources=[DownloadSource("s", gate)], database_url=db_url, clock=clock
    )
    download = system.downloads.submit("s", "t", "a")
    gate.wait_started(1)
    clock.jump(30.0)  # a worker is held busy: move time without settling
    assert system.downloads.cancel(download)
    record = system.downloads.status(download)
    assert record is not None
    assert (record.created_at, record.updated_at) == (1_700_000_000.0, 1_700_000_030.0)
    with reader.connect() as connection:
        stored = read_record(connection, download)
    assert stored is not None
    assert (stored.created_at, stored.updated_at) == (1_700_000_000.0, 1_700_000_030.0)


def test_a_real_clock_stamps_records_with_the_time_of_day():
    from regisseur.actors import ActorSystem

    before = time.time()
    with ActorSystem(database_url=None, download_sources=[DownloadSource("s", quick)]) as system:
        record = system.downloads.wait(system.downloads.submit("s", "t", "a"), WAIT)
    assert before <= record.created_at <= record.updated_at <= time.time()


def test_size_is_what_arrived_when_the_body_had_no_length(system_factory):
    def unsized(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        ctx.report(4096)  # a chunked body: no size, ever
        ctx.report(10_000)
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", unsized)])
    record = system.downloads.wait(system.downloads.submit("s", "t", "a"), WAIT)
    assert record.state is SUCCEEDED
    assert (record.size, record.transferred, record.progress) == (10_000, 10_000, 100.0)
