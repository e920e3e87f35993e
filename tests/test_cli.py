"""The command line: ``regisseur demo``, ``download`` and ``status``, as subprocesses."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10.0
SIZE = 3 * 1024 * 1024
FIRST = 256 * 1024


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "actors.cli", *args]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Bounded wait on a condition in another process (there is no event to wait on)."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.01)


# -- demo ----------------------------------------------------------------------------


def test_demo_plain_shows_every_part_and_exits_0() -> None:
    result = run("demo", "--plain")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    delays = [float(d) for d in re.findall(r"ChildRestarting flaky-server delay=([\d.]+)", out)]
    assert delays == [0.5, 1.0, 2.0], "restarts with growing backoff"
    assert re.search(
        r"Download missing\.bin Errored: HTTP 404 Not Found: http://127\.0\.0\.1:\d+/", out
    )
    assert "retrying" in out and "Download flaky.bin Completed, Succeeded" in out
    assert "Download slow.bin Cancelled" in out
    assert "ChildGaveUp doomed error=FatalError" in out
    assert "reporter: paused" in out
    assert "summary: downloads" in out and "summary: supervision tree" in out
    assert re.search(r"flaky-server\s+running\s+restarts=3", out)
    assert "no thread left behind" in out


def test_demo_json_prints_one_json_object_per_line() -> None:
    result = run("demo", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    kinds = {line["event"] for line in lines}
    assert {"ChildStarted", "ChildRestarting", "DownloadStateChanged", "summary"} <= kinds
    summary = next(line for line in lines if line["event"] == "summary")
    states = {d["filename"]: d["state"] for d in summary["downloads"]}
    assert states["missing.bin"] == "Errored"
    assert states["slow.bin"] == "Cancelled"
    assert states["alpha.bin"] == "Completed, Succeeded"


def test_ctrl_c_ends_the_demo_within_a_second_or_two() -> None:
    process = subprocess.Popen(
        cli("demo", "--plain"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # wait until the system is up and working
            if "submitting" in line:
                break
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = process.communicate(timeout=WAIT)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, out + err
    assert took < 3.0
    assert "Traceback" not in out + err
    assert "interrupted" in out


# -- download and status ------------------------------------------------------------


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``/big.bin`` (with Range) and 404 for anything else.

    The first full answer stops after FIRST bytes until ``gate`` is set.
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        server = self.server
        if not self.path.endswith("/big.bin"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = server.body
        start = 0
        ranged = self.headers.get("Range")
        server.ranges.append(ranged)
        if ranged:
            start = int(ranged.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        try:
            if start == 0 and not server.gate.is_set():
                self.wfile.write(body[:FIRST])
                self.wfile.flush()
                server.gate.wait(WAIT)
                start = FIRST
            self.wfile.write(body[start:])
        except OSError:
            return

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.body = os.urandom(SIZE)
        self.gate = threading.Event()
        self.ranges: list[str | None] = []
        super().__init__(("127.0.0.1", 0), _Files)


@pytest.fixture
def files() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, name="regisseur:test-http")
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def test_download_is_interrupted_by_ctrl_c_and_resumes(files: _Server, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{files.server_address[1]}/data/big.bin"
    out_dir = tmp_path / "out"
    process = subprocess.Popen(
        cli("download", url, "-o", str(out_dir), "--plain"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def part_has_bytes() -> bool:
            return any(p.stat().st_size > 0 for p in out_dir.glob("*.part"))

        wait_until(part_has_bytes, "a .part file with the first bytes")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, out + err
    assert "Traceback" not in err
    assert list(out_dir.glob("*.part")), "the partial file is kept for the next run"

    files.gate.set()
    expected = hashlib.sha256(files.body).hexdigest()
    again = run("download", url, "-o", str(out_dir), "--plain", "--sha256", expected)
    assert again.returncode == 0, again.stdout + again.stderr
    final = out_dir / "big.bin"
    assert hashlib.sha256(final.read_bytes()).hexdigest() == expected
    assert any(r and r.startswith("bytes=") and r != "bytes=0-" for r in files.ranges), (
        f"the second run resumed with a Range request: {files.ranges}"
    )
    assert not list(out_dir.glob("*.part"))

    # A third run finds it done and fetches nothing.
    asked = len(files.ranges)
    third = run("download", url, "-o", str(out_dir), "--plain")
    assert third.returncode == 0
    assert "already downloaded" in third.stdout
    assert len(files.ranges) == asked

    status = run("status", "--db", f"sqlite:///{out_dir / '.regisseur.db'}", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    [record] = data["downloads"]
    assert record["state"] == "Completed, Succeeded"
    assert record["file_path"] == str(final)
    assert record["size"] == SIZE
    assert any(e["event"] == "ChildStarted" for e in data["events"])


def test_a_failed_download_exits_1_with_one_line_per_failure(
    files: _Server, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{files.server_address[1]}"
    result = run("download", f"{base}/nope.bin", f"{base}/gone.bin", "-o", str(tmp_path))
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2
    assert all("HTTP 404" in line for line in failed)


def test_bad_download_arguments_exit_2(tmp_path: Path) -> None:
    result = run("download", "http://a/x", "http://a/y", "--sha256", "ab", "-o", str(tmp_path))
    assert result.returncode == 2
    assert "--sha256 needs exactly one URL" in result.stderr


def test_status_of_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run("status", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.returncode == 1
    assert "no database file" in result.stderr
    assert not (tmp_path / "none.db").exists()
