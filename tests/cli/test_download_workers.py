"""``regisseur download -j N``: how many downloads run at once, across runs.

A run starts only as many workers as its URLs need (up to ``-j``), and
grows to ``-j`` when an earlier run left downloads unfinished: those are
resumed beside the new ones, all at once. The server proves "at once": each
answer waits at a barrier until every expected request is in flight, and a
barrier that times out answers 503.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15.0
SIZE = 1024 * 1024
FIRST = 256 * 1024  # the HttpSource's chunk size: the client writes it at once


class _Handler(http.server.BaseHTTPRequestHandler):
    """Any ``/NAME.bin``: SIZE bytes, with Range.

    While ``server.hold`` is set, a full answer sends FIRST bytes and waits
    for ``server.release`` (so a run can be interrupted midway). Otherwise
    every answer first waits at ``server.barrier``.
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        server = self.server
        if not server.hold.is_set():
            try:
                server.barrier.wait(WAIT)
            except threading.BrokenBarrierError:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = server.body
        ranged = self.headers.get("Range")
        start = int(ranged.removeprefix("bytes=").split("-")[0]) if ranged else 0
        if ranged:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        try:
            if server.hold.is_set():
                self.wfile.write(body[:FIRST])
                self.wfile.flush()
                server.release.wait(WAIT)
                return
            self.wfile.write(body[start:])
        except OSError:  # the client went away (interrupted)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.body = os.urandom(SIZE)
        self.hold = threading.Event()
        self.release = threading.Event()
        self.barrier = threading.Barrier(1)
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}.bin"


@pytest.fixture
def server() -> Iterator[_Server]:
    served = _Server()
    thread = threading.Thread(
        target=served.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http"
    )
    thread.start()
    try:
        yield served
    finally:
        served.release.set()
        served.barrier.abort()
        served.shutdown()
        served.server_close()
        thread.join(WAIT)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "regisseur.cli", "download", *args]


def _wait_for_parts(out_dir: Path, count: int) -> None:
    """Bounded poll of what the other process leaves behind (no event to wait on)."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while sum(1 for p in out_dir.glob("*.part") if p.stat().st_size >= FIRST) < count:
        assert time.monotonic() < deadline, f"timed out waiting for {count} .part files"
        pause.wait(0.01)


@pytest.mark.timeout(90)
def test_unfinished_downloads_run_beside_the_new_one_up_to_jobs(
    server: _Server, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    held = [server.url(f"held{i}") for i in range(3)]
    server.hold.set()
    first = subprocess.Popen(
        _cli(*held, "-o", str(out_dir), "-j", "3", "--plain"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_parts(out_dir, 3)  # all three started: -j 3 ran them at once
        first.send_signal(signal.SIGINT)
        _out, err = first.communicate(timeout=WAIT)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 130, err
    assert "interrupted: 3 partial file(s) kept" in err

    # One new URL, -j 4: the three resumed downloads and the new one must
    # all be in flight together, or the barrier breaks and the server says 503.
    server.barrier = threading.Barrier(4)
    server.hold.clear()
    fresh = server.url("fresh")
    again = subprocess.run(
        _cli(fresh, "-o", str(out_dir), "-j", "4", "--retries", "0", "--plain"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    for url in held:
        assert f"resuming {url}" in again.stderr
    for name in ("held0", "held1", "held2", "fresh"):
        assert (out_dir / f"{name}.bin").read_bytes() == server.body
    assert "4 of 4 download(s) done" in again.stderr
