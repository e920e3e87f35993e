"""Several app processes open one records database at the same moment.

``PROCESSES`` real processes (``schema_child.py``) each start a system with
downloads on the same SQLite file, released together by a barrier (a
``flock`` the test holds and lets go), for ``ROUNDS`` rounds on a fresh
database each. Every other round the file holds the table of an earlier
version (without the ``owner`` and ``claim`` columns), which every process
wants to bring up to date at once. Each process must start, and the schema
must be whole: every column, the indexes, the journal's table.

Before the schema lock (``database.lock_schema``), two processes both
added a missing column and the later failed its start with ``duplicate
column name: owner`` (4 of 10 earlier-version rounds, 9 of 40 processes,
in a run of 20 rounds; so 12 rounds by default), and a new table was
created and indexed in separate commits (a process that died between
them left a table without indexes for good). ``REGISSEUR_SCHEMA_ROUNDS``
sets more rounds.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads.store import downloads_table

if TYPE_CHECKING:
    from collections.abc import Iterator

CHILD = Path(__file__).with_name("schema_child.py")
ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
ROUNDS = int(os.environ.get("REGISSEUR_SCHEMA_ROUNDS", "12"))

#: The records' table as an earlier version wrote it (no owner, no claim).
EARLIER = (
    "CREATE TABLE regisseur_downloads (id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL,"
    " source VARCHAR(200) NOT NULL, target_id TEXT NOT NULL, filename TEXT NOT NULL,"
    " original_filename TEXT, username VARCHAR(200), state VARCHAR(40) NOT NULL,"
    " progress FLOAT NOT NULL, size INTEGER, transferred INTEGER NOT NULL,"
    " speed FLOAT NOT NULL, time_remaining FLOAT, file_path TEXT, error TEXT,"
    " extra TEXT NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,"
    " PRIMARY KEY (id))",
    "CREATE INDEX ix_regisseur_downloads_seq ON regisseur_downloads (seq)",
    "CREATE INDEX ix_regisseur_downloads_source ON regisseur_downloads (source)",
    "CREATE INDEX ix_regisseur_downloads_state ON regisseur_downloads (state)",
)


def earlier_version(round_number: int) -> bool:
    return round_number % 2 == 1


def prepare(directory: Path) -> list[int]:
    """A folder per round with its gate, locked; returns the held gates."""
    held = []
    for number in range(ROUNDS):
        folder = directory / str(number)
        folder.mkdir()
        (folder / "gate").touch()
        if earlier_version(number):
            with sqlite3.connect(folder / "records.db") as db:
                for statement in EARLIER:
                    db.execute(statement)
            db.close()
        gate = os.open(folder / "gate", os.O_RDONLY)
        fcntl.flock(gate, fcntl.LOCK_EX)
        held.append(gate)
    return held


def schema(path: Path) -> tuple[set[str], set[str], set[str]]:
    """Tables, columns of the records' table, and its indexes."""
    db = sqlite3.connect(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(regisseur_downloads)")}
        listed = db.execute("PRAGMA index_list(regisseur_downloads)")
        indexes = {row[1] for row in listed if not row[1].startswith("sqlite_")}
    finally:
        db.close()
    return tables, columns, indexes


@pytest.fixture
def children(tmp_path: Path) -> Iterator[tuple[list[subprocess.Popen[str]], list[int]]]:
    held = prepare(tmp_path)
    processes = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(tmp_path), str(ROUNDS)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        yield processes, held
    finally:
        for gate in held:  # a round not reached: let a waiting child go on and end
            os.close(gate)
        for process in processes:
            process.kill()
            process.communicate()


@pytest.mark.timeout(60 + 30 * ROUNDS)
def test_processes_opening_one_database_at_once_all_start_with_the_schema_whole(
    tmp_path: Path, children: tuple[list[subprocess.Popen[str]], list[int]]
) -> None:
    processes, held = children
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.stderr
    expected_columns = {column.name for column in downloads_table.columns}
    failures = []
    for number in range(ROUNDS):
        os.close(held[number])  # every child waits on this gate: all start together
        held[number] = os.open(os.devnull, os.O_RDONLY)  # closed again by the fixture
        answers = [process.stdout.readline().strip() for process in processes]  # type: ignore[union-attr]
        kind = "earlier version" if earlier_version(number) else "new"
        failures += [f"round {number} ({kind}): {a or 'child died'}" for a in answers if a != "ok"]
        tables, columns, indexes = schema(tmp_path / str(number) / "records.db")
        assert {"regisseur_downloads", "regisseur_events"} <= tables, (number, tables)
        assert columns == expected_columns, (number, kind, expected_columns ^ columns)
        assert {"ix_regisseur_downloads_seq", "ix_regisseur_downloads_state"} <= indexes
        if not earlier_version(number):
            assert indexes == {index.name for index in downloads_table.indexes}, (number, indexes)
    assert not failures, "\n".join(failures)
