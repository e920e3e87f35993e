"""A system starts on a records file while another process holds its write lock.

Seen: a second ``regisseur download`` in a folder whose first run was
stopped (SIGSTOP) in the middle of a commit failed with "cannot start:
downloads: start timed out after 10s": the keeper's start compiled its
statements by running an insert and an update (rolled back), which waited
for the write lock as long as the start was allowed to take. Reading the
records needs no write lock (WAL mode); the start now asks for none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from regisseur.actors.downloads import HttpSource
from regisseur.actors.system import ActorSystem
from regisseur.messages import DownloadState
from tests.downloads.helpers import holding_process

pytestmark = pytest.mark.timeout(60)

# Another process: takes the write lock, says so, holds it until stdin closes.
_HOLD_THE_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE regisseur_downloads SET filename = filename")
print("locked", flush=True)
sys.stdin.read()
connection.rollback()
"""


def test_a_system_starts_and_reads_its_records_while_another_process_writes(
    tmp_path: Path,
) -> None:
    database = tmp_path / "records.db"
    url = f"sqlite:///{database}"
    with ActorSystem(name="first", database_url=url, download_sources=[_source(tmp_path)]) as first:
        earlier = first.downloads.submit("http", "http://127.0.0.1:9/gone.bin", "gone.bin")
        first.downloads.cancel(earlier)
        assert first.downloads.wait(earlier, 30).state is DownloadState.CANCELLED
    with (
        holding_process(_HOLD_THE_WRITE_LOCK, database) as holder,
        ActorSystem(
            name="second", database_url=url, download_sources=[_source(tmp_path)]
        ) as second,
    ):
        record = second.downloads.status(earlier)
        assert record is not None and record.state is DownloadState.CANCELLED
        assert [r.id for r in second.downloads.list()] == [earlier]
        assert holder.stdin is not None
        holder.stdin.close()  # the other process lets go: writes go on
        assert holder.wait(30) == 0


def _source(tmp_path: Path) -> HttpSource:
    return HttpSource("http", directory=tmp_path / "files", retries=0)
