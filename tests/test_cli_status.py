"""``regisseur status``: reads the database a ``regisseur download`` run left behind."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.serving import serving

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
BODY = b"regisseur " * 10_000
DB_NAME = ".regisseur-downloads.db"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regisseur.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class Runs:
    """The output directory of two download runs, and the time span they ran in."""

    def __init__(self, out: Path, base: str, started: float, ended: float) -> None:
        self.out = out
        self.base = base
        self.started = started
        self.ended = ended


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Run 1: one file fetched, one 404; run 2: another file, in the same directory."""
    served = tmp_path_factory.mktemp("served")
    (served / "report.txt").write_bytes(BODY)
    (served / "later.txt").write_bytes(BODY[:100])
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    out = tmp_path_factory.mktemp("out")
    started = time.time()
    with serving(server):
        first = run("download", f"{base}/report.txt", f"{base}/gone.txt", "-o", str(out))
        second = run("download", f"{base}/later.txt", "-o", str(out))
    assert first.returncode == 1, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    yield Runs(out, base, started, time.time())


def test_status_json_after_download_runs(downloaded: Runs) -> None:
    result = run("status", "--db", f"sqlite:///{downloaded.out / DB_NAME}", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    records = {Path(d["filename"]).name: d for d in data["downloads"]}
    assert list(records) == ["report.txt", "gone.txt", "later.txt"]
    done = records["report.txt"]
    assert done["state"] == "Completed, Succeeded"
    assert done["source"] == "http"
    assert done["username"] == "http"
    assert done["target_id"] == f"{downloaded.base}/report.txt"
    assert done["size"] == len(BODY)
    assert Path(done["file_path"]).read_bytes() == BODY
    gone = records["gone.txt"]
    assert gone["state"] == "Errored"
    assert gone["error"].startswith("HTTP 404")
    names = {(e["event"], e["name"]) for e in data["events"]}
    assert ("ChildStopped", "downloads") in names
    # Distinct across runs, in submission order; times are ISO 8601 UTC.
    assert [d["seq"] for d in data["downloads"]] == [1, 2, 3]
    assert len({d["id"] for d in data["downloads"]}) == 3
    for record in data["downloads"]:
        for key in ("created_at", "updated_at"):
            assert record[key].endswith("+00:00"), record[key]
            when = datetime.fromisoformat(record[key]).timestamp()
            assert downloaded.started - 1 <= when <= downloaded.ended + 1


def test_status_table_after_download_runs(downloaded: Runs) -> None:
    result = run("status", str(downloaded.out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("downloads: 3\n")
    header, *rows = result.stdout.split("\n\n")[0].splitlines()[1:]
    assert header.split() == ["#", "state", "size", "when", "url", "file", "/", "error"]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    report, gone, later = rows
    assert "Completed, Succeeded" in report and "97.7 KiB" in report
    assert f"{downloaded.base}/report.txt" in report
    assert str(downloaded.out / "report.txt") in report
    assert "Errored" in gone and "HTTP 404" in gone
    # The error beside its URL does not say the URL again (--json keeps it whole).
    assert gone.count(f"{downloaded.base}/gone.txt") == 1, gone
    assert gone.rstrip().endswith("HTTP 404 File not found"), gone  # http.server's reason
    assert f"{downloaded.base}/later.txt" in later and "100 B" in later
    local = datetime.fromtimestamp(downloaded.ended).astimezone().strftime("%Y-%m-%d")
    assert local in report
    # Two runs' starts and stops of each actor: counted, not listed.
    events = result.stdout.split("\n\n")[1]
    assert re.fullmatch(
        r"supervision events kept: (\d+) \(\1 plain starts and stops, not listed: "
        r"--events N lists the last N\)\n",
        events,
    ), events


def _journal(records: Path, *events: tuple[str, str | None]) -> None:
    """Append ``(event, error)`` rows to the journal of ``records``, oldest first."""
    with contextlib.closing(sqlite3.connect(records)) as connection, connection:
        connection.executemany(
            "INSERT INTO regisseur_events (time, system, event, name, error, details)"
            " VALUES (?, 'download', ?, 'source:http.worker-1', ?, '{}')",
            [(time.time(), event, error) for event, error in events],
        )


def test_status_lists_failures_however_many_starts_came_after(
    downloaded: Runs, tmp_path: Path
) -> None:
    """A failure stays listed when a dozen runs' starts and stops came after
    it (they are not counted against the 20 listed); ``--events N`` lists
    the last N, starts and stops included."""
    records = tmp_path / DB_NAME
    shutil.copyfile(downloaded.out / DB_NAME, records)
    _journal(records, ("ChildFailed", "OSError: boom"), *[("ChildStarted", None)] * 40)
    result = run("status", str(tmp_path))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.split("\n\n")[1].splitlines()
    found = re.fullmatch(
        r"supervision events kept: (\d+) \((\d+) plain starts and stops, .*\)", header
    )
    assert found is not None, header
    assert int(found.group(2)) == int(found.group(1)) - 1 >= 40
    assert len(rows) == 2 and "ChildFailed" in rows[1] and "OSError: boom" in rows[1], rows
    listed = run("status", str(tmp_path), "--events", "3")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.split("\n\n")[1].splitlines()
    assert header == "last supervision events: 3"
    assert [row.split()[2] for row in rows[1:]] == ["ChildStarted"] * 3


def test_status_lists_the_last_20_failures(downloaded: Runs, tmp_path: Path) -> None:
    records = tmp_path / DB_NAME
    shutil.copyfile(downloaded.out / DB_NAME, records)
    _journal(records, *[("ChildFailed", f"OSError: number {n}") for n in range(25)])
    result = run("status", str(tmp_path))
    assert result.returncode == 0, result.stderr
    _kept, note, _header, *rows = result.stdout.split("\n\n")[1].splitlines()
    assert note == "the last 20 of the 25 others:"
    assert [row.rsplit(" ", 1)[-1] for row in rows] == [str(n) for n in range(5, 25)]


@pytest.mark.parametrize(
    "how",
    [
        ("-o", "{out}"),
        ("{out}",),
        ("--db", "{out}/" + DB_NAME),
        ("--db", "sqlite:///{out}/" + DB_NAME),
    ],
)
def test_status_finds_the_records_of_a_download_directory(
    downloaded: Runs, how: tuple[str, ...]
) -> None:
    args = [a.format(out=downloaded.out) for a in how]
    result = run("status", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["downloads"]) == 3


def test_status_without_arguments_reads_the_current_directory(downloaded: Runs) -> None:
    result = run("status", "--json", cwd=downloaded.out)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["downloads"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{tmp}",), "no download records in {tmp}"),
        (("{tmp}/nope",), "{tmp}/nope does not exist"),
        (("{tmp}/file",), "{tmp}/file is not a directory"),
        (("{tmp}", "--db", "x.db"), "give the records to read once"),
    ],
)
def test_status_of_a_directory_without_records_is_a_clear_error(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "file").write_text("x")
    result = run("status", *(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / DB_NAME).exists()


def test_status_of_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    for db in (f"sqlite:///{tmp_path / 'none.db'}", str(tmp_path / "none.db")):
        result = run("status", "--db", db)
        assert result.returncode == 1
        assert "no database file" in result.stderr
        assert not (tmp_path / "none.db").exists()


def test_status_of_a_records_file_that_is_no_database_names_the_file(tmp_path: Path) -> None:
    """Before: ``cannot read sqlite:////DIR/.regisseur-downloads.db?nofollow=1:
    file is not a database``: a URL the user never typed, with an internal
    option; ``download`` names the same file by its path."""
    records = tmp_path / DB_NAME
    records.write_bytes(b"not a database\n")
    records.chmod(0o600)
    for args in ((str(tmp_path),), ("--db", str(records)), ("--db", f"sqlite:///{records}")):
        result = run("status", *args)
        assert result.returncode == 1
        assert result.stderr == (
            f"regisseur status: cannot read {records}: file is not a database\n"
        ), args
        download = run("download", "-o", str(tmp_path), "http://127.0.0.1:9/a.bin")
        assert f"{records}: file is not a database" in download.stderr


def test_status_without_arguments_where_nothing_was_downloaded(tmp_path: Path) -> None:
    """Before: "no database file at 'regisseur.db'", a file a downloader never made."""
    result = run("status", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"regisseur status: no records here: no {DB_NAME} (nothing was downloaded here) "
        "and no regisseur.db; give the download directory (regisseur status DIR) or --db\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_status_db_naming_a_directory_points_to_status_dir(downloaded: Runs) -> None:
    """Before: "no database file at 'DIR'", though DIR holds the records."""
    result = run("status", "--db", str(downloaded.out))
    assert result.returncode == 1
    assert result.stderr == (
        f"regisseur status: {downloaded.out} is a directory, not a database file "
        f"(to read the records of a download directory: regisseur status {downloaded.out})\n"
    )


def test_status_of_a_bad_url_is_a_clear_error() -> None:
    result = run("status", "--db", "not a url://", "--json")
    assert result.returncode == 1
    assert "not a database URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("value", "message"), [("-1", "must be >= 0"), ("x", "not a number")])
def test_status_events_must_be_a_count(value: str, message: str) -> None:
    result = run("status", "--events", value)
    assert result.returncode == 2
    assert f"argument --events: {message}" in result.stderr


def test_status_events_beyond_any_count_lists_them_all(downloaded: Runs) -> None:
    """Before: ``--events 99999999999999999999`` was a traceback (``OverflowError``:
    the count does not fit a SQLite integer)."""
    every = run("status", str(downloaded.out), "--json", "--events", "1000000")
    huge = run("status", str(downloaded.out), "--json", "--events", "9" * 30)
    assert huge.returncode == 0, huge.stderr
    assert huge.stderr == ""
    events = json.loads(huge.stdout)["events"]
    assert events == json.loads(every.stdout)["events"]
    assert len(events) > 20


@pytest.mark.parametrize("how", ["dir", "cwd"])
def test_status_never_reads_records_through_a_planted_link(
    downloaded: Runs, tmp_path: Path, how: str
) -> None:
    """Like ``download``, ``status DIR`` refuses a link in place of DIR's records file."""
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / DB_NAME).symlink_to(downloaded.out / DB_NAME)  # another file, say an app's
    result = run("status", str(planted)) if how == "dir" else run("status", cwd=planted)
    assert result.returncode == 2, result.stdout
    assert f"{DB_NAME} is a symbolic link, not download records: not read" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("table", [False, True])
def test_status_into_a_pipe_nobody_reads_ends_quietly(downloaded: Runs, *, table: bool) -> None:
    """``regisseur status DIR --json | head -c 0``: the reader went away before
    a line was written. Exit 1, and no traceback of the BrokenPipeError."""
    reader, writer = os.pipe()
    os.close(reader)  # no reader: the first write fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "regisseur.cli", "status", str(downloaded.out)]
            + ([] if table else ["--json"]),
            cwd=ROOT,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (1, "")


def test_status_version() -> None:
    result = run("status", "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("regisseur ")
