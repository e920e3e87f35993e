"""``HttpSource`` safety: secrets never shown, URL credentials on redirects, bounds.

Uses the raw server of :mod:`tests.reliability.test_hostile_http`: each
request is answered with exact bytes, and ``seen`` keeps what the client
sent, so a test can check which hop got the credentials.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import configure_logging
from regisseur.actors.downloads import HttpSource
from regisseur.actors.log import REDACTED
from regisseur.messages import DownloadProgressed
from tests.reliability.test_hostile_http import (
    BODY,
    CANCELLED,
    CHUNKED,
    ERRORED,
    GOOD,
    OK,
    PORT,
    SUCCEEDED,
    WAIT,
    RawServer,
    fetch,
    files,
    http,
    http_system,
    redirect,
    stall_after,
    still_works,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(30)

BASIC = "Basic " + base64.b64encode(b"alice:s3cr3t-pw").decode()
SIGNED = "?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=s1gn4ture&sig=s1g&token=t0ken"
SECRETS = ("s3cr3t-pw", "AKIAEXAMPLE", "s1gn4ture", "s1g&", "t0ken")


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    raw.route("/good", http(OK, body=GOOD))
    yield raw
    raw.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return (tmp_path / "downloads").resolve()


def _authorization(server: RawServer, path: str) -> list[str | None]:
    return [headers.get("authorization") for seen, headers in server.seen if seen == path]


def test_url_credentials_follow_a_redirect_on_the_same_host(
    server: RawServer, folder: Path
) -> None:
    """Before: an absolute redirect to the same host lost the URL's password (HTTP 401)."""
    server.route("/landing", http(OK, body=BODY))
    server.route("/absolute", redirect(server.url("/landing")))
    server.route("/relative", redirect("/landing?x=1"))
    with http_system(folder) as system:
        for path in ("/absolute", "/relative"):
            url = server.url(path).replace("http://", "http://alice:s3cr3t-pw@")
            record = fetch(system, url)
            assert record.state is SUCCEEDED, record.error
    assert _authorization(server, "/absolute") == [BASIC]
    assert _authorization(server, "/landing") == [BASIC]
    assert _authorization(server, "/landing?x=1") == [BASIC]


def test_url_credentials_never_follow_a_redirect_to_another_host(
    server: RawServer, folder: Path
) -> None:
    server.route("/landing", http(OK, body=BODY))
    server.route("/away", redirect(server.url("/landing", host="localhost")))
    server.route("/back", redirect(server.url("/to-here", host="localhost")))
    server.route("/to-here", redirect(server.url("/landing?back=1")))
    with http_system(folder) as system:
        for path in ("/away", "/back"):
            url = server.url(path).replace("http://", "http://alice:s3cr3t-pw@")
            assert fetch(system, url).state is SUCCEEDED
    assert _authorization(server, "/away") == [BASIC]
    assert _authorization(server, "/landing") == [None]
    # Once the chain has left the origin, coming back does not restore them.
    assert _authorization(server, "/to-here") == [None]
    assert _authorization(server, "/landing?back=1") == [None]


def test_credential_headers_never_follow_a_redirect_to_another_host(
    server: RawServer, folder: Path
) -> None:
    """Before: only Authorization and Cookie were dropped: Proxy-Authorization (sent
    straight to the other host, no proxy here), X-Api-Key and X-Auth-Token followed."""
    secret = {
        "Authorization": "Bearer s3cr3t-1",
        "Cookie": "sid=s3cr3t-2",
        "Proxy-Authorization": "Basic s3cr3t-3",
        "X-Api-Key": "s3cr3t-4",
        "X-Auth-Token": "s3cr3t-5",
        "X-Amz-Security-Token": "s3cr3t-6",
    }
    plain = {"X-Trace": "kept", "Accept-Language": "de"}
    server.route("/landing", http(OK, body=BODY))
    server.route("/same", redirect(server.url("/landing?same=1")))
    server.route("/away", redirect(server.url("/landing?away=1", host="localhost")))
    with http_system(folder, headers={**secret, **plain}) as system:
        assert fetch(system, server.url("/same")).state is SUCCEEDED
        assert fetch(system, server.url("/away")).state is SUCCEEDED
    sent = {path: headers for path, headers in server.seen}
    for path in ("/same", "/landing?same=1", "/away"):  # the origin gets them all
        assert {k.lower(): v for k, v in secret.items()}.items() <= sent[path].items(), path
    away = sent["/landing?away=1"]
    assert not {k.lower() for k in secret} & away.keys()
    assert {k.lower(): v for k, v in plain.items()}.items() <= away.items()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", json=True, stream=stream)
    yield stream
    for name in ("actors", "supervision", "regisseur"):
        logging.getLogger(name).removeHandler(handler)


