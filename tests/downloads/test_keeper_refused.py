"""The keeper when regisseur's own checks refuse the records file mid-run.

A records file in a directory others may write to (``?nofollow=1``, as the
command line opens ``DIR/.regisseur-downloads.db``) is checked at every
new connection (``sqlite_files``): a ``-wal`` swapped for a link is refused
with a ``DatabaseError``, which is no SQLAlchemy error. The keeper's
connection is opened anew when the one it had is lost (forced here: the
pool emptied, the connection invalidated), or when the keeper restarts.
Before, the refusal escaped the keeper's handlers: it crashed, and every
restart crashed again at start; what it held in memory went with it.
Now it is a lasting write refusal, like a full disk: kept in memory,
retried, reported by ``health()``; stored once the file is put back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.database import claim_private_sqlite
from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads.store import read_record
from regisseur.messages import ChildRestarted
from tests.downloads.helpers import RUNNING, SUCCEEDED, WAIT, Gate
from tests.downloads.test_keeper import Recorder, keeper_details

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.clock import ManualClock
    from regisseur.actors.system import ActorSystem
    from regisseur.supervision.testing import FaultInjector, Probe

pytestmark = pytest.mark.timeout(60)

KEEPER = "download-keeper"
REFUSED = "is a symbolic link (SQLite would follow it out of the directory); remove it"


class _Wal:
    """The records' ``-wal``, swapped for a link to another file and back."""

    def __init__(self, database: Path) -> None:
        self.name = Path(f"{database}-wal")
        self.aside = database.with_name("kept-aside")
        self.target = database.parent / "elsewhere"

    def swap_for_a_link(self) -> None:
        os.rename(self.name, self.aside)  # kept: SQLite has it open (the anchor)
        self.name.symlink_to(self.target)

    def put_back(self) -> None:
        self.name.unlink()
        os.rename(self.aside, self.name)


def _records(tmp_path: Path) -> Path:
    """A records file as the command line claims it in its directory."""
    database = tmp_path / "records.db"
    claim_private_sqlite(database)
    return database


def _system(system_factory: Callable[..., ActorSystem], database: Path, impl: Any) -> ActorSystem:
    return system_factory(
        download_sources=[DownloadSource("s", impl)],
        database_url=f"sqlite:///{database}?nofollow=1",
    )


def _lose_keeper_connection(system: ActorSystem) -> None:
    """The keeper's next statement opens a new connection, as after a lost one.

    Called while the keeper is idle (it answered an ask, nothing else is
    sent to it): the engine gets a new pool (no connection opened before is
    handed out again, even one another actor has out now), the keeper's
    connection is invalidated.
    """
    assert system.database is not None
    system.database.engine.dispose()
    cell = system.registry.lookup(KEEPER)
    assert cell is not None and cell.connection is not None
    cell.connection.invalidate()


