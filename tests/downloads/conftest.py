"""Fixtures for the download tests: a local HTTP server and a fetch harness.

``http_server`` is a ``ThreadingHTTPServer`` on 127.0.0.1 (random port) in a
thread; each test installs the routes it needs (``file``, ``status``,
``sequence`` or any handler function) and may read back the requests the
server saw. Handlers that must wait do so on a ``gate()`` event the test
sets (all gates are opened at teardown); nothing sleeps. The server, its
thread and every handler thread are stopped and joined at teardown, and
their names start with ``regisseur:`` so the suite's leak guard checks them.

``harness`` runs :meth:`HttpSource.fetch` directly with a hand-built
``DownloadContext`` on a ``ManualClock`` whose timers record every wait
scheduled (``harness.timers.next_wait()``), so a test can advance the clock
exactly when the download sleeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import itertools
import queue
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.clock import ManualClock, Timers
from regisseur.actors.downloads.context import CancelToken, DownloadContext
from regisseur.actors.downloads.http import HttpSource
from regisseur.actors.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

    from regisseur.actors.clock import TimerHandle
    from regisseur.messages.downloads import ReportProgress

WAIT = 5.0  # seconds: the bound on every wait in these tests


# -- the HTTP server ----------------------------------------------------------


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]


class Request:
    """What a route handler gets: the request and ways to answer it."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler
        self.path = handler.path
        self.headers = handler.headers

    def head(self, status: int, headers: dict[str, str] | None = None) -> None:
        """Send the status line and headers (add Content-Length yourself).

        No automatic ``Date``/``Server`` headers: a route sends what it needs.
        """
        self._handler.log_request(status)
        self._handler.send_response_only(status)
        for key, value in (headers or {}).items():
            self._handler.send_header(key, value)
        self._handler.end_headers()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """A complete answer with a Content-Length."""
        self.head(status, {"Content-Length": str(len(body)), **(headers or {})})
        self.write(body)

    def raw(self, data: bytes) -> None:
        """Send ``data`` as it is, in one write (e.g. a head and its body together)."""
        self._handler.log_request(200)
        self.write(data)

    def close(self) -> None:
        """Close the connection after this answer (e.g. after a cut body)."""
        self._handler.close_connection = True
        self._handler.wfile.flush()
        with contextlib.suppress(OSError):
            self._handler.connection.shutdown(socket.SHUT_WR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between writes
    timeout = WAIT  # an idle keep-alive connection ends after this
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.owner.record(Seen(self.path, dict(self.headers.items())))
        route = self.server.owner.routes.get(path)
        if route is None:
            Request(self).send(404, b"no such route")
            return
        route(Request(self))

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: HttpServer) -> None:
        self.owner = owner
        self.handler_threads: list[threading.Thread] = []
        self.connections: list[socket.socket] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="regisseur:test-http-handler",
            daemon=True,
        )
        self.handler_threads.append(thread)
        self.connections.append(request)
        thread.start()

    def drop_connections(self) -> None:
        """End every connection (idle keep-alive ones too) so handlers return."""
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def serve_bytes(
    request: Request,
    body: bytes,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    ranges: bool = True,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with ``body``, honouring ``Range`` and ``If-Range`` like a real server."""
    extra = dict(headers or {})
    if etag:
        extra["ETag"] = etag
    if last_modified:
        extra["Last-Modified"] = last_modified
    wanted = request.headers.get("Range")
    validator = request.headers.get("If-Range")
    fresh = validator is None or validator in (etag, last_modified)
    if ranges and wanted and fresh and wanted.startswith("bytes=") and wanted.endswith("-"):
        start = int(wanted[len("bytes=") : -1])
        if start >= len(body):
            request.send(416, headers={"Content-Range": f"bytes */{len(body)}", **extra})
            return
        window = f"bytes {start}-{len(body) - 1}/{len(body)}"
        request.send(206, body[start:], {"Content-Range": window, **extra})
        return
    request.send(200, body, extra)


class HttpServer:
    """The test server: routes, recorded requests and gates (HTTPS with ``tls``)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Callable[[Request], None]] = {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._gates: list[threading.Event] = []
        self._server = _Server(self)
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="regisseur:test-http-server",
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def route(self, path: str, handler: Callable[[Request], None]) -> str:
        """Install ``handler`` for ``path``; return the URL."""
        self.routes[path] = handler
        return self.url(path)

    def file(self, path: str, body: bytes, **options: Any) -> str:
        """Serve ``body`` at ``path`` (see :func:`serve_bytes` for options)."""
        return self.route(path, lambda request: serve_bytes(request, body, **options))

    def status(
        self, path: str, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> str:
        return self.route(path, lambda request: request.send(status, body, headers))

    def sequence(self, path: str, *handlers: Callable[[Request], None]) -> str:
        """Answer the n-th request with the n-th handler (the last one repeats)."""
        counter = itertools.count()

        def answer(request: Request) -> None:
            handlers[min(next(counter), len(handlers) - 1)](request)

        return self.route(path, answer)

    def gate(self) -> threading.Event:
        """An event a handler waits on (bounded); opened at teardown."""
        event = threading.Event()
        self._gates.append(event)
        return event

    def connection_count(self) -> int:
        """How many connections the server accepted so far."""
        return len(self._server.connections)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if path is None or s.path.split("?")[0] == path]

    def close(self) -> None:
        for gate in self._gates:
            gate.set()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        self._thread.join(WAIT)
        for thread in self._server.handler_threads:
            thread.join(WAIT)


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every name a publish tries to claim, in order (the renames still happen)."""
    from regisseur.actors.downloads import names

    tried: list[Path] = []
    rename = names.rename_noreplace

    def counted(source: Path, target: Path) -> bool:
        tried.append(target)
        return rename(source, target)

    monkeypatch.setattr(names, "rename_noreplace", counted)
    return tried


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: ``(cert.pem, key.pem)``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[HttpServer]:
    """Like ``http_server``, over TLS with the self-signed ``certificate``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = HttpServer(tls=context)
    yield server
    server.close()


# -- the fetch harness ---------------------------------------------------------


class RecordingTimers(Timers):
    """Timers that report every ``call_later`` delay to the test."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock, name="test-timers")
        self.waits: queue.Queue[float] = queue.Queue()

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        handle = super().call_later(delay, callback)
        self.waits.put(delay)  # after scheduling: advancing now fires it
        return handle

    def next_wait(self, timeout: float = WAIT) -> float:
        """The delay of the next wait a download schedules (blocks, bounded)."""
        try:
            return self.waits.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no wait was scheduled within {timeout}s")


@dataclass
class Running:
    """A fetch running on a helper thread."""

    thread: threading.Thread
    token: CancelToken
    outcome: dict[str, Any] = field(default_factory=dict)

    def result(self, timeout: float = WAIT) -> str:
        """The fetch's path; re-raises its exception. Fails if still running."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.token.cancel("stopping")
            pytest.fail(f"the download did not end within {timeout}s")
        if "error" in self.outcome:
            raise self.outcome["error"]
        return str(self.outcome["path"])


class Harness:
    """Builds contexts and runs fetches against the ManualClock."""

    def __init__(self, directory: Path) -> None:
        self.clock = ManualClock()
        self.timers = RecordingTimers(self.clock)
        self.timers.start()
        self.directory = directory
        self.progress: list[ReportProgress] = []
        self._progress_cond = threading.Condition()
        self._sessions: list[requests.Session] = []
        self._threads: list[Running] = []
        self._ids = itertools.count(1)

    def source(self, **options: Any) -> HttpSource:
        options.setdefault("directory", self.directory)
        return HttpSource(**options)

    def _send(self, progress: ReportProgress) -> None:
        with self._progress_cond:
            self.progress.append(progress)
            self._progress_cond.notify_all()

    def wait_progress(
        self, at_least: int, download_id: str | None = None, timeout: float = WAIT
    ) -> None:
        """Block until a progress report of ``at_least`` bytes arrived.

        The first report of a download comes once its part file is open.
        """

        def arrived() -> bool:
            return any(
                p.transferred >= at_least and download_id in (None, p.id) for p in self.progress
            )

        with self._progress_cond:
            if not self._progress_cond.wait_for(arrived, timeout):
                pytest.fail(f"no progress report of {at_least} bytes within {timeout}s")

    def session(self, source: HttpSource) -> requests.Session:
        session = source.open_session()
        self._sessions.append(session)
        return session

    def context(
        self,
        source: HttpSource,
        url: str,
        *,
        download_id: str | None = None,
        display_name: str = "display.bin",
        original_filename: str | None = None,
        extra: dict[str, Any] | None = None,
        token: CancelToken | None = None,
        session: requests.Session | None = None,
        check_owner: Callable[[], bool] | None = None,
        claim: int = 1,
        earlier_claim: int = 0,
    ) -> DownloadContext:
        download_id = download_id or f"{next(self._ids):032x}"
        return DownloadContext(
            download_id=download_id,
            target_id=url,
            display_name=display_name,
            original_filename=original_filename,
            extra=extra or {},
            destination=source.directory,
            worker_state=session if session is not None else self.session(source),
            token=token or CancelToken(),
            timers=self.timers,
            send=self._send,
            log=get_logger("regisseur.downloads.test").bind(download=download_id),
            claim=claim,
            check_owner=check_owner,
            earlier_claim=earlier_claim,
        )

    def fetch(self, source: HttpSource, url: str, **options: Any) -> str:
        """Run the impl on this thread; return its path."""
        ctx = self.context(source, url, **options)
        return source.fetch(ctx.download_id, url, ctx.display_name, ctx)

    def start(self, source: HttpSource, url: str, **options: Any) -> Running:
        """Run the impl on a helper thread (``.result()`` joins it, bounded)."""
        token = options.setdefault("token", CancelToken())
        ctx = self.context(source, url, **options)
        running = Running(threading.Thread(target=lambda: None), token)

        def run() -> None:
            try:
                running.outcome["path"] = source.fetch(ctx.download_id, url, ctx.display_name, ctx)
            except BaseException as exc:  # handed to the test thread
                running.outcome["error"] = exc

        running.thread = threading.Thread(target=run, name="regisseur:test-fetch")
        running.thread.start()
        self._threads.append(running)
        return running

    def files(self) -> list[str]:
        """The names in the download directory, sorted."""
        if not self.directory.exists():
            return []
        return sorted(path.name for path in self.directory.iterdir())

    def close(self) -> None:
        for running in self._threads:
            running.token.cancel("stopping")
            running.thread.join(WAIT)
        for session in self._sessions:
            session.close()
        self.timers.close()


@pytest.fixture
def harness(tmp_path: Path, http_server: HttpServer) -> Iterator[Harness]:
    """A fetch harness (set up after, and closed before, the HTTP server)."""
    kit = Harness(tmp_path / "downloads")
    yield kit
    kit.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