def test_signed_url_secrets_are_in_no_log_error_or_repr(
    server: RawServer, folder: Path, json_log: io.StringIO
) -> None:
    """Before: X-Amz-Signature, sig and the like were logged and kept in record.error."""
    server.route("/missing", http("404 Not Found"))
    server.route("/file.bin", http(OK, body=BODY))
    with http_system(folder) as system:
        failed = fetch(system, server.url("/missing").replace("//", "//alice:s3cr3t-pw@") + SIGNED)
        done = fetch(system, server.url("/file.bin") + SIGNED)
    assert done.state is SUCCEEDED
    assert failed.error.startswith("HTTP 404 Not Found: ")
    assert f"X-Amz-Signature={REDACTED}" in failed.error
    assert f"alice:{REDACTED}@" in failed.error
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert {"download_started", "download_failed", "download_completed"} <= {
        line["event"] for line in lines
    }
    shown = [json_log.getvalue(), failed.error, repr(failed), repr(done), str(done)]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, (secret, text)
    assert done.target_id.endswith(SIGNED)  # the record keeps what the source needs


def test_signed_url_secrets_are_in_no_line_of_the_http_client_log_either(
    server: RawServer,
    folder: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: an application logging everything at DEBUG (``basicConfig``) got
    urllib3's request line, ``"GET /file.bin?X-Amz-Signature=... HTTP/1.1" 200``,
    with every secret of the query in it."""
    caplog.set_level(logging.DEBUG)  # the root logger, as logging.basicConfig(level=DEBUG)
    for name in ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry"):
        # As the application left them (an earlier test's dictConfig may have disabled them).
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        caplog.set_level(logging.DEBUG, logger=name)
    server.route("/missing", http("404 Not Found"))
    server.route("/file.bin", http(OK, body=BODY))
    with http_system(folder) as system:
        fetch(system, server.url("/missing").replace("//", "//alice:s3cr3t-pw@") + SIGNED)
        assert fetch(system, server.url("/file.bin") + SIGNED).state is SUCCEEDED
    client = [r for r in caplog.records if r.name.startswith("urllib3")]
    assert any("GET /file.bin" in r.getMessage() for r in client), "urllib3 logged no request"
    for record in caplog.records:
        for secret in SECRETS:
            assert secret not in record.getMessage(), (secret, record.name)


CLIENT_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")


def test_the_client_log_filter_is_the_running_systems_and_leaves_with_the_last(
    server: RawServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two systems in one process stay apart, and a system that stopped leaves
    the application's loggers as it found them. Before: the first
    ``HttpSource`` made put a filter on urllib3's loggers for the rest of the
    process, which kept rewriting the application's own urllib3 records
    after every system had stopped."""
    caplog.set_level(logging.DEBUG)
    for name in CLIENT_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        caplog.set_level(logging.DEBUG, logger=name)
    before = {name: list(logging.getLogger(name).filters) for name in CLIENT_LOGGERS}
    server.route("/file.bin", http(OK, body=BODY))
    with http_system(tmp_path / "left") as left:
        with http_system(tmp_path / "right") as right:
            assert fetch(right, server.url("/file.bin") + SIGNED).state is SUCCEEDED
        # The right system stopped: the left one's client lines are still redacted.
        caplog.clear()
        assert fetch(left, server.url("/file.bin") + SIGNED).state is SUCCEEDED
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
        assert any("GET /file.bin" in line for line in lines), "urllib3 logged no request"
        assert not [line for line in lines for secret in SECRETS if secret in line]
    after = {name: list(logging.getLogger(name).filters) for name in CLIENT_LOGGERS}
    assert after == before, "a stopped system left a filter on the application's loggers"


# -- bounds: size, low speed, max_time, progress --------------------------------------------


def dribble(head: bytes, data: bytes, every: float) -> Any:
    """Send ``head``, then ``data`` one byte every ``every`` seconds (a server-side pace)."""

    def answer(server: RawServer, connection: socket.socket) -> None:
        gate = server.gate()
        connection.sendall(head)
        for byte in data:
            if gate.wait(every):
                return
            connection.sendall(bytes([byte]))

    return answer


def endless(head: bytes, chunk: bytes) -> Any:
    """Send ``head``, then ``chunk`` again and again until the client goes away."""

    def answer(server: RawServer, connection: socket.socket) -> None:
        gate = server.gate()
        connection.sendall(head)
        while not gate.is_set():
            connection.sendall(chunk)  # OSError when the client hangs up: the end

    return answer


ENDLESS = [
    pytest.param(http(OK, length=False), b"x" * 65536, id="close-delimited"),
    pytest.param(
        http(OK, CHUNKED, length=False),
        b"10000\r\n" + b"x" * 65536 + b"\r\n",
        id="chunked",
    ),
]


@pytest.mark.parametrize(("head", "chunk"), ENDLESS)
def test_an_endless_body_stops_at_max_bytes(
    server: RawServer, folder: Path, head: bytes, chunk: bytes
) -> None:
    url = server.route("/endless", endless(head, chunk))
    with http_system(folder, max_bytes=1_000_000) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert record.error == f"body larger than the size limit of 1000000 bytes: {url}"
        assert files(folder) == []
        still_works(system, server, folder)


def test_a_body_slower_than_the_speed_limit_fails_and_is_retried(
    server: RawServer, folder: Path
) -> None:
    """Before: a server sending a byte just before each read timeout held a worker forever."""
    url = server.route(
        "/slow", dribble(http(OK, {"Content-Length": "1000"}), b"x" * 1000, every=0.05)
    )
    with http_system(folder, speed_limit=100, speed_time=0.3, retries=1) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert re.fullmatch(
            rf"too slow: less than 100 bytes/s during 0\.3s \(received \d+ bytes\): "
            rf"http://{PORT}/slow \(after 2 attempts\)",
            record.error,
        ), record.error
        assert len([p for p, _ in server.seen if p == "/slow"]) == 2
        still_works(system, server, folder)


def test_a_body_faster_than_the_speed_limit_is_not_cut(server: RawServer, folder: Path) -> None:
    body = b"y" * 40
    url = server.route("/steady", dribble(http(OK, {"Content-Length": "40"}), body, every=0.01))
    with http_system(folder, speed_limit=5, speed_time=0.5, chunk_size=1024) as system:
        record = fetch(system, url)
        assert record.state is SUCCEEDED, record.error
        assert Path(record.file_path).read_bytes() == body


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_max_time_ends_a_dribbling_download(server: RawServer, folder: Path, framing: str) -> None:
    head = {
        "length": http(OK, {"Content-Length": "100000"}),
        "chunked": http(OK, CHUNKED, length=False) + b"186a0\r\n",
        "close": http(OK, length=False),
    }[framing]
    url = server.route("/dribble", dribble(head, b"z" * 100_000, every=0.02))
    with http_system(folder, max_time=0.5, retries=3) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert re.fullmatch(
            rf"took longer than the time limit of 0\.5 s \(received \d+ bytes\): http://{PORT}/dribble",
            record.error,
        ), record.error
        assert len([p for p, _ in server.seen if p == "/dribble"]) == 1  # not retried
        assert files(folder) == []


def test_max_time_cuts_the_wait_before_a_retry(server: RawServer, folder: Path) -> None:
    """A wait that would end past ``max_time`` is not begun: the download
    fails at once, with what the server asked (before: after 0.3 s of the
    wait, ``took longer than the time limit of 0.3 s (received 0 bytes)``)."""
    url = server.route("/busy", http("503 Service Unavailable", {"Retry-After": "120"}))
    with http_system(folder, max_time=0.3, retries=5, max_retry_after=300.0) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert record.error == (
            f"HTTP 503 Service Unavailable: {url} (after 1 attempt; the next would start "
            "in 120 s, past the time limit of 0.3 s)"
        )
        assert [path for path, _ in server.seen] == ["/busy"]


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_progress_is_reported_while_bytes_trickle_in(
    server: RawServer, folder: Path, framing: str
) -> None:
    """Before: nothing was reported until a 256 KiB read filled (here: the whole body)."""
    body = b"p" * 30
    head = {
        "length": http(OK, {"Content-Length": "30"}),
        "chunked": http(OK, CHUNKED, length=False) + b"1e\r\n",
    }[framing]
    tail = b"" if framing == "length" else b"\r\n0\r\n\r\n"
    url = server.route("/trickle", dribble(head, body + tail, every=0.04))
    seen: list[int] = []
    with (
        http_system(folder) as system,
        system.downloads.subscribe(
            lambda event: (
                seen.append(event.record.transferred)
                if isinstance(event, DownloadProgressed)
                else None
            )
        ),
    ):
        record = fetch(system, url)
        assert record.state is SUCCEEDED, record.error
        assert Path(record.file_path).read_bytes() == body
    between = sorted({count for count in seen if 0 < count < len(body)})
    assert len(between) >= 3, seen


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"max_time": 0}, ValueError, "max_time must be > 0 seconds"),
        ({"max_time": "10"}, TypeError, "max_time must be a number of seconds"),
        ({"speed_limit": 0}, ValueError, "speed_limit must be between 1 and"),
        ({"speed_limit": 1.5}, TypeError, "speed_limit must be an int"),
        ({"speed_time": -1}, ValueError, "speed_time must be > 0 seconds"),
        ({"speed_time": float("inf")}, ValueError, "speed_time must be a finite number"),
    ],
)
def test_limit_arguments_are_checked(
    folder: Path, options: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=re.escape(f"HttpSource 'http' {text}")):
        HttpSource(directory=folder, **options)