def _stored_state(database: Path, download_id: str) -> Any:
    """The state the records file holds, read apart from the system."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            record = read_record(connection, download_id)
    finally:
        engine.dispose()
    return None if record is None else record.state


def test_a_records_file_refused_mid_run_is_a_lasting_write_refusal(
    system_factory: Callable[..., ActorSystem], manual_clock: ManualClock, tmp_path: Path
) -> None:
    database = _records(tmp_path)
    gate = Gate()
    system = _system(system_factory, database, gate)
    recorder = Recorder(system)
    running = system.downloads.submit("s", "t", "running")
    recorder.wait_state(running, RUNNING)
    system.downloads.status(running)  # an ask: the keeper is idle once answered
    wal = _Wal(database)
    wal.swap_for_a_link()
    _lose_keeper_connection(system)

    gate.open("running")  # its end cannot be stored
    system.settle(WAIT)  # the worker reported it
    later = system.downloads.submit("s", "t", "later")  # nor this submit
    system.settle(WAIT)  # the keeper tried to store it: health() asks it
    assert system.downloads.status(running).state is SUCCEEDED  # memory knows
    details = keeper_details(system)
    assert details["healthy"] is False and details["unsaved_writes"] == 2
    assert details["write_error"].startswith("DatabaseError: refusing to open the database")
    assert REFUSED in details["write_error"]
    assert details["write_error_passes"] is False  # a person removes the link

    manual_clock.advance(2.0)  # retries, still refused: no crash, nothing lost
    report = system.health().find(KEEPER)
    assert report is not None and report.status == "running" and report.restarts == 0
    assert keeper_details(system)["unsaved_writes"] == 2
    assert not wal.target.exists(), "nothing went through the link"

    wal.put_back()
    gate.open("later")
    manual_clock.advance(2.0)  # the next retry stores both, then announces them
    assert recorder.wait_state(running, SUCCEEDED).state is SUCCEEDED
    assert system.downloads.wait(later, WAIT).state is SUCCEEDED
    system.settle(WAIT)
    details = keeper_details(system)
    assert details["healthy"] is True and details["write_error"] is None
    assert _stored_state(database, running) is SUCCEEDED
    assert _stored_state(database, later) is SUCCEEDED


def test_reads_and_health_of_a_refused_records_file_answer_with_the_refusal(
    system_factory: Callable[..., ActorSystem], tmp_path: Path
) -> None:
    """A read only the database can answer gets the refusal as its error;
    the keeper goes on (before, the refusal crashed it at the health check)."""
    database = _records(tmp_path)
    gate = Gate()
    gate.open()
    system = _system(system_factory, database, gate)
    system.settle(WAIT)
    wal = _Wal(database)
    wal.swap_for_a_link()
    _lose_keeper_connection(system)

    with pytest.raises(Exception, match="symbolic link") as info:
        system.downloads.status("no-such-download")
    assert "refusing to open the database" in str(info.value)
    details = keeper_details(system)
    assert details["database_error"] is not None and REFUSED in details["database_error"]
    report = system.health().find(KEEPER)
    assert report is not None and report.status == "running" and report.restarts == 0

    wal.put_back()
    assert system.downloads.status("no-such-download") is None
    assert keeper_details(system)["database_error"] is None


def test_a_keeper_restarted_while_the_records_are_refused_starts_once_they_are_not(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    faults: FaultInjector,
    probe: Probe,
    tmp_path: Path,
) -> None:
    """A restart cannot load the records it refuses: the start fails with the
    checks' own words (the health report's last error) and is tried again
    with the supervisor's backoff; a submit accepted meanwhile is run once
    the file is back. The event journal, refused as well, drops what it
    cannot write (before, it crashed at each write and was restarted)."""
    database = _records(tmp_path)
    gate = Gate()
    gate.open()
    system = _system(system_factory, database, gate)
    system.settle(WAIT)
    wal = _Wal(database)
    wal.swap_for_a_link()
    assert system.database is not None
    system.database.engine.dispose()  # the restarted keeper opens a new connection
    faults.crash(KEEPER, times=1)
    accepted = system.downloads.submit("s", "t", "accepted")  # crashes the keeper

    manual_clock.advance(2.0)  # the restart, refused
    report = system.health().find(KEEPER)
    assert report is not None and report.status == "restarting"
    assert report.last_error is not None
    assert report.last_error.startswith("DatabaseError: refusing to open the database")
    assert REFUSED in report.last_error
    # The journal's writes of those events were refused too: dropped, no crash.
    journal = system.health().find("event journal")
    assert journal is not None and journal.status == "running" and journal.restarts == 0

    wal.put_back()
    manual_clock.advance(4.0)  # the next restart loads, and runs what was accepted
    probe.expect(ChildRestarted, name=KEEPER)
    assert system.downloads.wait(accepted, WAIT).state is SUCCEEDED
    assert _stored_state(database, accepted) is SUCCEEDED
