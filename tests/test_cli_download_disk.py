"""``regisseur download`` when what it writes is refused: the records, the files.

Real processes against the local server of ``tests/test_cli_download.py``,
whose first full answer holds after one chunk until the test releases it.
A full disk is simulated where it is refused: a trigger makes SQLite refuse
every write of a download record with its own "disk is full" message; the
downloaded files go to a small tmpfs where this process may mount one.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.polling import wait_until
from tests.test_cli_download import (
    DB_NAME,
    cli,
    ended,
    files,
    run,
    signal_midway,
    succeeded,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.test_cli_download import _Server

__all__ = ["files"]  # the fixture, shared


def _refuse_record_writes(database: Path) -> None:
    """Every later insert or update of a download record fails, as on a full disk."""
    with sqlite3.connect(database, timeout=10) as connection:
        for verb in ("INSERT", "UPDATE"):
            connection.execute(
                f"CREATE TRIGGER refuse_{verb.lower()} BEFORE {verb} ON regisseur_downloads "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
    connection.close()


def _claim_stored(database: Path) -> bool:
    """True once the running download's claim (its run's number) is in the records."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        row = connection.execute("SELECT MAX(claim) FROM regisseur_downloads").fetchone()
    connection.close()
    return bool(row and row[0])


def _accept_record_writes(database: Path) -> None:
    with sqlite3.connect(database, timeout=10) as connection:
        for verb in ("insert", "update"):
            connection.execute(f"DROP TRIGGER refuse_{verb}")
    connection.close()


@pytest.mark.timeout(90)
def test_records_that_cannot_be_written_end_the_run_instead_of_hanging(
    files: _Server, tmp_path: Path
) -> None:
    """The keeper retries a refused write for as long as the system runs; a
    run waiting for that write to be announced waited forever. It stops,
    names the records database and why, and exits 1; the next run, once
    the records can be written, finishes the download."""
    url = files.url("/data/big.bin")
    out_dir = tmp_path / "out"
    database = out_dir / DB_NAME
    command = cli("download", url, "-o", str(out_dir), "--plain")
    process = signal_midway(command, files, out_dir, None)
    # The run's claim is stored (a loaded machine may commit it late): the
    # next run knows the file this one publishes is the download's own.
    wait_until(
        lambda: _claim_stored(database), 30, "the run's claim stored", ignoring=(sqlite3.Error,)
    )
    _refuse_record_writes(database)
    files.gate.set()  # the download ends; its end cannot be recorded

    code, out, err = ended(process)
    assert code == 1, out + err
    assert "Traceback" not in err
    expected = f"cannot write to the records database {database}: database or disk is full"
    assert expected in err, err
    assert "run the same command again" in err
    assert out == "", "nothing is listed as delivered by a run that stopped"

    _accept_record_writes(database)
    again = run("download", url, "-o", str(out_dir), "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {url}" in again.stderr
    assert again.stdout == f"{out_dir / 'big.bin'}\n"
    assert (out_dir / "big.bin").read_bytes() == files.body
    assert succeeded(out_dir) == [url]
    assert sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(DB_NAME)) == [
        "big.bin"
    ], "the file the stopped run published is taken, not copied to 'big (1).bin'"


def _downloaded_once(files: _Server, out_dir: Path) -> Path:
    """A first run's records in ``out_dir`` (``big.bin`` downloaded, every
    answer whole from now on, ``other.bin`` served next); their path."""
    files.gate.set()
    files.served.add("other.bin")
    first = run("download", files.url("/data/big.bin"), "-o", str(out_dir))
    assert first.returncode == 0, first.stderr
    return out_dir / DB_NAME


def _started_until_it_says(command: list[str], said: str, errors: Path) -> subprocess.Popen[str]:
    """``command`` started (its stderr to ``errors``); returned once that says
    ``said`` or the process ended."""
    with errors.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    wait_until(
        lambda: said in errors.read_text() or process.poll() is not None, 60, "the waiting line"
    )
    return process


