"""``downloads.take_over`` and ``wait`` on a download another process holds.

The other process is a row in the shared SQLite records file owned by an
owner id whose liveness lock this test holds (alive, as a frozen process
keeps it) or that has no lock (gone, as after a SIGKILL): the keeper's
decision reads only the row and the lock. The killed-process versions,
with real processes, are in ``tests/reliability/test_shared_database.py``
and ``tests/test_cli_download_takeover.py``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from regisseur.actors.downloads import store
from regisseur.actors.downloads._owners import OwnerLock, lock_directory, owner_alive
from regisseur.actors.downloads.errors import UnknownDownloadError
from regisseur.actors.downloads.http import HttpSource
from regisseur.messages.downloads import DownloadRecord, DownloadState
from tests.downloads.conftest import WAIT, HttpServer

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

BODY = os.urandom(300 * 1024 + 5)
GONE = "otherhost:999999:gone:00000000"  # no lock file: its process is gone
FROZEN = "otherhost:999998:frozen:00000000"  # its lock held by this test


def _system(factory: Callable[..., ActorSystem], directory: Path) -> ActorSystem:
    return factory(
        download_sources=[HttpSource(directory=directory, retries=0)],
        database_url=f"sqlite:///{directory / 'records.db'}",
    )


def _foreign(directory: Path, url: str, owner: str, download_id: str) -> str:
    """A row another process left InProgress (as a kill leaves it), owned by ``owner``."""
    engine = create_engine(f"sqlite:///{directory / 'records.db'}")
    try:
        with engine.begin() as connection:
            record = DownloadRecord(
                id=download_id,
                source="http",
                target_id=url,
                filename="big.bin",
                state=DownloadState.IN_PROGRESS,
            )
            store.insert_record(connection, record, store.next_seq(connection), owner=owner)
    finally:
        engine.dispose()
    return download_id


@pytest.mark.timeout(60)
def test_a_download_whose_owner_is_gone_is_taken_over_and_finished_here(
    system_factory: Callable[..., ActorSystem], tmp_path: Path, http_server: HttpServer
) -> None:
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    system = _system(system_factory, tmp_path)  # started before the row: nothing taken at start
    download_id = _foreign(tmp_path, url, GONE, "f" * 32)
    assert system.downloads.status(download_id).state is DownloadState.IN_PROGRESS
    assert system.downloads.take_over(download_id) is True
    assert system.downloads.take_over(download_id) is True  # runs here already
    done = system.downloads.wait(download_id, WAIT)
    assert done.state is DownloadState.SUCCEEDED, done.error
    assert Path(done.file_path or "").read_bytes() == BODY
    assert system.downloads.take_over(download_id) is False  # ended
    with pytest.raises(UnknownDownloadError):
        system.downloads.take_over("nope")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["wait", "wait_async"])
def test_wait_leaves_a_live_owners_download_alone_and_takes_it_over_once_it_is_gone(
    system_factory: Callable[..., ActorSystem], tmp_path: Path, http_server: HttpServer, how: str
) -> None:
    """Before: ``wait`` on another process's download waited for an event
    that only that process would see, whatever became of it."""
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    system = _system(system_factory, tmp_path)
    locks = lock_directory(system.database.sqlalchemy_url if system.database else None)
    assert locks is not None
    lock = OwnerLock(locks, FROZEN)
    lock.acquire()
    try:
        download_id = _foreign(tmp_path, url, FROZEN, "e" * 32)
        assert system.downloads.take_over(download_id) is False  # alive: its lock is held
        with pytest.raises(TimeoutError):  # WaitTimeoutError from wait()
            if how == "wait":
                system.downloads.wait(download_id, 0.5)
            else:
                asyncio.run(system.downloads.wait_async(download_id, 0.5))
        assert http_server.seen("/big.bin") == []  # never fetched beside its owner
        assert owner_alive(locks, FROZEN)
    finally:
        lock.release()  # the owner ends without finishing it
    if how == "wait":
        done = system.downloads.wait(download_id, WAIT)
    else:
        done = asyncio.run(system.downloads.wait_async(download_id, WAIT))
    assert done.state is DownloadState.SUCCEEDED, done.error
    assert Path(done.file_path or "").read_bytes() == BODY
    assert len(http_server.seen("/big.bin")) == 1


@pytest.mark.timeout(120)
def test_a_start_takes_over_many_downloads_of_a_gone_owner_in_a_few_statements(
    system_factory: Callable[..., ActorSystem], tmp_path: Path
) -> None:
    """Before: one conditional UPDATE per download. 81,000 downloads a
    stopped ``regisseur download -i`` run left took the keeper past its 10 s
    start timeout, and the next run could never start (``cannot start:
    downloads: start timed out after 10s``). Each owner is probed once and
    its downloads are taken a chunk at a time; a live owner's are left."""
    many = 1200
    engine = create_engine(f"sqlite:///{tmp_path / 'records.db'}")
    try:
        with engine.begin() as connection:
            store.ensure_table(connection)
            first = store.next_seq(connection)
            rows = [
                DownloadRecord(
                    id=f"{index:032x}",
                    source="http",
                    target_id=f"http://127.0.0.1:9/{index}",
                    filename=f"{index}.bin",
                    state=DownloadState.INITIALIZING,
                )
                for index in range(many)
            ]
            store.insert_many(connection, [(r, first + i) for i, r in enumerate(rows)], GONE)
            frozen = DownloadRecord(
                id="f" * 32, source="http", target_id="http://127.0.0.1:9/f", filename="f.bin"
            )
            store.insert_record(connection, frozen, first + many, owner=FROZEN)
    finally:
        engine.dispose()
    locks = tmp_path / "records.db-owners"
    locks.mkdir(mode=0o700, exist_ok=True)
    lock = OwnerLock(locks, FROZEN)
    lock.acquire()
    takes: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE REGISSEUR_DOWNLOADS SET OWNER"):
            takes.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        system = _system(system_factory, tmp_path)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    try:
        assert system.database is not None
        with system.database.engine.connect() as connection:
            owners = store.owners_of(connection, [r.id for r in rows] + [frozen.id])
        assert owners.pop(frozen.id) == FROZEN  # alive: never taken
        assert len(set(owners.values())) == 1
        assert GONE not in owners.values()
        assert 0 < len(takes) <= 2 * (many // 500 + 1)  # before: 1,200
    finally:
        lock.release()
