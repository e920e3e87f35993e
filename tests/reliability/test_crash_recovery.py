"""A downloading process killed with SIGKILL at chosen points, then run again.

Each case runs ``regisseur download`` for several files from a local server
in a child process that kills itself at one point (a commit, a flush of
record updates, a rename, mid-stream), then runs it again on the same
database and directory and checks: every record is there (one per URL),
every file is complete and correct (SHA-256), no file was published that is
partial or wrong, no ``.part`` is left, and the database is intact.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.cli.download import DB_NAME

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("crash_child.py")
FILES = 4
SIZE = 1024 * 1024
CHUNK = 64 * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``/f<N>.bin`` with Range support, paced so a run takes a while."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = self.server.bodies.get(name)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged:
            start = int(ranged.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", f'"{name}-v1"')
        self.end_headers()
        try:
            for offset in range(start, len(body), CHUNK):
                if self.server.closing.wait(0.005):  # pacing, not a wait for the test
                    return
                self.wfile.write(body[offset : offset + CHUNK])
        except OSError:
            return

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.bodies = {f"f{n}.bin": os.urandom(SIZE) for n in range(FILES)}
        self.closing = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, name="regisseur:test-http")
    thread.start()
    try:
        yield httpd
    finally:
        httpd.closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _run(point: str, nth: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), point, str(nth), "--", "download", "--plain", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("point", "nth"),
    [
        ("commit", 3),  # during a transition write (the keeper's group commit)
        ("commit", 6),
        ("flush", 2),  # during a write of record updates (progress, transitions)
        ("report", 12),  # mid-stream, some bytes in the .part files
        ("splice", 3),  # mid-stream on the splice(2) path (1 MiB plain-HTTP bodies)
        ("rename", 1),  # a finished download about to be moved into place
        ("rename", 3),
    ],
)
def test_a_killed_download_process_recovers_on_the_next_run(
    server: _Server, tmp_path: Path, point: str, nth: int
) -> None:
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/files/{name}" for name in sorted(server.bodies)]
    out = tmp_path / "out"
    args = [*urls, "-o", str(out), "-j", "2"]

    killed = _run(point, nth, args)
    assert killed.returncode == -9, (
        f"the crash point was not reached: {killed.stdout}{killed.stderr}"
    )

    again = _run("none", 0, args)
    assert again.returncode == 0, again.stdout + again.stderr

    expected = {hashlib.sha256(body).hexdigest() for body in server.bodies.values()}
    published = [p for p in out.iterdir() if p.is_file() and not p.name.startswith(".")]
    assert not [p for p in published if p.suffix in (".part", ".meta")], "leftover partial files"
    for path in published:  # nothing partial or wrong was ever published
        assert hashlib.sha256(path.read_bytes()).hexdigest() in expected, path.name

    database = out / DB_NAME
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = connection.execute(
            "SELECT target_id, state, file_path FROM regisseur_downloads"
        ).fetchall()
    by_url: dict[str, list[tuple[str, str | None]]] = {}
    for target, state, file_path in rows:
        by_url.setdefault(target, []).append((state, file_path))
    assert sorted(by_url) == sorted(urls), "every record is there"
    for url, records in by_url.items():
        assert len(records) == 1, f"{url} was submitted again: {records}"
        state, file_path = records[0]
        assert state == "Completed, Succeeded", (url, state)
        assert file_path is not None
        body = server.bodies[url.rsplit("/", 1)[-1]]
        assert Path(file_path).read_bytes() == body, f"{url} -> {file_path} is wrong"