def _hold_the_write_lock(database: Path) -> sqlite3.Connection:
    """A connection of this process in the middle of a write (until it
    closes: rolled back), as a run stopped with Ctrl-Z while it wrote."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _keep_readers_out(database: Path) -> sqlite3.Connection:
    """A connection of this process that keeps every other reader out until
    it closes, as a run stopped (Ctrl-Z) in its final checkpoint does."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("COMMIT")  # the lock stays with the connection
    return holder


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "hold", [_hold_the_write_lock, _keep_readers_out], ids=["write-lock", "readers-kept-out"]
)
def test_a_run_started_while_another_process_holds_the_records_waits_it_out(
    files: _Server, tmp_path: Path, hold: Callable[[Path], sqlite3.Connection]
) -> None:
    """The write lock (another run stopped with Ctrl-Z while it wrote): a run
    started meanwhile in the same directory gave up after 20 s with "no reply
    from 'download-keeper' within 10s", exit 1; later it waited, but in
    silence for ~15 s (its keeper's first commit waited SQLite's busy
    timeout before anything could say why). Readers kept out (a run stopped
    in its final checkpoint, SQLite's exclusive locking mode): the run
    failed at its start after the busy timeout, exit 2. Either way it now
    waits before it starts, says so within a second, and finishes once the
    lock is let go. The holder is this test's process."""
    out_dir = tmp_path / "out"
    database = _downloaded_once(files, out_dir)
    said = (
        f"waiting for the records database {database}: database is locked "
        "(another process holds it; Ctrl-C stops the run)"
    )
    errors = tmp_path / "stderr.txt"
    holder = hold(database)
    try:
        command = cli("download", files.url("/data/other.bin"), "-o", str(out_dir), "--plain")
        process = _started_until_it_says(command, said, errors)
    finally:
        holder.close()  # the other process lets go
    code, out, _ = ended(process)
    err = errors.read_text()
    assert code == 0, err
    assert said in err
    assert out == f"{out_dir / 'other.bin'}\n"
    assert (out_dir / "other.bin").read_bytes() == files.body
    assert sorted(succeeded(out_dir)) == sorted(
        [files.url("/data/big.bin"), files.url("/data/other.bin")]
    )


@pytest.mark.timeout(120)
def test_a_lock_that_outlasts_max_time_ends_the_run_before_it_starts(
    files: _Server, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    database = _downloaded_once(files, out_dir)
    holder = _keep_readers_out(database)
    try:
        late = run("download", files.url("/data/other.bin"), "-o", str(out_dir), "--max-time", "1")
    finally:
        holder.close()
    assert late.returncode == 1, late.stderr
    assert "Traceback" not in late.stderr
    assert (
        f"regisseur download: the records database {database} was still locked by another "
        "process after the --max-time of 1 s (database is locked); nothing was downloaded"
    ) in late.stderr
    assert late.stdout == ""
    assert not (out_dir / "other.bin").exists()
    assert succeeded(out_dir) == [files.url("/data/big.bin")], "the records are as they were"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (skipped where this process cannot mount one); unmounted after."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@pytest.mark.timeout(90)
def test_a_full_disk_keeps_the_part_and_the_next_run_resumes_it(
    files: _Server, small_disk: Path, tmp_path: Path
) -> None:
    """A 3 MiB file onto a 1 MiB file system: the run fails, says how much
    it kept and how to resume; once there is room the same command
    continues with a Range request from there. Before, the part was
    removed and the next run started at byte 0. Every byte of the part is
    kept, though the full disk refused the last update of its meta file
    too (before, the bytes after its first checkpoint were fetched again)."""
    files.gate.set()  # the whole body at once
    url = files.url("/data/big.bin")
    records = tmp_path / "records.db"  # elsewhere: the small disk is full
    command = ("download", url, "-o", str(small_disk), "--db", str(records), "--plain")

    first = run(*command)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    kept = re.search(r"No space left on device; (\d+) bytes kept for a re-run", first.stderr)
    assert kept is not None, first.stderr
    assert f"1 partial file(s) kept in {small_disk}" in first.stderr
    assert "run the same command again to resume" in first.stderr
    [part] = small_disk.glob("big.bin.*.part")
    assert part.stat().st_size == int(kept.group(1)) > 0

    remounted = subprocess.run(
        ["mount", "-o", "remount,size=8m", str(small_disk)], capture_output=True, check=False
    )
    assert remounted.returncode == 0, remounted.stderr
    again = run(*command)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {url}" in again.stderr
    assert f"downloading {url}" not in again.stderr, "its start is said once, as resuming"
    assert files.ranges[-1] == f"bytes={kept.group(1)}-"
    assert again.stdout == f"{small_disk / 'big.bin'}\n"
    assert (small_disk / "big.bin").read_bytes() == files.body
    assert sorted(p.name for p in small_disk.iterdir()) == ["big.bin"]
