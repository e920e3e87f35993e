"""Reads that must not depend on how many downloads are queued, and forgotten downloads.

``list()`` and ``status()`` answer from the keeper's memory and an indexed
query: they never rewrite the live records (the old ``list`` wrote every
queued record first, seconds with 100,000 queued). Without a database a
download trimmed from the history is still known: ``wait`` says how it
ended. Nothing here is timed; the speed is in ``bench/bench_list.py``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, event

from regisseur.actors.downloads import (
    DownloadForgottenError,
    DownloadSettings,
    DownloadSource,
    UnknownDownloadError,
    store,
)
from regisseur.messages.downloads import DownloadRecord
from tests.downloads.helpers import ERRORED, INIT, RUNNING, SUCCEEDED, WAIT, fails, quick

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem

QUEUED = 20_000


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'downloads.db'}"


@pytest.mark.timeout(180)
def test_list_and_status_answer_from_memory_while_many_are_queued(system_factory, db_url):
    started = threading.Event()
    release = threading.Event()

    def held(download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        ctx.report(40, 100)  # coalesced: not written before the flush interval
        started.set()
        while not release.wait(0.05):
            if ctx.cancelled:
                return None
        return f"/files/{name}"

    system = system_factory(
        download_sources=[
            DownloadSource("busy", held),
            DownloadSource("fast", quick),
            DownloadSource("broken", fails),
        ],
        database_url=db_url,
        downloads=DownloadSettings(flush_interval=3600.0, history=1),
    )
    downloads = system.downloads
    done = [downloads.submit("fast", "t", f"done{i}") for i in range(2)]
    for download in done:
        assert downloads.wait(download, WAIT).state is SUCCEEDED
    failed = downloads.submit("broken", "t", "bad")
    assert downloads.wait(failed, WAIT).state is ERRORED
    running = downloads.submit("busy", "t", "running")
    assert started.wait(WAIT)
    queued = [downloads.submit("busy", "t", f"q{i}") for i in range(QUEUED)]
    for _ in range(60):  # the submits before it are handled first
        try:
            assert downloads.status(queued[-1]).state is INIT
            break
        except TimeoutError:
            continue

    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")):
            writes.append(statement)

    engine = system.database.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert [r.id for r in downloads.list(states=[SUCCEEDED])] == done
        assert [r.id for r in downloads.list("fast")] == done
        assert [r.id for r in downloads.list(states=[ERRORED, SUCCEEDED])] == [*done, failed]
        (now_running,) = downloads.list(states=[RUNNING])
        assert now_running.id == running
        assert now_running.transferred == 40
        assert downloads.status(running).progress == 40.0
        assert downloads.status(queued[QUEUED // 2]).state is INIT
        assert downloads.status(done[0]).file_path == "/files/done0"  # read back (history=1)
        listed = downloads.list("busy", states=[INIT])
        assert [r.id for r in listed] == queued  # submit order
        # Nothing changed meanwhile, so the reads wrote nothing (the old
        # list rewrote every queued record first).
        assert writes == []
    finally:
        event.remove(engine, "before_cursor_execute", count)
        release.set()


@pytest.mark.timeout(60)
def test_list_after_a_cancel_shows_the_new_state_only(system_factory, db_url):
    release = threading.Event()

    def held(download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        while not release.wait(0.05):
            if ctx.cancelled:
                return None
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("busy", held)],
        database_url=db_url,
    )
    downloads = system.downloads
    first = downloads.submit("busy", "t", "first")
    second = downloads.submit("busy", "t", "second")
    try:
        assert downloads.cancel(second) is True
        assert [r.id for r in downloads.list(states=[INIT, RUNNING])] == [first]
        assert [r.id for r in downloads.list(states=["Cancelled"])] == [second]
    finally:
        release.set()


def forgetful(system_factory: Any, history: int) -> ActorSystem:
    """No database, ``history`` ended records kept: a quick source ``s`` and a failing ``bad``."""
    system: ActorSystem = system_factory(
        download_sources=[DownloadSource("s", quick), DownloadSource("bad", fails)],
        database_url=None,
        downloads=DownloadSettings(history=history),
    )
    return system


@pytest.mark.timeout(60)
def test_without_a_database_a_forgotten_download_is_not_unknown(system_factory):
    system = forgetful(system_factory, history=2)
    downloads = system.downloads
    first = downloads.submit("s", "t", "first")
    assert downloads.wait(first, WAIT).state is SUCCEEDED
    failed = downloads.submit("bad", "t", "bad")
    assert downloads.wait(failed, WAIT).state is ERRORED
    for i in range(3):
        downloads.wait(downloads.submit("s", "t", f"later{i}"), WAIT)
    system.settle()

    with pytest.raises(DownloadForgottenError) as forgotten:
        downloads.wait(first, WAIT)
    assert forgotten.value.state is SUCCEEDED
    assert forgotten.value.download_id == first
    assert "Completed, Succeeded" in str(forgotten.value)
    with pytest.raises(DownloadForgottenError) as forgotten:
        downloads.wait(failed, WAIT)
    assert forgotten.value.state is ERRORED
    assert downloads.cancel(first) is False  # it ended: nothing to cancel
    with pytest.raises(UnknownDownloadError):
        downloads.wait(first[:-12] + f"{999_999:012x}", WAIT)  # same shape, never submitted
    with pytest.raises(UnknownDownloadError):
        downloads.wait("never-submitted", WAIT)


@pytest.mark.timeout(60)
def test_without_a_database_wait_async_tells_a_forgotten_download_too(system_factory):
    """Before: ``wait_async`` raised UnknownDownloadError for a download that ended and
    was dropped from the history (only ``wait`` asked for its final state)."""
    system = forgetful(system_factory, history=1)
    downloads = system.downloads
    failed = downloads.submit("bad", "t", "bad")
    assert downloads.wait(failed, WAIT).state is ERRORED
    for i in range(2):
        downloads.wait(downloads.submit("s", "t", f"later{i}"), WAIT)
    system.settle()

    async def outcome(download_id: str) -> BaseException:
        try:
            await downloads.wait_async(download_id, WAIT)
        except LookupError as exc:
            return exc
        raise AssertionError("wait_async returned for a dropped download")

    forgotten = asyncio.run(outcome(failed))
    assert isinstance(forgotten, DownloadForgottenError)
    assert forgotten.state is ERRORED
    assert forgotten.download_id == failed
    assert isinstance(asyncio.run(outcome("never-submitted")), UnknownDownloadError)


def test_batched_writes_read_back_exactly(tmp_path: Path):
    """insert_many/update_many hand SQLite plain tuples: every field survives."""
    engine = create_engine(f"sqlite:///{tmp_path / 'batch.db'}")
    first = DownloadRecord(
        id="a",
        source="s",
        target_id="http://h/ü?x=1",
        filename="f",
        original_filename=None,
        extra={"isbn": "978", "n": 3},
        created_at=1.5,
        updated_at=2.5,
    )
    second = DownloadRecord(id="b", source="s", target_id="t", filename="g", username="u")
    ended = first.evolve(
        state=SUCCEEDED, size=10, transferred=10, progress=100.0, file_path="/x", speed=1.25
    )
    try:
        with engine.connect() as connection:
            store.ensure_table(connection)
            store.insert_many(connection, [(first, 1), (second, 2)])
            store.update_many(connection, [ended])
            connection.commit()
            assert store.read_records(connection) == [ended, second]
    finally:
        engine.dispose()


def test_a_claim_is_written_with_its_row_and_other_rows_keep_theirs(tmp_path: Path):
    """The keeper stores a run's claim in the same write as its record (one
    write of the row per batch): a row with a claim gets it and the owner, a
    row without keeps the claim and owner it had."""
    engine = create_engine(f"sqlite:///{tmp_path / 'claims.db'}")
    ended = DownloadRecord(id="a", source="s", target_id="t", filename="f")
    started = DownloadRecord(id="b", source="s", target_id="t", filename="g")
    try:
        with engine.connect() as connection:
            store.ensure_table(connection)
            store.insert_many(connection, [(ended, 1), (started, 2)], "me", claims={"b": 4})
            store.set_claims(connection, {"a": 3}, "earlier")
            store.update_many(
                connection,
                [ended.evolve(state=SUCCEEDED), started.evolve(state=RUNNING)],
                claims={"b": 5},
                owner="me",
            )
            connection.commit()
            assert store.read_owned(connection, "a") == (
                ended.evolve(state=SUCCEEDED),
                "earlier",
                3,
            )
            assert store.read_owned(connection, "b") == (started.evolve(state=RUNNING), "me", 5)
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_without_a_database_list_finds_queued_and_ended_records(system_factory):
    release = threading.Event()
    entered = threading.Event()

    def held(download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        entered.set()  # the queue told the keeper of the start before the worker got it
        while not release.wait(0.05):
            if ctx.cancelled:
                return None
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("busy", held), DownloadSource("fast", quick)],
        database_url=None,
    )
    downloads = system.downloads
    done = [downloads.submit("fast", "t", f"done{i}") for i in range(2)]
    for download in done:
        downloads.wait(download, WAIT)
    running = downloads.submit("busy", "t", "running")
    assert entered.wait(WAIT)
    queued = [downloads.submit("busy", "t", f"q{i}") for i in range(2000)]
    try:
        assert downloads.status(queued[-1]).state is INIT
        assert [r.id for r in downloads.list(states=[SUCCEEDED])] == done
        assert [r.id for r in downloads.list("fast")] == done
        assert [r.id for r in downloads.list("busy", states=[INIT])] == queued
        assert [r.id for r in downloads.list(states=[RUNNING, SUCCEEDED])] == [*done, running]
    finally:
        release.set()
