"""Two ``regisseur download`` processes on one output directory, the second
started while the first is mid-download.

Shared by ``tests/reliability/test_two_writers.py`` (one round of each
kind in CI) and ``bench/bench_two_writers.py`` (many rounds, counts).

One round (:func:`run_round`):

1. the server holds the first full answer of ``/a.bin`` after ``FIRST``
   bytes (the rest of every body is paced), so the first run is
   mid-download for as long as the round needs;
2. run A starts downloading its URLs into ``DIR``; once A's ``.part`` of
   ``a.bin`` holds the first bytes, run B starts on the same ``DIR`` (same
   database) with its URLs: ``same`` (both ``a.bin``), ``different``
   (A ``a.bin``, B ``b.bin``) or ``mixed`` (A ``a.bin`` and ``b.bin``, B
   ``a.bin`` and ``c.bin``); or ``together``: both runs start at the same
   moment, both wanting ``a.bin``;
3. once B has planned (it printed a line about ``a.bin``, or it finished
   its own downloads) the server lets ``a.bin`` go; both runs end;
4. :func:`check` counts what a user would call broken: a published file
   whose SHA-256 differs from the server's body (corrupt), a URL published
   twice (a second file, or two Succeeded records), a record Errored
   although its file is complete, a ``.part``/``.meta``/temporary file
   left, a run that did not exit 0, a URL without exactly one Succeeded
   record.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = ".regisseur-downloads.db"
WAIT = 30.0
SIZE = 2 * 1024 * 1024
FIRST = 256 * 1024  # the HttpSource's chunk size: the client writes it at once
CHUNK = 64 * 1024
PACE = 0.002  # seconds between two chunks of a body (pacing, not a wait for a test)

MODES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "same": (("a.bin",), ("a.bin",)),
    "different": (("a.bin",), ("b.bin",)),
    "mixed": (("a.bin", "b.bin"), ("a.bin", "c.bin")),
    "together": (("a.bin",), ("a.bin",)),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        server = self.server
        name = self.path.rsplit("/", 1)[-1]
        body = server.bodies.get(name)
        ranged = self.headers.get("Range")
        with server.lock:
            server.requests.append((name, ranged))
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = int(ranged.removeprefix("bytes=").split("-")[0]) if ranged else 0
        if ranged:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", f'"{name}-v1"')
        self.end_headers()
        try:
            if start == 0 and name in server.held and not server.gate.is_set():
                first = server.first
                self.wfile.write(body[:first])
                self.wfile.flush()
                server.sent_first(name).set()
                server.gate.wait(WAIT)
                start = first
            for offset in range(start, len(body), CHUNK):
                if server.closing.wait(PACE):
                    return
                self.wfile.write(body[offset : offset + CHUNK])
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return


class Server(http.server.ThreadingHTTPServer):
    """The files ``a.bin``, ``b.bin``, ``c.bin`` (random, new per round)."""

    daemon_threads = True

    def __init__(self, size: int = SIZE, first: int = FIRST) -> None:
        self.size = size
        self.first = first  # bytes a held answer sends before it holds
        self.bodies: dict[str, bytes] = {}
        self.held = {"a.bin"}  # first full answers held after FIRST bytes until ``gate``
        self.gate = threading.Event()
        self._first_sent: dict[str, threading.Event] = {}
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.new_round()

    def new_round(self) -> None:
        self.bodies = {name: os.urandom(self.size) for name in ("a.bin", "b.bin", "c.bin")}
        self.gate.clear()
        with self.lock:
            self._first_sent.clear()
            self.requests.clear()

    def sent_first(self, name: str) -> threading.Event:
        """Set once a held answer of ``name`` has sent its first bytes."""
        with self.lock:
            return self._first_sent.setdefault(name, threading.Event())

    def fetched(self, name: str) -> list[str | None]:
        """The ``Range`` header of each request for ``name`` so far (None: whole)."""
        with self.lock:
            return [ranged for n, ranged in self.requests if n == name]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


def serve(size: int = SIZE, first: int = FIRST) -> Iterator[Server]:
    """A running :class:`Server` (a generator for a fixture or ``contextlib``)."""
    server = Server(size, first)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="two-writers-http"
    )
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll what another process leaves behind, with a deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what}"
            raise TimeoutError(msg)
        pause.wait(0.01)


@dataclass
class Round:
    """What one round left behind, counted (see the module docstring)."""

    mode: str
    codes: tuple[int | None, int | None] = (None, None)
    corrupt: int = 0
    double_publish: int = 0
    errored_with_complete_file: int = 0
    stray: list[str] = field(default_factory=list)
    not_exactly_one_success: int = 0
    outputs: tuple[str, str] = ("", "")

    @property
    def ok(self) -> bool:
        return (
            self.codes == (0, 0)
            and not self.corrupt
            and not self.double_publish
            and not self.errored_with_complete_file
            and not self.stray
            and not self.not_exactly_one_success
        )


def _start(urls: list[str], directory: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "regisseur.cli", "download", *urls]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "-o", str(directory), "--plain"], cwd=ROOT, stdout=out, stderr=out
        )


def run_round(server: Server, mode: str, directory: Path) -> Round:
    """One round of ``mode`` in the empty ``directory``; the counts."""
    server.new_round()
    first_names, second_names = MODES[mode]
    directory.mkdir(parents=True, exist_ok=True)
    logs = (
        directory.parent / f"{directory.name}-a.log",
        directory.parent / f"{directory.name}-b.log",
    )
    first = _start([server.url(n) for n in first_names], directory, logs[0])
    second: subprocess.Popen[bytes] | None = None
    if mode == "together":
        second = _start([server.url(n) for n in second_names], directory, logs[1])
    try:
        wait_until(server.sent_first("a.bin").is_set, "the first run's first bytes")
        wait_until(
            lambda: any(p.stat().st_size >= FIRST for p in directory.glob("a.bin*.part")),
            "the first bytes in the first run's .part",
        )
        if second is None:
            second = _start([server.url(n) for n in second_names], directory, logs[1])

        def planned() -> bool:
            if mode == "together":  # one of the two waits for the other
                return any("waiting for " in log.read_text(errors="replace") for log in logs)
            said = logs[1].read_text(errors="replace")
            return "a.bin" in said or second is None or second.poll() is not None

        wait_until(planned, "the second run's plan")
        server.gate.set()
        codes = (first.wait(WAIT), second.wait(WAIT))
    finally:
        server.gate.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    result = Round(mode, codes, outputs=(logs[0].read_text(), logs[1].read_text()))
    check(server, directory, sorted({*first_names, *second_names}), result)
    return result


def check(server: Server, directory: Path, names: list[str], result: Round) -> None:
    """Fill ``result``'s counts from ``directory`` and its database."""
    digests = {n: hashlib.sha256(server.bodies[n]).hexdigest() for n in names}
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(DB_NAME)
    }
    result.stray = sorted(n for n in files if n.endswith((".part", ".meta", ".tmp")))
    for name in names:
        published = [
            f for f in files if f == name or f.startswith(name.removesuffix(".bin") + " (")
        ]
        if len(published) > 1:
            result.double_publish += 1
        result.corrupt += sum(1 for f in published if files[f] != digests[name])
    with sqlite3.connect(directory / DB_NAME) as db:
        rows = db.execute("SELECT target_id, state, file_path FROM regisseur_downloads").fetchall()
    for name in names:
        url = server.url(name)
        mine = [(state, path) for target, state, path in rows if target == url]
        succeeded = [p for s, p in mine if s == "Completed, Succeeded"]
        if len(succeeded) != 1:
            result.not_exactly_one_success += 1
        if len(succeeded) > 1:
            result.double_publish += 1
        complete = files.get(name) == digests[name]
        result.errored_with_complete_file += sum(1 for s, _ in mine if s == "Errored" and complete)
