"""Two app processes on one SQLite database; one is killed with SIGKILL mid-download
and started again while the other keeps downloading.

The restarted process takes over the killed one's download (its owner is
gone: the kernel released its lock) and resumes it once, with a Range
request from the last byte the killed run wrote to its part (its meta
file is of this boot); it never touches the download the live process is running. Each
download ends Succeeded once, with one file_path, and its file is
byte-identical to the server's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.reliability import two_writers
from tests.reliability.two_writers import ROOT, WAIT, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

CHILD = Path(__file__).with_name("app_child.py")
MIB = 1024 * 1024
SIZE = 8 * MIB
HELD_AFTER = 5 * MIB  # past the first checkpoints of the part


@pytest.fixture
def server() -> Iterator[two_writers.Server]:
    with contextlib.contextmanager(two_writers.serve)(SIZE, HELD_AFTER) as running:
        running.held = {"a.bin", "b.bin"}
        yield running


def app(db: Path, directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(directory), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def held(directory: Path, name: str) -> int:
    """The bytes in ``name``'s part (0 if there is none)."""
    for part in directory.glob(f"{name}.*.part"):
        with contextlib.suppress(OSError):
            return part.stat().st_size
    return 0


def recorded(directory: Path, name: str) -> int:
    """The good length recorded in the ``.meta`` of ``name``'s part (0 if none yet)."""
    for meta in directory.glob(f"{name}.*.part.meta"):
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(meta.read_text())["offset"])
    return 0


def ended(process: subprocess.Popen[str]) -> dict[str, dict[str, str]]:
    out, err = process.communicate(timeout=WAIT)
    assert process.returncode == 0, err
    return {line["url"]: line for line in map(json.loads, out.splitlines())}


@pytest.mark.timeout(120)
def test_a_killed_app_is_resumed_once_while_the_other_keeps_running(
    server: two_writers.Server, tmp_path: Path
) -> None:
    db, directory = tmp_path / "shared.db", tmp_path / "files"
    a_url, b_url = server.url("a.bin"), server.url("b.bin")
    killed = app(db, directory, "--submit", a_url)
    survivor = app(db, directory, "--submit", b_url)
    restarted: subprocess.Popen[str] | None = None
    try:
        for name in ("a.bin", "b.bin"):
            wait_until(server.sent_first(name).is_set, f"the first bytes of {name}")
            wait_until(
                lambda name=name: recorded(directory, name) > 0,  # type: ignore[misc]
                f"a checkpoint of the .part of {name}",
            )
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=WAIT)
        # Read once the killed process can write no more.
        offset = held(directory, "a.bin")
        assert offset >= recorded(directory, "a.bin")

        restarted = app(db, directory, "--wait-url", a_url, "--wait-url", b_url)
        resumed = ended(restarted)  # b.bin is still held in the survivor meanwhile
        assert list(resumed) == [a_url]  # the live process's download was not taken
        assert server.fetched("a.bin") == [None, f"bytes={offset}-"]  # resumed once
        assert server.fetched("b.bin") == [None]  # only the survivor's request

        server.gate.set()
        survived = ended(survivor)
    finally:
        server.gate.set()
        for process in (killed, survivor, restarted):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()

    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT id, target_id, state, file_path FROM regisseur_downloads"
        ).fetchall()
    assert len(rows) == 2
    reported = {a_url: resumed[a_url], b_url: survived[b_url]}
    for download_id, url, state, file_path in rows:
        assert state == "Completed, Succeeded"
        assert (reported[url]["id"], reported[url]["file_path"]) == (download_id, file_path)
        body = server.bodies[url.rsplit("/", 1)[-1]]
        assert (
            hashlib.sha256(Path(file_path).read_bytes()).digest() == hashlib.sha256(body).digest()
        )
    assert sorted(p.name for p in directory.iterdir()) == ["a.bin", "b.bin"]


@pytest.mark.timeout(120)
def test_a_download_whose_owner_dies_is_finished_by_one_of_the_apps_waiting_for_it(
    server: two_writers.Server, tmp_path: Path
) -> None:
    """Before: ``wait()`` (and ``wait_async()``) on a download another process
    held only heard of this process's events: it waited past that process's end (or death)
    for an event that never came, and no live keeper took the download over."""
    db, directory = tmp_path / "shared.db", tmp_path / "files"
    url = server.url("a.bin")
    killed = app(db, directory, "--submit", url)
    waiters: list[subprocess.Popen[str]] = []
    try:
        wait_until(server.sent_first("a.bin").is_set, "the first bytes of a.bin")
        wait_until(lambda: recorded(directory, "a.bin") > 0, "a checkpoint of the .part")
        # Every byte sent before the server held the rest is in the part.
        wait_until(lambda: held(directory, "a.bin") == HELD_AFTER, "the held bytes in the part")
        # Started while the owner lives (nothing taken at start); wait(), wait_async().
        for name, how in (("one", ()), ("two", ("--async",))):
            ready = tmp_path / f"{name}.ready"
            waiters.append(app(db, directory, "--wait-for", url, "--ready", str(ready), *how))
            wait_until(ready.exists, f"waiter {name} waiting")
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=WAIT)
        offset = HELD_AFTER  # a waiter may be writing past it already
        reports = [ended(waiter)[url] for waiter in waiters]
    finally:
        server.gate.set()
        for process in (killed, *waiters):
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert server.fetched("a.bin") == [None, f"bytes={offset}-"]  # resumed once, by one
    assert {r["state"] for r in reports} == {"Completed, Succeeded"}
    assert len({(r["id"], r["file_path"], r["owner_pid"]) for r in reports}) == 1
    assert reports[0]["owner_pid"] in {w.pid for w in waiters}
    body = server.bodies["a.bin"]
    assert Path(reports[0]["file_path"]).read_bytes() == body
    assert sorted(p.name for p in directory.iterdir()) == ["a.bin"]
