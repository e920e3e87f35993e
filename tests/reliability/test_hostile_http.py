"""``HttpSource`` against malformed URLs and a hostile HTTP server.

A raw socket server on 127.0.0.1 answers each request with exactly the
bytes a test gives it (lying or missing ``Content-Length``, broken chunked
encoding, endless redirects, a redirect to ``file://``, huge headers,
hostile ``Content-Disposition`` names, ...) and closes the connection. Each
download must end Errored with a clear message, or Succeeded with exactly
what the server sent, in a safe file inside the download directory; no
``.part`` file is left; and a good download still works afterwards.

Cases that found library bugs (all fixed) say so in a comment.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import HttpSource
from regisseur.messages import DownloadProgressed, DownloadRecord, DownloadState
from regisseur.supervision import Backoff

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WAIT = 5.0  # real seconds: the bound on every blocking wait here
SUCCEEDED = DownloadState.SUCCEEDED
ERRORED = DownloadState.ERRORED
CANCELLED = DownloadState.CANCELLED


# -- the raw server -------------------------------------------------------------------


class RawServer:
    """Answers each request on 127.0.0.1 with a route's raw bytes, then closes.

    Routes map a path to bytes (sent as they are) or to a function of the
    connection. ``seen`` records (path, lower-cased headers) of every request.
    Handlers that stall wait on :meth:`gate` events, all opened at close.
    Every thread is named ``regisseur:...`` and joined at close.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._gates: list[threading.Event] = []
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="regisseur:test-raw-server")
        self._acceptor.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, answer: Any) -> str:
        self.routes[path] = answer
        return self.url(path)

    def sequence(self, path: str, *answers: Any) -> str:
        """Answer the n-th request with the n-th answer (the last one repeats)."""
        counter = itertools.count()

        def answer(server: RawServer, connection: socket.socket) -> None:
            chosen = answers[min(next(counter), len(answers) - 1)]
            server.answer(chosen, connection)

        return self.route(path, answer)

    def gate(self) -> threading.Event:
        event = threading.Event()
        self._gates.append(event)
        return event

    def answer(self, answer: Any, connection: socket.socket) -> None:
        if isinstance(answer, bytes):
            connection.sendall(answer)
        else:
            answer(self, connection)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with self._lock:
                if self._closing:
                    connection.close()
                    return
                self._connections.append(connection)
                thread = threading.Thread(
                    target=self._serve, args=(connection,), name="regisseur:test-raw-connection"
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(WAIT)
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                head += data
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            with self._lock:
                self.seen.append((path, headers))
            answer = self.routes.get(path.split("?", 1)[0])
            if answer is None:
                answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            with contextlib.suppress(OSError):
                self.answer(answer, connection)
                connection.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with self._lock:
            self._closing = True
        for gate in self._gates:
            gate.set()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(WAIT)
        for thread in list(self._threads):
            thread.join(WAIT)


def http(
    status: str, headers: dict[str, str] | None = None, body: bytes = b"", *, length: bool = True
) -> bytes:
    """A raw response; ``Content-Length`` is added unless ``length=False``."""
    lines = [f"HTTP/1.1 {status}"]
    fields = dict(headers or {})
    if length and "Content-Length" not in fields:
        fields["Content-Length"] = str(len(body))
    fields.setdefault("Connection", "close")
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def redirect(location: str, status: str = "302 Found") -> bytes:
    return http(status, {"Location": location})


BODY = b"hello world"
GOOD = b"good body"


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    raw.route("/good", http("200 OK", body=GOOD))
    yield raw
    raw.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return (tmp_path / "downloads").resolve()


@contextlib.contextmanager
def http_system(folder: Path, **options: Any) -> Iterator[ActorSystem]:
    options.setdefault("retries", 0)
    options.setdefault("backoff", Backoff(initial=0))
    options.setdefault("connect_timeout", 2.0)
    options.setdefault("read_timeout", 2.0)
    options.setdefault("concurrency", 2)
    source = HttpSource(directory=folder, **options)
    with ActorSystem(
        database_url=None, backoff=Backoff(initial=0), download_sources=[source]
    ) as system:
        yield system


@pytest.fixture
def system(server: RawServer, folder: Path) -> Iterator[ActorSystem]:
    with http_system(folder) as running:
        yield running


def fetch(system: ActorSystem, url: str, **submit: Any) -> DownloadRecord:
    download = system.downloads.submit("http", url, "display name", **submit)
    return system.downloads.wait(download, timeout=WAIT * 2)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def still_works(system: ActorSystem, server: RawServer, folder: Path) -> None:
    """No partial file is left and a good download succeeds, inside ``folder``."""
    assert not [name for name in files(folder) if ".part" in name], files(folder)
    record = fetch(system, server.url("/good"))
    assert record.state is SUCCEEDED, record.error
    path = Path(record.file_path)
    assert path.parent == folder
    assert path.read_bytes() == GOOD
    assert system.running and system.healthy


# -- malformed URLs and unsupported schemes ------------------------------------------------

PORT = r"127\.0\.0\.1:\d+"

MALFORMED_URLS = [
    ("http//x", r"^malformed URL 'http//x': no scheme \(expected http:// or https://\)$"),
    ("http:/x", r"^malformed URL 'http:/x': no host$"),
    ("http://", r"^malformed URL 'http://': no host$"),
    ("http://[::1", r"^malformed URL 'http://\[::1': Invalid IPv6 URL$"),
    ("http://[not-an-ip]/", r"^malformed URL 'http://\[not-an-ip\]/'"),
    ("//127.0.0.1/x", r"^malformed URL '//127\.0\.0\.1/x': no scheme"),
    ("127.0.0.1/x", r"^malformed URL '127\.0\.0\.1/x': no scheme"),
    ("example.org", r"^malformed URL 'example\.org': no scheme"),
    ("http://a b/", r"^malformed URL 'http://a b/': empty, or contains whitespace"),
    ("http://x/\x00", r"^malformed URL 'http://x/\\x00': .*control characters"),
    ("http://x:99999/", r"^malformed URL 'http://x:99999/': Port out of range"),
    ("http://x:port/", r"^malformed URL 'http://x:port/'"),
    ("http://" + "a" * 300 + ".com/", r"^malformed URL 'http://a{300}\.com/'"),
    ("ftp://x/y", r"^unsupported URL scheme 'ftp' \(only http and https\): ftp://x/y$"),
    (
        "file:///etc/passwd",
        r"^unsupported URL scheme 'file' \(only http and https\): file:///etc/passwd$",
    ),
    ("javascript:alert(1)", r"^unsupported URL scheme 'javascript' \(only http and https\)"),
    ("data:text/plain,hi", r"^unsupported URL scheme 'data'"),
    ("mailto:a@example.org", r"^unsupported URL scheme 'mailto'"),
    ("gopher://x/", r"^unsupported URL scheme 'gopher'"),
    ("http://u:hunter2@[::1", r"^malformed URL 'http://u:\[REDACTED\]@\[::1': Invalid IPv6 URL$"),
    ("ftp://u:hunter2@x/y", r"^unsupported URL scheme 'ftp' .*ftp://u:\[REDACTED\]@x/y$"),
    (
        "http://127.0.0.1:1/x",
        r"^connection failed \(Connection refused\): http://127\.0\.0\.1:1/x$",
    ),
    ("HTTP://127.0.0.1:1/x", r"^connection failed \(Connection refused\)"),
    (
        "http://u:hunter2@127.0.0.1:1/x",
        r"^connection failed \(Connection refused\): http://u:\[REDACTED\]@127",
    ),
]


@pytest.mark.parametrize(
    ("url", "error"), MALFORMED_URLS, ids=[repr(u)[:40] for u, _ in MALFORMED_URLS]
)
def test_malformed_url_is_an_errored_record(
    system: ActorSystem, server: RawServer, folder: Path, url: str, error: str
) -> None:
    record = fetch(system, url)
    assert record.state is ERRORED
    assert re.search(error, record.error), record.error
    assert "hunter2" not in record.error
    assert record.file_path is None
    still_works(system, server, folder)


# -- hostile responses ----------------------------------------------------------------------


def stall_after(
    head: bytes, sent: threading.Event | None = None
) -> Callable[[RawServer, socket.socket], None]:
    """Send ``head`` (then set ``sent``), then nothing more until the server closes."""

    def answer(server: RawServer, connection: socket.socket) -> None:
        gate = server.gate()
        connection.sendall(head)
        if sent is not None:
            sent.set()
        gate.wait(WAIT * 2)

    return answer


OK = "200 OK"
CHUNKED = {"Transfer-Encoding": "chunked"}

# (route, answer, expected state, error pattern or expected body)
RESPONSES: list[Any] = [
    # bodies the client cannot check, taken as sent
    ("/no-length", http(OK, body=BODY, length=False), SUCCEEDED, BODY),
    ("/length-not-a-number", http(OK, {"Content-Length": "eleven"}, BODY), SUCCEEDED, BODY),
    ("/length-negative", http(OK, {"Content-Length": "-5"}, BODY), SUCCEEDED, BODY),
    ("/length-short", http(OK, {"Content-Length": "5"}, BODY), SUCCEEDED, b"hello"),
    (
        "/gzip-stored-as-sent",
        http(OK, {"Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip"),
        SUCCEEDED,
        b"\x1f\x8bnot gzip",
    ),
    (
        "/chunked",
        http(OK, CHUNKED, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", length=False),
        SUCCEEDED,
        BODY,
    ),
    (
        "/chunked-and-length",
        http(OK, {**CHUNKED, "Content-Length": "3"}, b"5\r\nhello\r\n0\r\n\r\n", length=False),
        SUCCEEDED,
        b"hello",
    ),
    (
        "/chunk-extensions",
        http(OK, CHUNKED, b"5;name=value\r\nhello\r\n0\r\n\r\n", length=False),
        SUCCEEDED,
        b"hello",
    ),
    ("/relative-redirect", redirect("/good"), SUCCEEDED, GOOD),
    ("/redirect-no-scheme-host", redirect("http:///good"), SUCCEEDED, GOOD),
    ("/status-203", http("203 Non-Authoritative Information", body=BODY), SUCCEEDED, BODY),
    # lying lengths and broken chunked encoding
    (
        "/length-long",
        http(OK, {"Content-Length": "5000"}, BODY),
        ERRORED,
        rf"^truncated: received 11 of 5000 bytes from http://{PORT}/length-long$",
    ),
    (
        "/length-huge",
        http(OK, {"Content-Length": "9" * 30}, BODY),
        ERRORED,
        rf"^truncated: received 11 of 9{{30}} bytes from http://{PORT}/length-huge$",
    ),
    (
        "/chunk-size-not-hex",
        http(OK, CHUNKED, b"5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n", length=False),
        ERRORED,
        rf"^connection lost after 5 bytes \(.*\): http://{PORT}/chunk-size-not-hex$",
    ),
    (
        "/chunk-cut",
        http(OK, CHUNKED, b"5\r\nhello\r\n10\r\nabc", length=False),
        ERRORED,
        # 8: the 3 bytes of the cut chunk count too (read as they arrive)
        rf"^connection lost after 8 bytes \(.*\): http://{PORT}/chunk-cut$",
    ),
    (
        "/chunk-no-last",
        http(OK, CHUNKED, b"5\r\nhello\r\n", length=False),
        ERRORED,
        rf"^connection lost after 5 bytes \(Response ended prematurely\): http://{PORT}/chunk-no-last$",
    ),
    (
        "/chunk-size-huge",
        http(OK, CHUNKED, b"f" * 40 + b"\r\nhello", length=False),
        ERRORED,
        rf"^connection lost after 0 bytes \(.*\): http://{PORT}/chunk-size-huge$",
    ),
    pytest.param(
        "/chunk-size-negative",
        http(OK, CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n", length=False),
        ERRORED,
        rf"^connection lost after 0 bytes \(.*\): http://{PORT}/chunk-size-negative$",
        id="/chunk-size-negative",
    ),
    # redirects
    (
        "/loop",
        redirect("/loop"),
        ERRORED,
        rf"^too many redirects \(more than 10\): http://{PORT}/loop$",
    ),
    (
        "/ping",
        redirect("/pong"),
        ERRORED,
        rf"^too many redirects \(more than 10\): http://{PORT}/ping$",
    ),
    ("/empty-location", redirect(""), ERRORED, r"^too many redirects"),
    (
        "/to-file",
        redirect("file:///etc/passwd"),
        ERRORED,
        rf"^redirect to unsupported scheme 'file' \(only http and https\): http://{PORT}/to-file -> file:///etc/passwd$",
    ),
    (
        "/to-file-host",
        redirect("file://localhost/etc/shadow"),
        ERRORED,
        r"^redirect to unsupported scheme 'file'",
    ),
    (
        "/to-javascript",
        redirect("javascript:alert(1)"),
        ERRORED,
        r"^redirect to unsupported scheme 'javascript'",
    ),
    (
        "/to-ftp-with-password",
        redirect("ftp://u:hunter2@example.org/x"),
        ERRORED,
        r"^redirect to unsupported scheme 'ftp' .* -> ftp://u:\[REDACTED\]@example\.org/x$",
    ),
    (
        "/to-data",
        redirect("data:text/plain,owned"),
        ERRORED,
        r"^redirect to unsupported scheme 'data'",
    ),
    ("/to-no-host", redirect("https://"), ERRORED, r"^redirect without a host: "),
    (
        "/redirect-without-location",
        http("302 Found"),
        ERRORED,
        rf"^HTTP 302 Found: http://{PORT}/redirect-without-location$",
    ),
    (
        "/permanent-loop",
        redirect("/permanent-loop", "308 Permanent Redirect"),
        ERRORED,
        r"^too many redirects",
    ),
    # broken heads
    (
        "/huge-header",
        http(OK, {"X-Big": "a" * 200_000}, BODY),
        ERRORED,
        rf"^connection failed \(.*\): http://{PORT}/huge-header$",
    ),
    (
        "/many-headers",
        http(OK, {f"X-{i}": "a" for i in range(500)}, BODY),
        ERRORED,
        rf"^connection failed \(.*\): http://{PORT}/many-headers$",
    ),
    (
        "/huge-status-line",
        b"HTTP/1.1 200 " + b"O" * 100_000 + b"\r\n\r\n",
        ERRORED,
        r"^connection failed \(.*\): ",
    ),
    ("/bad-status-line", b"HTTP/1.1 abc\r\n\r\n", ERRORED, r"^connection failed \(.*\): "),
    ("/not-http", b"\x00\x01\x02 hello\r\n\r\n", ERRORED, r"^connection failed \(.*\): "),
    ("/http-0.9", b"hello world", ERRORED, r"^connection failed \(.*\): "),
    (
        "/nothing",
        b"",
        ERRORED,
        r"^connection failed \(.*Remote end closed connection without response.*\): ",
    ),
    (
        "/header-without-colon",
        b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 11\r\n\r\nhello world",
        SUCCEEDED,
        BODY,
    ),
    # statuses
    ("/status-999", http("999 Weird"), ERRORED, rf"^HTTP 999 Weird: http://{PORT}/status-999$"),
    (
        "/status-no-reason",
        b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
        ERRORED,
        rf"^HTTP 404 Not Found: http://{PORT}/status-no-reason$",
    ),
    ("/status-418", http("418 I'm a teapot", body=b"tea"), ERRORED, r"^HTTP 418 I'm a teapot: "),
    (
        "/status-500",
        http("500 Internal Server Error"),
        ERRORED,
        r"^HTTP 500 Internal Server Error: ",
    ),
    (
        "/status-429-retry-after-forever",
        http("429 Too Many Requests", {"Retry-After": "9" * 400}),
        ERRORED,
        r"^HTTP 429 Too Many Requests: ",
    ),
    (
        "/status-206-unasked",
        http("206 Partial Content", {"Content-Range": "bytes 0-4/11"}, b"hello"),
        ERRORED,
        r"^HTTP 206 Partial Content: ",
    ),
]


def _plain(entry: Any) -> tuple[Any, ...]:
    return tuple(entry.values) if hasattr(entry, "values") else entry


@pytest.mark.parametrize(
    ("path", "answer", "state", "expected"),
    [e if hasattr(e, "values") else pytest.param(*e, id=e[0]) for e in RESPONSES],
)
def test_hostile_response(
    system: ActorSystem,
    server: RawServer,
    folder: Path,
    path: str,
    answer: bytes,
    state: DownloadState,
    expected: Any,
) -> None:
    server.route(path, answer)
    server.route("/pong", redirect("/ping"))
    record = fetch(system, server.url(path))
    assert record.state is state, record.error
    if state is SUCCEEDED:
        result = Path(record.file_path)
        assert result.parent == folder
        assert result.read_bytes() == expected
    else:
        assert re.search(expected, record.error), record.error
        assert "hunter2" not in record.error
        assert record.file_path is None
    still_works(system, server, folder)


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize(
    ("path", "answer", "wanted"),
    [
        pytest.param(
            "/two-lengths",
            http(OK, {"Content-Length": "11", "content-length": "20"}, BODY, length=False),
            r"Content-Length",
            id="conflicting-content-length",
        ),
        pytest.param(
            "/bad-location",
            redirect("http://[::1"),
            r"redirect",
            id="malformed-location",
        ),
    ],
)
def test_response_errors_are_not_blamed_on_the_url(
    system: ActorSystem, server: RawServer, folder: Path, path: str, answer: bytes, wanted: str
) -> None:
    server.route(path, answer)
    record = fetch(system, server.url(path))
    assert record.state is ERRORED
    assert not record.error.startswith("malformed URL"), record.error
    assert re.search(wanted, record.error), record.error
    still_works(system, server, folder)


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        pytest.param("/refused", None, id="connection-refused"),
        pytest.param(
            "/no-last-chunk", http(OK, CHUNKED, b"5\r\nhello\r\n", length=False), id="no-last-chunk"
        ),
        pytest.param(
            "/bad-status",
            b"HTTP/1.1 abc\r\n\r\n",
            id="bad-status-line",
        ),
        pytest.param(
            "/huge-header",
            http(OK, {"X-Big": "a" * 100_000}, BODY),
            id="huge-header",
        ),
        pytest.param(
            "/chunk-not-hex",
            http(OK, CHUNKED, b"5\r\nhello\r\nzz\r\n", length=False),
            id="chunk-size-not-hex",
        ),
    ],
)
def test_error_texts_are_readable(
    system: ActorSystem, server: RawServer, folder: Path, path: str, answer: bytes | None
) -> None:
    url = "http://127.0.0.1:1/refused" if answer is None else server.route(path, answer)
    record = fetch(system, url)
    assert record.state is ERRORED
    assert _balanced(record.error), record.error
    assert "\\r" not in record.error and "\\n" not in record.error, record.error
    still_works(system, server, folder)


# -- hostile server options: stalls, sizes, Retry-After ----------------------------------------


def test_a_stalled_body_times_out(server: RawServer, folder: Path) -> None:
    url = server.route("/stall", stall_after(http(OK, {"Content-Length": "100"}) + b"hello"))
    with http_system(folder, read_timeout=0.3, chunk_size=1) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert re.fullmatch(
            rf"read timed out after 0\.3s: received 5 of 100 bytes from http://{PORT}/stall",
            record.error,
        ), record.error
        still_works(system, server, folder)


STALLED_CLOSE = (
    "a cancel or a stop does not end a read stalled mid-body when the server sent "
    "'Connection: close': http.client then detaches the socket from the connection "
    "(conn.sock is None), so _abort() finds no socket to shut down and the worker stays "
    "blocked until read_timeout (30 s by default) - a cancelled download keeps its worker, "
    "and system.stop() overruns shutdown_timeout and abandons the thread "
    "(actors/downloads/_http_fetch.py _abort: also try the response's own socket, "
    "response.raw._fp.fp.raw._sock, or keep the socket when the request is sent)"
)


@pytest.mark.parametrize(
    "connection",
    [
        "keep-alive",
        pytest.param(
            "close",
        ),
    ],
)
@pytest.mark.parametrize("action", ["cancel", "stop"])
def test_a_stalled_read_ends_at_once(
    server: RawServer, folder: Path, action: str, connection: str
) -> None:
    sent = threading.Event()
    head = http(OK, {"Content-Length": "100", "Connection": connection}) + b"hello"
    url = server.route("/stall", stall_after(head, sent))
    # One worker and a read timeout far beyond the bounds checked below.
    system = ActorSystem(
        database_url=None,
        download_sources=[HttpSource(directory=folder, concurrency=1, retries=0, read_timeout=1.5)],
    )
    reading = threading.Event()  # the worker reports progress, then blocks reading
    with (
        system,
        system.downloads.subscribe(
            lambda event: reading.set() if isinstance(event, DownloadProgressed) else None
        ),
    ):
        download = system.downloads.submit("http", url, "stalled")
        assert sent.wait(WAIT)
        assert reading.wait(WAIT)
        started = time.monotonic()
        if action == "stop":
            system.stop()
            assert time.monotonic() - started < 0.75, "stop() waited for the stalled read"
            assert system.threads() == []
            return
        assert system.downloads.cancel(download) is True
        assert system.downloads.wait(download, WAIT).state is CANCELLED
        system.settle(0.75)  # TimeoutError while the worker is still blocked
        still_works(system, server, folder)


def test_bodies_over_max_bytes(server: RawServer, folder: Path) -> None:
    declared = server.route("/declared", http(OK, body=b"x" * 11))
    chunked = server.route(
        "/chunked", http(OK, CHUNKED, b"14\r\n" + b"x" * 20 + b"\r\n0\r\n\r\n", length=False)
    )
    lying = server.route("/lying", http(OK, {"Content-Length": "5"}, b"x" * 20))
    with http_system(folder, max_bytes=10) as system:
        record = fetch(system, declared)
        assert record.state is ERRORED
        assert record.error.startswith(
            "body larger than the size limit of 10 bytes (Content-Length 11): "
        ), record.error
        record = fetch(system, chunked)
        assert record.state is ERRORED
        assert record.error.startswith("body larger than the size limit of 10 bytes: "), (
            record.error
        )
        record = fetch(system, lying)
        assert record.state is SUCCEEDED
        assert Path(record.file_path).read_bytes() == b"xxxxx"
        still_works(system, server, folder)


@pytest.mark.parametrize(
    "retry_after",
    ["9" * 400, "-5", "nan", "1e9", "Fri, 31 Dec 9999 23:59:59 GMT", "soon", "0"],
)
def test_hostile_retry_after_is_capped(server: RawServer, folder: Path, retry_after: str) -> None:
    url = server.sequence(
        "/busy",
        http("503 Service Unavailable", {"Retry-After": retry_after}),
        http(OK, body=BODY),
    )
    with http_system(folder, retries=1, max_retry_after=0.0) as system:
        record = fetch(system, url)
        assert record.state is SUCCEEDED, record.error
        assert Path(record.file_path).read_bytes() == BODY
        still_works(system, server, folder)


# -- hostile file names ------------------------------------------------------------------------------

DISPOSITIONS = [
    (b'attachment; filename="../../etc/passwd"', "passwd"),
    (b'attachment; filename="/etc/passwd"', "passwd"),
    (b"attachment; filename=/etc/shadow", "shadow"),
    (b"attachment; filename*=UTF-8''..%2F..%2Fevil.sh", "evil.sh"),
    (b'attachment; filename="..\\\\..\\\\win.ini"', "win.ini"),
    (b'attachment; filename="C:\\\\Windows\\\\evil.dll"', "evil.dll"),
    (b'attachment; filename=".."', "disposition"),
    (b'attachment; filename="."', "disposition"),
    (b'attachment; filename=""', "disposition"),
    (b"attachment; filename", "disposition"),
    (b"inline", "disposition"),
    (b'attachment; filename=".bashrc"', "bashrc"),
    (b'attachment; filename="CON.txt"', "_CON.txt"),
    (b"attachment; filename*=UTF-8''nul", "_nul"),
    (b"attachment; filename*=UTF-8''%00nul.txt", "_nul.txt"),
    (b'attachment; filename="a\x01b\x1fc.txt"', "a b c.txt"),
    (b"attachment; filename*=UTF-8''a%0D%0Ab.txt", "a  b.txt"),
    (b"attachment; filename*=UTF-8''%E2%80%AEgnp.exe", "gnp.exe"),
    (b"attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt", "\u00e9t\u00e9.txt"),
    (b'attachment; filename="r\xc3\xa9sum\xc3\xa9.pdf"', "r\u00e9sum\u00e9.pdf"),
    (b"attachment; filename*=UTF-8''%FF%FE.txt", "disposition"),
    (b'attachment; filename="a<b>c:d|e?f*.txt"', "a_b_c_d_e_f_.txt"),
    (b"attachment; filename=\"report.pdf\"; filename*=UTF-8''..%2F..%2Freal.pdf", "real.pdf"),
    (b'attachment; filename="' + b"x" * 1000 + b'.txt"', "x" * (255 - 4) + ".txt"),
    (b'attachment; filename="a/b/c"', "c"),
    (b'attachment; filename="trailing. . ."', "trailing"),
]


@pytest.mark.parametrize(
    ("disposition", "expected"), DISPOSITIONS, ids=[repr(d)[13:50] for d, _ in DISPOSITIONS]
)
def test_hostile_content_disposition_lands_safely(
    system: ActorSystem, server: RawServer, folder: Path, disposition: bytes, expected: str
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Disposition: " + disposition
    url = server.route(
        "/disposition", head + b"\r\nContent-Length: 11\r\nConnection: close\r\n\r\n" + BODY
    )
    record = fetch(system, url)
    assert record.state is SUCCEEDED, record.error
    path = Path(record.file_path)
    assert path.parent == folder
    assert path.name == expected
    assert path.read_bytes() == BODY
    assert files(folder) == [expected]
    still_works(system, server, folder)


ORIGINAL_NAMES = [
    ("../../etc/passwd", "passwd"),
    ("/etc/passwd", "passwd"),
    ("..", "good"),
    ("/", "good"),
    ("a\x00b", "a b"),
    ("a\nb\tc", "a b c"),
    ("CON", "_CON"),
    ("lpt1.log", "_lpt1.log"),
    ("\u202etxt.exe", "txt.exe"),
    ("C:\\Windows\\x.dll", "x.dll"),
    ("~/.ssh/authorized_keys", "authorized_keys"),
    ("x" * 8000, "x" * 255),
    ("é" * 300 + ".epub", "é" * 125 + ".epub"),
]


@pytest.mark.parametrize(
    ("original", "expected"), ORIGINAL_NAMES, ids=[repr(o)[:30] for o, _ in ORIGINAL_NAMES]
)
def test_hostile_original_filename_lands_safely(
    system: ActorSystem, server: RawServer, folder: Path, original: str, expected: str
) -> None:
    record = fetch(system, server.url("/good"), original_filename=original)
    assert record.state is SUCCEEDED, record.error
    path = Path(record.file_path)
    assert path.parent == folder
    assert path.name == expected
    assert path.read_bytes() == GOOD
    still_works(system, server, folder)


def test_any_original_filename_stays_inside(
    system: ActorSystem, server: RawServer, folder: Path
) -> None:
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.text(min_size=1, max_size=300).filter(str.strip)
        | st.text(alphabet="./\\ \x00\x1f\u202eCONUL:*?", min_size=1, max_size=12).filter(str.strip)
    )
    def check(original: str) -> None:
        record = fetch(system, server.url("/good"), original_filename=original)
        assert record.state is SUCCEEDED, record.error
        path = Path(record.file_path)
        assert path.parent == folder
        assert path.read_bytes() == GOOD
        assert len(path.name.encode("utf-8")) <= 255

    check()
    still_works(system, server, folder)


# -- credentials and redirects ---------------------------------------------------------------------


def test_credentials_are_not_sent_to_another_host(server: RawServer, folder: Path) -> None:
    landing = server.route("/landing", http(OK, body=BODY))
    away = server.route("/away", redirect(landing.replace("127.0.0.1", "localhost")))
    here = server.route("/here", redirect("/landing"))
    headers = {
        "Authorization": "Bearer s3cr3t-token",
        "Cookie": "sid=s3cr3t-cookie",
        "X-Trace": "t-1",
    }
    with http_system(folder, headers=headers) as system:
        assert fetch(system, away).state is SUCCEEDED
        assert fetch(system, here).state is SUCCEEDED
        still_works(system, server, folder)
    seen = server.seen
    to_other_host = [h for p, h in seen if p == "/landing" and h["host"].startswith("localhost")]
    to_same_host = [h for p, h in seen if p == "/landing" and h["host"].startswith("127.0.0.1")]
    assert len(to_other_host) == 1 and len(to_same_host) == 1
    assert "authorization" not in to_other_host[0] and "cookie" not in to_other_host[0]
    assert to_other_host[0]["x-trace"] == "t-1"
    assert to_same_host[0]["authorization"] == "Bearer s3cr3t-token"
    assert to_same_host[0]["cookie"] == "sid=s3cr3t-cookie"
    first = [h for p, h in seen if p == "/away"][0]
    assert first["authorization"] == "Bearer s3cr3t-token"


def test_many_hostile_downloads_at_once(
    system: ActorSystem, server: RawServer, folder: Path
) -> None:
    """Every hostile answer in flight together: each ends, the system carries on."""
    table = [_plain(entry) for entry in RESPONSES]
    for path, answer, _, _ in table:
        server.route(path, answer)
    server.route("/pong", redirect("/ping"))
    downloads = {
        path: system.downloads.submit("http", server.url(path), "many") for path, *_ in table
    }
    for path, _, state, _ in table:
        record = system.downloads.wait(downloads[path], WAIT * 2)
        assert record.state is state, (path, record.error)
    still_works(system, server, folder)