HEAD_DRIBBLE = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10_000


def test_max_time_ends_a_server_that_dribbles_its_headers(server: RawServer, folder: Path) -> None:
    url = server.route("/headers", dribble(b"", HEAD_DRIBBLE, every=0.02))
    with http_system(folder, max_time=0.5, read_timeout=2.0) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert record.error == f"took longer than the time limit of 0.5 s (received 0 bytes): {url}"
        still_works(system, server, folder)


def test_speed_limit_ends_a_server_that_dribbles_its_headers(
    server: RawServer, folder: Path
) -> None:
    url = server.route("/headers", dribble(b"", HEAD_DRIBBLE, every=0.02))
    with http_system(folder, speed_limit=10, speed_time=0.3) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        assert record.error == (
            f"too slow: less than 10 bytes/s during 0.3s (received 0 bytes): {url}"
        )
        still_works(system, server, folder)


def test_a_cancel_ends_the_wait_for_an_answer_at_once(server: RawServer, folder: Path) -> None:
    """Before: a server that never answered kept a cancelled download until read_timeout."""
    sent = threading.Event()
    url = server.route("/silent", stall_after(b"", sent))
    with http_system(folder, read_timeout=30.0) as system:
        download = system.downloads.submit("http", url, "silent")
        assert sent.wait(WAIT)
        assert system.downloads.cancel(download) is True
        assert system.downloads.wait(download, WAIT).state is CANCELLED
        system.settle(2.0)  # TimeoutError while the worker still waits for the answer
        still_works(system, server, folder)


@pytest.mark.parametrize("limit", ["max_time", "speed_limit"])
def test_limits_end_a_spliced_body(server: RawServer, folder: Path, limit: str) -> None:
    """A plain body of 2 MiB is spliced in the kernel: the limits end that wait too."""
    head = http(OK, {"Content-Length": str(2 * 1024 * 1024)}) + b"s" * 65536
    url = server.route("/big", dribble(head, b"s" * 100_000, every=0.02))
    options: dict[str, Any] = (
        {"max_time": 0.6} if limit == "max_time" else {"speed_limit": 1_000_000, "speed_time": 0.3}
    )
    with http_system(folder, **options) as system:
        record = fetch(system, url)
        assert record.state is ERRORED
        expected = (
            "took longer than the time limit" if limit == "max_time" else "too slow: less than"
        )
        assert record.error.startswith(expected), record.error
        assert files(folder) == []
