"""HttpSource's impl, called directly with a hand-built DownloadContext.

A real HTTP server on 127.0.0.1 answers (see conftest); waits between
retries run on a ManualClock that the test advances exactly when the
download has scheduled its wait.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.clock import ManualClock
from regisseur.actors.downloads import _http_fetch, _partfile
from regisseur.actors.downloads._http_fetch import _SMALL_BODY
from regisseur.actors.downloads._partfile import PartFile, Validators, part_tag
from regisseur.actors.downloads.context import CancelToken
from regisseur.actors.downloads.http import (
    DownloadError,
    DownloadInterrupted,
    HttpSource,
    parse_retry_after,
)
from regisseur.messages.downloads import DownloadProgressed, DownloadState
from regisseur.supervision.backoff import Backoff
from tests.downloads.conftest import WAIT, Harness, HttpServer, Request, serve_bytes, sha256

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

BODY = bytes(range(256)) * 64  # 16 KiB
SLOW_ID = "9" * 32


def cut_short(sent: bytes, length: int, **headers: str) -> object:
    """A handler announcing ``length`` bytes, sending ``sent`` and closing."""

    def handler(request: Request) -> None:
        request.head(200, {"Content-Length": str(length), **headers})
        request.write(sent)
        request.close()

    return handler


def make_part(
    harness: Harness, name: str, download_id: str, data: bytes, **meta: object
) -> PartFile:
    harness.directory.mkdir(parents=True, exist_ok=True)
    part = PartFile(harness.directory, [name], download_id)
    part.path.write_bytes(data)
    if meta:
        validators = Validators(meta.get("etag"), meta.get("last_modified"), meta.get("size"))  # type: ignore[arg-type]
        part.save(validators, len(data))
    return part


# -- success -------------------------------------------------------------------


def test_success_with_checksum_and_progress(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/files/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, extra={"sha256": sha256(BODY)})
    assert Path(path) == harness.directory.resolve() / "data.bin"
    assert Path(path).read_bytes() == BODY
    assert harness.files() == ["data.bin"]  # no .part, no .meta left
    last = harness.progress[-1]
    assert (last.transferred, last.size, last.time_remaining) == (len(BODY), len(BODY), 0.0)
    assert harness.progress[0].transferred == 0
    seen = http_server.seen("/files/data.bin")[0]
    assert seen.headers["Accept-Encoding"] == "identity"
    assert "Range" not in seen.headers


def test_checksum_mismatch_is_an_error_and_leaves_nothing(
    harness: Harness, http_server: HttpServer
) -> None:
    url = http_server.file("/x.bin", BODY)
    wrong = "ab" * 32
    with pytest.raises(
        DownloadError, match=f"sha256 mismatch: expected {wrong}, got {sha256(BODY)}"
    ):
        harness.fetch(harness.source(), url, extra={"sha256": wrong})
    assert harness.files() == []


def test_a_bad_checksum_option_fails_before_any_request(
    harness: Harness, http_server: HttpServer
) -> None:
    url = http_server.file("/x.bin", BODY)
    with pytest.raises(DownloadError, match=r"extra\['sha256'\] must be 64 hex digits"):
        harness.fetch(harness.source(), url, extra={"sha256": "nope"})
    assert http_server.seen() == []


def test_body_without_content_length(harness: Harness, http_server: HttpServer) -> None:
    def close_delimited(request: Request) -> None:
        request.head(200, {"Connection": "close"})
        request.write(BODY)
        request.close()

    url = http_server.route("/stream", close_delimited)
    path = harness.fetch(harness.source(), url)
    assert Path(path).read_bytes() == BODY
    assert harness.progress[-1].size is None


def test_empty_body(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/empty.txt", b"")
    path = harness.fetch(harness.source(), url)
    assert Path(path).read_bytes() == b""


def test_without_a_worker_session_fetch_uses_its_own(
    harness: Harness, http_server: HttpServer
) -> None:
    source = harness.source()
    url = http_server.file("/own.bin", BODY)
    ctx = harness.context(source, url)
    ctx.worker_state = None
    assert Path(source.fetch(ctx.download_id, url, "own", ctx)).read_bytes() == BODY


def test_worker_hooks_make_and_close_sessions(harness: Harness) -> None:
    source = harness.source(headers={"X-Token": "abc"})
    assert source.open_worker is not None and source.close_worker is not None
    session = source.open_worker()
    assert session.headers["X-Token"] == "abc"
    source.close_worker(session)
    assert source.with_context


# -- HTTP errors and retries ---------------------------------------------------


def test_404_is_an_error_with_the_url(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.status("/missing", 404)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url)
    assert str(info.value) == f"HTTP 404 Not Found: {url}"
    assert info.value.status == 404
    assert len(http_server.seen("/missing")) == 1  # never retried
    assert harness.files() == []


def test_501_is_not_retried(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.status("/nope", 501)
    with pytest.raises(DownloadError, match="HTTP 501 Not Implemented"):
        harness.fetch(harness.source(), url)
    assert len(http_server.seen("/nope")) == 1


def test_500_then_success_waits_the_backoff(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.sequence(
        "/flaky",
        lambda r: r.send(500, b"oops"),
        lambda r: r.send(502, b"oops"),
        lambda r: serve_bytes(r, BODY),
    )
    running = harness.start(harness.source(), url)
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    assert harness.timers.next_wait() == 2.0
    harness.clock.advance(2.0)
    assert Path(running.result()).read_bytes() == BODY
    assert len(http_server.seen("/flaky")) == 3


def test_429_honours_retry_after_seconds(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.sequence(
        "/busy",
        lambda r: r.send(429, b"slow down", {"Retry-After": "7"}),
        lambda r: serve_bytes(r, BODY),
    )
    running = harness.start(harness.source(), url)
    assert harness.timers.next_wait() == 7.0
    harness.clock.advance(6.9)
    assert len(http_server.seen("/busy")) == 1  # still waiting
    harness.clock.advance(0.1)
    assert Path(running.result()).read_bytes() == BODY
    assert len(http_server.seen("/busy")) == 2


def test_retry_after_as_a_date_is_measured_from_the_date_header(
    harness: Harness, http_server: HttpServer
) -> None:
    busy = {
        "Date": "Sun, 06 Nov 1994 08:49:37 GMT",
        "Retry-After": "Sun, 06 Nov 1994 08:50:37 GMT",
    }
    url = http_server.sequence(
        "/busy", lambda r: r.send(503, b"", busy), lambda r: serve_bytes(r, BODY)
    )
    running = harness.start(harness.source(), url)
    assert harness.timers.next_wait() == 60.0
    harness.clock.advance(60.0)
    assert Path(running.result()).read_bytes() == BODY


def test_retry_after_is_capped(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.sequence(
        "/busy",
        lambda r: r.send(429, b"", {"Retry-After": "86400"}),
        lambda r: serve_bytes(r, BODY),
    )
    running = harness.start(harness.source(max_retry_after=120.0), url)
    assert harness.timers.next_wait() == 120.0
    harness.clock.advance(120.0)
    running.result()


def test_gives_up_after_the_retries(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.status("/down", 503)
    running = harness.start(harness.source(retries=2), url)
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    assert harness.timers.next_wait() == 2.0
    harness.clock.advance(2.0)
    with pytest.raises(DownloadError) as info:
        running.result()
    assert str(info.value) == f"HTTP 503 Service Unavailable: {url} (after 3 attempts)"
    assert len(http_server.seen("/down")) == 3


def test_cancel_during_a_retry_wait(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.status("/down", 503)
    running = harness.start(harness.source(), url)
    harness.timers.next_wait()
    running.token.cancel("cancelled")
    with pytest.raises(DownloadInterrupted) as info:
        running.result()
    assert info.value.reason == "cancelled"


def test_retry_logs_are_key_value_and_redacted(
    harness: Harness, http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="regisseur")
    path = "/busy"
    http_server.sequence(
        path, lambda r: r.send(503, b"", {"Retry-After": "3"}), lambda r: serve_bytes(r, BODY)
    )
    url = f"http://user:hunter2@127.0.0.1:{http_server.port}{path}"
    running = harness.start(harness.source(), url)
    harness.timers.next_wait()
    harness.clock.advance(3.0)
    running.result()
    events = [(getattr(r, "event", None), getattr(r, "fields", {})) for r in caplog.records]
    names = [name for name, _ in events]
    assert names == ["download_started", "download_retry", "download_started", "download_completed"]
    retry = events[1][1]
    assert (retry["attempt"], retry["delay"]) == (1, 3.0)
    assert events[3][1]["bytes"] == len(BODY)
    assert "hunter2" not in caplog.text
    assert all("hunter2" not in json.dumps(fields, default=str) for _, fields in events)
    assert http_server.seen(path)[0].headers["Authorization"].startswith("Basic ")


def test_credentials_never_reach_the_error_text(harness: Harness, http_server: HttpServer) -> None:
    http_server.status("/missing", 404)
    url = f"http://user:hunter2@127.0.0.1:{http_server.port}/missing"
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url)
    assert "hunter2" not in str(info.value)
    assert "HTTP 404 Not Found: http://user:[REDACTED]@127.0.0.1" in str(info.value)


def test_connection_refused(harness: Harness) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(retries=0), url)
    assert str(info.value) == f"connection failed (Connection refused): {url}"


def _resolving(monkeypatch: pytest.MonkeyPatch, code: int, words: str) -> list[str]:
    """Name lookups of ``*.example`` fail with ``getaddrinfo``'s ``code``; the names asked."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".example"):
            asked.append(host)
            raise socket.gaierror(code, words)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return asked


def test_an_unknown_host_fails_at_once(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """As curl and wget: the name stays unknown however often it is asked
    (before: three retries with backoff, 7 s, each saying the same)."""
    asked = _resolving(monkeypatch, socket.EAI_NONAME, "Name or service not known")
    url = "http://no-such-host.example/x"
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(retries=3), url)
    assert str(info.value) == f"unknown host (Name or service not known): {url}"
    assert asked == ["no-such-host.example"]


def test_a_lookup_that_may_pass_is_retried(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _resolving(monkeypatch, socket.EAI_AGAIN, "Temporary failure in name resolution")
    running = harness.start(harness.source(retries=1), "http://busy-resolver.example/x")
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    with pytest.raises(DownloadError, match=r"Temporary failure in name resolution"):
        running.result()
    assert asked == ["busy-resolver.example"] * 2


def test_read_timeout(harness: Harness, http_server: HttpServer) -> None:
    gate = http_server.gate()

    def stall(request: Request) -> None:
        request.head(200, {"Content-Length": "5000"})
        request.write(b"x" * 1000)
        gate.wait(WAIT)

    url = http_server.route("/stall", stall)
    source = harness.source(retries=0, read_timeout=0.2, chunk_size=1000)
    with pytest.raises(DownloadError) as info:
        harness.fetch(source, url)
    assert str(info.value) == f"read timed out after 0.2s: received 1000 of 5000 bytes from {url}"
    gate.set()


def test_a_full_disk_is_a_write_error_and_not_retried(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PartFile, "open", lambda self, offset: open("/dev/full", "wb"))  # noqa: SIM115
    url = http_server.file("/data.bin", BODY)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url, download_id="d" * 32)
    part = harness.directory / f"data.bin.{'d' * 32}.part"
    assert str(info.value) == f"cannot write {str(part)!r}: No space left on device"
    assert len(http_server.seen("/data.bin")) == 1


def _plant_directory_at_the_meta_temporary(directory: Path, download_id: str) -> str:
    """A directory where the meta file is first written: its removal fails (EISDIR)."""
    planted = directory / f"big.bin.{part_tag(download_id)}.part.meta.tmp"
    planted.mkdir(parents=True)
    return f"cannot write {str(planted)!r}: Is a directory"


def _refuse_renames(directory: Path, download_id: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Renames fail as on a full disk (rename(2) may need a new directory block),
    with an error that names no file: the meta file's is named."""

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_partfile.os, "replace", full)
    meta = directory / f"big.bin.{part_tag(download_id)}.part.meta"
    return f"cannot write {str(meta)!r}: No space left on device"


@pytest.mark.parametrize("refuse", ["planted", "rename"])
def test_a_local_file_error_anywhere_in_a_fetch_is_named_plainly(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch, refuse: str
) -> None:
    """Not only the part's writes: the resume metadata's too (written after
    the first chunk of a large body), naming the file that failed. It
    escaped as a bare OSError, which the CLI showed as ``OSError: [Errno 28]
    No space left on device``."""
    download_id = "e" * 32
    if refuse == "planted":
        expected = _plant_directory_at_the_meta_temporary(harness.directory, download_id)
    else:
        expected = _refuse_renames(harness.directory, download_id, monkeypatch)
    url = http_server.file("/big.bin", b"x" * (_SMALL_BODY + 1))
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url, download_id=download_id)
    assert str(info.value) == expected
    assert isinstance(info.value.__cause__, OSError)
    assert len(http_server.seen("/big.bin")) == 1, "a local error is not retried"
    assert not [name for name in harness.files() if name.endswith(".part")]


# -- length checks and resume ---------------------------------------------------


def test_truncated_body_is_an_error(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.route("/cut", cut_short(b"x" * 1000, 5000))
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(retries=0), url)
    assert str(info.value) == f"truncated: received 1000 of 5000 bytes from {url}"
    assert harness.files() == []


def test_truncated_body_is_error_kept_with_keep_partial(
    harness: Harness, http_server: HttpServer
) -> None:
    url = http_server.route("/cut.bin", cut_short(b"x" * 1000, 5000))
    with pytest.raises(DownloadError, match="truncated"):
        harness.fetch(harness.source(retries=0, keep_partial=True), url, download_id="a" * 32)
    assert harness.files() == [f"cut.bin.{'a' * 32}.part", f"cut.bin.{'a' * 32}.part.meta"]


def test_a_body_cut_before_its_first_byte_records_no_meta_file(
    harness: Harness, http_server: HttpServer
) -> None:
    """Nothing to resume from: no meta file is written (before, one saying
    "0 bytes good", whose save a kill could cut short, leaving its temporary)."""
    url = http_server.route("/cut.bin", cut_short(b"", 5000 + _SMALL_BODY))
    with pytest.raises(DownloadError, match="truncated"):
        harness.fetch(harness.source(retries=0, keep_partial=True), url, download_id="a" * 32)
    assert harness.files() == [f"cut.bin.{'a' * 32}.part"]


def test_truncated_body_is_resumed_on_retry(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.sequence(
        "/cut.bin",
        cut_short(BODY[:1000], len(BODY), ETag='"v1"'),
        lambda r: serve_bytes(r, BODY, etag='"v1"'),
    )
    running = harness.start(harness.source(), url, extra={"sha256": sha256(BODY)})
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    assert Path(running.result()).read_bytes() == BODY
    second = http_server.seen("/cut.bin")[1].headers
    assert (second["Range"], second["If-Range"]) == ("bytes=1000-", '"v1"')


def test_resume_with_range_and_if_range(harness: Harness, http_server: HttpServer) -> None:
    make_part(harness, "data.bin", "b" * 32, BODY[:3000], etag='"v1"', size=len(BODY))
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(
        harness.source(), url, download_id="b" * 32, extra={"sha256": sha256(BODY)}
    )
    assert Path(path).read_bytes() == BODY
    seen = http_server.seen("/data.bin")[0].headers
    assert (seen["Range"], seen["If-Range"]) == ("bytes=3000-", '"v1"')
    assert harness.progress[0].transferred == 3000
    assert harness.files() == ["data.bin"]


def test_resume_with_last_modified_when_the_etag_is_weak(
    harness: Harness, http_server: HttpServer
) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    make_part(
        harness, "d.bin", "c" * 32, BODY[:10], etag='W/"weak"', last_modified=stamp, size=len(BODY)
    )
    url = http_server.file("/d.bin", BODY, etag='W/"weak"', last_modified=stamp)
    assert Path(harness.fetch(harness.source(), url, download_id="c" * 32)).read_bytes() == BODY
    assert http_server.seen("/d.bin")[0].headers["If-Range"] == stamp


def test_server_ignoring_range_starts_over(harness: Harness, http_server: HttpServer) -> None:
    make_part(harness, "data.bin", "d" * 32, b"garbage!", etag='"v1"', size=len(BODY))
    url = http_server.file("/data.bin", BODY, etag='"v1"', ranges=False)
    path = harness.fetch(harness.source(), url, download_id="d" * 32)
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin")[0].headers["Range"] == "bytes=8-"


def test_if_range_mismatch_gets_the_new_file(harness: Harness, http_server: HttpServer) -> None:
    new = b"new version " * 100
    make_part(harness, "data.bin", "e" * 32, BODY[:500], etag='"v1"', size=len(BODY))
    url = http_server.file("/data.bin", new, etag='"v2"')
    path = harness.fetch(harness.source(), url, download_id="e" * 32)
    assert Path(path).read_bytes() == new
    assert len(http_server.seen("/data.bin")) == 1


def test_changed_validator_on_206_starts_over(harness: Harness, http_server: HttpServer) -> None:
    """A server that ignores If-Range but sends a different ETag with its 206."""
    new = b"N" * 2000

    def careless(request: Request) -> None:
        if "Range" in request.headers:
            request.send(206, new[500:], {"Content-Range": "bytes 500-1999/2000", "ETag": '"v2"'})
        else:
            serve_bytes(request, new, etag='"v2"')

    make_part(harness, "data.bin", "f" * 32, BODY[:500], etag='"v1"', size=2000)
    url = http_server.route("/data.bin", careless)
    path = harness.fetch(harness.source(), url, download_id="f" * 32)
    assert Path(path).read_bytes() == new
    ranges = [s.headers.get("Range") for s in http_server.seen("/data.bin")]
    assert ranges == ["bytes=500-", None]


def test_416_starts_over(harness: Harness, http_server: HttpServer) -> None:
    short = b"s" * 100
    make_part(harness, "data.bin", "g" * 32, b"p" * 300, size=1000)
    url = http_server.file("/data.bin", short)
    assert Path(harness.fetch(harness.source(), url, download_id="g" * 32)).read_bytes() == short
    assert [s.headers.get("Range") for s in http_server.seen("/data.bin")] == ["bytes=300-", None]


def test_part_without_meta_is_not_resumed(harness: Harness, http_server: HttpServer) -> None:
    make_part(harness, "data.bin", "h" * 32, b"unknown origin")
    url = http_server.file("/data.bin", BODY)
    assert Path(harness.fetch(harness.source(), url, download_id="h" * 32)).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers


@pytest.mark.parametrize("left", ["meta", "temporary"])
def test_meta_files_a_killed_run_left_are_removed_once_the_download_is_published(
    harness: Harness, http_server: HttpServer, left: str
) -> None:
    """A run killed mid-way through saving its meta file leaves the part's
    bytes and the temporary; one killed after it, a stale meta file (here
    beside an emptied part). Neither stays once the download is published."""
    download_id = "k" * 32
    part = make_part(harness, "data.bin", download_id, b"bytes" if left == "temporary" else b"")
    leftover = part.temporary_path if left == "temporary" else part.meta_path
    leftover.write_text('{"etag": ""v0"", "offset": 5}')
    url = http_server.file("/data.bin", BODY)
    assert Path(harness.fetch(harness.source(), url, download_id=download_id)).read_bytes() == BODY
    assert harness.files() == ["data.bin"]


def test_a_missing_download_directory_is_made_on_the_first_download(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    directory = tmp_path / "not" / "yet" / "there"
    url = http_server.file("/data.bin", BODY)
    path = harness.fetch(harness.source(directory=directory), url)
    assert Path(path) == directory.resolve() / "data.bin"
    assert Path(path).read_bytes() == BODY


def test_a_download_directory_that_is_a_file_is_named_and_left_alone(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    directory = tmp_path / "notes.txt"
    directory.write_text("mine")
    url = http_server.file("/data.bin", BODY)
    message = f"cannot create download directory {str(directory)!r}: "
    with pytest.raises(DownloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        harness.fetch(harness.source(directory=directory), url)
    assert directory.read_text() == "mine"
    assert http_server.seen() == []


# -- cancel ----------------------------------------------------------------------


def slow_body(http_server: HttpServer, path: str, body: bytes, chunk: int) -> tuple[str, list]:
    """A route that sends headers, then one chunk per opened gate."""
    gates = [http_server.gate() for _ in range(2)]

    def handler(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(body)), "ETag": '"v1"'})
        gates[0].wait(WAIT)
        request.write(body[:chunk])
        gates[1].wait(WAIT)
        request.write(body[chunk:])

    return http_server.route(path, handler), gates


def start_and_cancel_midway(
    harness: Harness, http_server: HttpServer, reason: str, **options: object
) -> object:
    url, gates = slow_body(http_server, "/slow.bin", BODY, 1024)
    running = harness.start(harness.source(chunk_size=1024, **options), url, download_id=SLOW_ID)
    harness.wait_progress(0)  # headers read, part open
    harness.clock.advance(1.0)  # let the next progress report through the throttle
    gates[0].set()
    harness.wait_progress(1024)  # the first chunk is on disk
    running.token.cancel(reason)
    gates[1].set()
    with pytest.raises(DownloadInterrupted) as info:
        running.result()
    assert info.value.reason == reason
    return info.value


def test_user_cancel_midway_removes_the_part(harness: Harness, http_server: HttpServer) -> None:
    error = start_and_cancel_midway(harness, http_server, "cancelled")
    assert str(error) == "cancelled"
    assert harness.files() == []


def test_user_cancel_keeps_the_part_with_keep_partial(
    harness: Harness, http_server: HttpServer
) -> None:
    start_and_cancel_midway(harness, http_server, "by user", keep_partial=True)
    assert harness.files() == [f"slow.bin.{SLOW_ID}.part", f"slow.bin.{SLOW_ID}.part.meta"]
    assert (harness.directory / f"slow.bin.{SLOW_ID}.part").stat().st_size == 1024


def test_stop_keeps_the_part_and_the_next_run_resumes(
    harness: Harness, http_server: HttpServer
) -> None:
    start_and_cancel_midway(harness, http_server, "stopping")
    assert harness.files() == [f"slow.bin.{SLOW_ID}.part", f"slow.bin.{SLOW_ID}.part.meta"]
    http_server.file("/slow.bin", BODY, etag='"v1"')
    path = harness.fetch(
        harness.source(),
        http_server.url("/slow.bin"),
        download_id=SLOW_ID,
        extra={"sha256": sha256(BODY)},
    )
    assert Path(path).read_bytes() == BODY
    again = http_server.seen("/slow.bin")[1].headers
    assert (again["Range"], again["If-Range"]) == ("bytes=1024-", '"v1"')
    assert harness.files() == ["slow.bin"]


@pytest.mark.parametrize(("size", "small"), [(len(BODY), True), (_SMALL_BODY + 1, False)])
def test_a_small_body_keeps_no_meta_file_unless_its_run_ends_early(
    harness: Harness,
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    small: bool,
) -> None:
    # Creating the meta file cost as much as the part itself per small file;
    # a crash mid-way of a small body restarts it from byte 0 instead.
    saved: list[int] = []
    save = PartFile.save

    def counting(part: PartFile, validators: Validators, offset: int = 0, **kw: bool) -> None:
        saved.append(offset)
        save(part, validators, offset, **kw)

    monkeypatch.setattr(PartFile, "save", counting)
    body = (BODY * (size // len(BODY) + 1))[:size]
    url = http_server.file("/whole.bin", body, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url)).read_bytes() == body
    assert harness.files() == ["whole.bin"]
    assert (saved == []) is small
    saved.clear()
    # Cut short, the small body's good length is recorded too, and the
    # retry resumes from it.
    cut = http_server.sequence(
        "/cut.bin",
        cut_short(body[:1000], size, ETag='"v1"'),
        lambda request: serve_bytes(request, body, etag='"v1"'),
    )
    running = harness.start(harness.source(), cut)
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    assert Path(running.result()).read_bytes() == body
    assert 1000 in saved
    assert http_server.seen("/cut.bin")[1].headers["Range"] == "bytes=1000-"


def test_cancelled_before_start(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/x", BODY)
    token = CancelToken()
    token.cancel("cancelled")
    with pytest.raises(DownloadInterrupted):
        harness.fetch(harness.source(), url, token=token)
    assert http_server.seen() == []


# -- names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="../../evil.sh"', "evil.sh"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fcron.d%2Fjob", "job"),
        ('attachment; filename=".bashrc"', "bashrc"),
        ('attachment; filename="NUL.txt"', "_NUL.txt"),
        ("attachment; filename*=UTF-8''%E2%82%AC%20report.pdf", "€ report.pdf"),
    ],
)
def test_unsafe_content_disposition_names(
    harness: Harness, http_server: HttpServer, disposition: str, expected: str
) -> None:
    url = http_server.file("/dl", BODY, headers={"Content-Disposition": disposition})
    path = Path(harness.fetch(harness.source(), url))
    assert path == harness.directory.resolve() / expected
    assert harness.files() == [expected]


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("/etc/passwd", "passwd"),
        ("CON", "_CON"),
        ("a\x00b.txt", "a b.txt"),
        ("..", "x.txt"),  # nothing usable: the server's name is next in line
    ],
)
def test_unsafe_original_filenames(
    harness: Harness, http_server: HttpServer, original: str, expected: str
) -> None:
    url = http_server.file("/dl.bin", BODY, headers={"Content-Disposition": 'filename="x.txt"'})
    path = Path(harness.fetch(harness.source(), url, original_filename=original))
    assert path.name == expected
    assert path.parent == harness.directory.resolve()


def test_name_falls_back_to_the_display_name(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/folder/", BODY)
    path = harness.fetch(harness.source(), url, display_name="Nice Name.iso")
    assert Path(path).name == "Nice Name.iso"


def test_a_taken_name_gets_a_number(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/report.pdf", BODY)
    source = harness.source()
    first = harness.fetch(source, url)
    second = harness.fetch(source, url)
    third = harness.fetch(source, url)
    assert [Path(p).name for p in (first, second, third)] == [
        "report.pdf",
        "report (1).pdf",
        "report (2).pdf",
    ]


def test_a_later_run_takes_the_file_an_earlier_run_published_unrecorded(
    harness: Harness, http_server: HttpServer
) -> None:
    """The first run published report.pdf and was killed before its record
    said so: the next run (a later claim of the same download, after the
    claim an earlier keeper recorded) fetches it again and, finding the
    very same bytes there, takes that file instead of a copy named
    ``report (1).pdf``."""
    url = http_server.file("/report.pdf", BODY)
    source = harness.source()
    first = harness.fetch(source, url, download_id="d1")
    again = harness.fetch(source, url, download_id="d1", claim=2, earlier_claim=1)
    assert again == first
    assert harness.files() == ["report.pdf"]  # no copy, no part, no meta
    assert Path(first).read_bytes() == BODY


@pytest.mark.parametrize(
    ("claim", "earlier", "there", "why"),
    [
        (2, 1, b"x" * len(BODY), "same size, other bytes"),
        (2, 1, BODY[:-1], "other size"),
        (1, 0, BODY, "a first run never takes a file it did not write"),
        # Before: taken (any claim above 1 took the same bytes), and the
        # user's file recorded as the download.
        (2, 0, BODY, "a re-claim within one keeper knows no unrecorded publish"),
        (5, 0, BODY, "however often it was re-claimed"),
        (1, 1, BODY, "a claim not above the earlier keeper's is not after it"),
    ],
)
def test_a_file_that_is_not_the_download_keeps_its_name(
    harness: Harness,
    http_server: HttpServer,
    claim: int,
    earlier: int,
    there: bytes,
    why: str,
) -> None:
    url = http_server.file("/report.pdf", BODY)
    harness.directory.mkdir(parents=True)
    (harness.directory / "report.pdf").write_bytes(there)
    path = harness.fetch(
        harness.source(), url, download_id="d1", claim=claim, earlier_claim=earlier
    )
    assert Path(path).name == "report (1).pdf", why
    assert (harness.directory / "report.pdf").read_bytes() == there
    assert Path(path).read_bytes() == BODY


def test_a_link_to_the_same_bytes_is_not_taken(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """A symlink planted under the name, to a file with the very bytes, is
    never recorded as the download: it could change under the user."""
    url = http_server.file("/report.pdf", BODY)
    elsewhere = tmp_path / "elsewhere.pdf"
    elsewhere.write_bytes(BODY)
    harness.directory.mkdir(parents=True)
    (harness.directory / "report.pdf").symlink_to(elsewhere)
    path = harness.fetch(harness.source(), url, download_id="d1", claim=2, earlier_claim=1)
    assert Path(path).name == "report (1).pdf"
    assert (harness.directory / "report.pdf").is_symlink()


def test_partial_files_lists_the_parts_of_the_downloads_asked_for(
    harness: Harness, tmp_path: Path
) -> None:
    source = harness.source()
    folder = harness.directory
    folder.mkdir(parents=True)
    mine = PartFile(folder, ("a.bin",), "d1").path
    mine.write_bytes(b"abc")
    PartFile(folder, ("b.bin",), "d2").path.write_bytes(b"another download's")
    (folder / "c.bin.d1.part").symlink_to(tmp_path / "elsewhere")  # not a plain file
    odd = PartFile(folder, ("d.bin",), "id with spaces").path  # a hashed tag
    odd.write_bytes(b"")
    assert source.partial_files(["d1", "id with spaces", "d9"]) == sorted([mine, odd])
    assert source.partial_files([]) == []
    assert harness.source(directory=tmp_path / "missing").partial_files(["d1"]) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
def test_another_users_file_with_the_same_bytes_is_not_taken(
    harness: Harness, http_server: HttpServer
) -> None:
    """Before: taken. Its owner could change it right after the comparison,
    and the recorded download (its sha256 checked on the part) with it."""
    url = http_server.file("/report.pdf", BODY)
    harness.directory.mkdir(parents=True)
    planted = harness.directory / "report.pdf"
    planted.write_bytes(BODY)
    os.chown(planted, 4242, 4242)
    path = harness.fetch(harness.source(), url, download_id="d1", claim=2, earlier_claim=1)
    assert Path(path).name == "report (1).pdf"
    assert Path(path).stat().st_uid == os.geteuid()


def test_a_hard_link_to_the_same_bytes_is_not_taken(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """Before: taken. A file with another name elsewhere can change
    through that name, as a symlink's target can."""
    url = http_server.file("/report.pdf", BODY)
    elsewhere = tmp_path / "elsewhere.pdf"
    elsewhere.write_bytes(BODY)
    harness.directory.mkdir(parents=True)
    os.link(elsewhere, harness.directory / "report.pdf")
    path = harness.fetch(harness.source(), url, download_id="d1", claim=2, earlier_claim=1)
    assert Path(path).name == "report (1).pdf"
    assert (harness.directory / "report.pdf").stat().st_nlink == 2


def test_a_stop_during_the_comparison_with_a_taken_name_ends_it(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file takes as long to compare as to write. Before: a stop
    (Ctrl-C) that came as the comparison began waited for all of it; now
    the run ends as interrupted, its part kept for the next run."""
    body = bytes(range(256)) * 64
    url = http_server.file("/report.pdf", body)
    harness.directory.mkdir(parents=True)
    (harness.directory / "report.pdf").write_bytes(body)
    monkeypatch.setattr(_partfile, "_HASH_BLOCK", 1024)
    token = CancelToken()
    place = _http_fetch.move_into_place

    def stop_then_place(*args: Any, **kwargs: Any) -> Path:
        token.cancel("stopping")  # the stop arrives as the publish begins
        return place(*args, **kwargs)

    monkeypatch.setattr(_http_fetch, "move_into_place", stop_then_place)
    with pytest.raises(DownloadInterrupted) as info:
        harness.fetch(
            harness.source(), url, download_id="d1", claim=2, earlier_claim=1, token=token
        )
    assert info.value.reason == "stopping"
    names = harness.files()
    assert "report.pdf" in names and "report (1).pdf" not in names
    assert any(name.endswith(".part") for name in names)


# -- limits, schemes, redirects -----------------------------------------------------


def test_content_length_over_max_bytes(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/big", BODY)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(max_bytes=1000), url)
    assert (
        str(info.value)
        == f"body larger than the size limit of 1000 bytes (Content-Length {len(BODY)}): {url}"
    )
    assert harness.files() == []


def test_streamed_body_over_max_bytes(harness: Harness, http_server: HttpServer) -> None:
    def endless(request: Request) -> None:
        request.head(200, {"Connection": "close"})
        request.write(BODY)
        request.close()

    url = http_server.route("/big", endless)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(max_bytes=1000, chunk_size=512), url)
    assert str(info.value) == f"body larger than the size limit of 1000 bytes: {url}"
    assert harness.files() == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ftp://example.com/file", "unsupported URL scheme 'ftp' (only http and https)"),
        ("file:///etc/passwd", "unsupported URL scheme 'file' (only http and https)"),
        ("example.com/file", "malformed URL 'example.com/file': no scheme"),
        ("http://", "malformed URL 'http://': no host"),
        ("http://host:port/x", "malformed URL 'http://host:port/x'"),
        ("http://a b/", "malformed URL 'http://a b/'"),
        ("", "malformed URL ''"),
        (42, "malformed URL 42: expected a string"),
    ],
)
def test_bad_urls(harness: Harness, target: object, message: str) -> None:
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), target)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://h/"])
def test_redirect_to_another_scheme(
    harness: Harness, http_server: HttpServer, location: str
) -> None:
    url = http_server.status("/jump", 302, {"Location": location})
    scheme = location.split(":")[0]
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url)
    assert str(info.value).startswith(f"redirect to unsupported scheme {scheme!r}")
    assert harness.files() == []


def test_redirect_loop(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.status("/loop", 301, {"Location": "/loop"})
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(max_redirects=5), url)
    assert str(info.value) == f"too many redirects (more than 5): {url}"
    assert len(http_server.seen("/loop")) == 6


def test_redirects_are_followed_and_credentials_stay_home(
    harness: Harness, http_server: HttpServer
) -> None:
    http_server.file("/real/file.bin", BODY)
    elsewhere = f"http://localhost:{http_server.port}/real/file.bin"
    http_server.status("/hop2", 307, {"Location": elsewhere})
    url = http_server.status("/hop1", 302, {"Location": "/hop2"})
    source = harness.source(headers={"Authorization": "Bearer s3cret"})
    path = harness.fetch(source, url)
    assert Path(path).read_bytes() == BODY
    assert Path(path).name == "hop1"  # the name comes from the URL asked for
    assert http_server.seen("/hop2")[0].headers["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in http_server.seen("/real/file.bin")[0].headers


# -- options and helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"directory": None}, TypeError, "directory is required"),
        ({"retries": -1}, ValueError, "retries must be between 0 and 100"),
        ({"retries": 1.5}, TypeError, "retries must be an int"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"max_bytes": -1}, ValueError, "max_bytes"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"read_timeout": "5"}, TypeError, "read_timeout"),
        ({"backoff": 3}, TypeError, "backoff must be a Backoff"),
        ({"headers": {"X": 1}}, TypeError, "headers must map str to str"),
        ({"headers": ["X"]}, TypeError, "headers must be a mapping"),
        ({"verify": "/no/such/bundle.pem"}, ValueError, "CA bundle"),
        ({"verify": 1}, TypeError, "verify must be a bool"),
        ({"keep_partial": "yes"}, TypeError, "keep_partial must be a bool"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"max_redirects": 1000}, ValueError, "max_redirects"),
        # Past what a socket or a lock can wait (about 292 years): every
        # download failed with "OverflowError: timestamp out of range ...".
        ({"read_timeout": 1e10}, ValueError, "read_timeout must be at most 9223372036 s"),
        ({"connect_timeout": 1e10}, ValueError, "connect_timeout must be at most"),
        ({"speed_time": 1e308}, ValueError, "speed_time must be at most"),
        ({"speed_limit": 2**63}, ValueError, "speed_limit must be between 1 and"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict, error: type, match: str) -> None:
    options.setdefault("directory", tmp_path)
    with pytest.raises(error, match=match):
        HttpSource(**options)


def test_the_largest_timeouts_and_limits_are_taken_and_work(
    harness: Harness, http_server: HttpServer
) -> None:
    """Before: a timeout past about 292 years failed every download
    (``OverflowError``), and so did a low-speed limit whose bytes per
    window overflowed a float (``--speed-limit 10 --speed-time 1e308``)."""
    url = http_server.file("/file.bin", BODY)
    longest = threading.TIMEOUT_MAX
    source = harness.source(
        connect_timeout=longest, read_timeout=longest, speed_limit=10, speed_time=longest
    )
    assert Path(harness.fetch(source, url)).read_bytes() == BODY


def test_files_of_one_name_are_published_without_trying_every_taken_name(
    harness: Harness, http_server: HttpServer, renames: list[Path]
) -> None:
    """A source remembers, per name, where its search for a free
    ``name (N)`` goes on (see ``NameNumbers``): the n-th file of one name
    is a few tries, not n (before: 3,000 URLs saved as ``download``, 78 s
    instead of 7)."""
    source = harness.source()
    session = harness.session(source)
    url = http_server.file("/download", BODY)
    published = [Path(harness.fetch(source, f"{url}?id={n}", session=session)) for n in range(40)]
    assert [p.name for p in published[:3]] == ["download", "download (1)", "download (2)"]
    assert len({p.name for p in published}) == 40
    assert len(renames) < 3 * 40, len(renames)  # before: 40 * 41 / 2 = 820


def test_defaults_and_repr(tmp_path: Path) -> None:
    source = HttpSource(directory=tmp_path, headers={"Authorization": "Bearer zzz"})
    assert source.name == "http"
    assert source.concurrency == 4
    assert source.retries == 3
    assert source.backoff == Backoff(initial=1.0, multiplier=2.0, maximum=30.0)
    assert (source.connect_timeout, source.read_timeout) == (10.0, 30.0)
    assert source.chunk_size == 256 * 1024
    assert source.verify is True
    assert "zzz" not in repr(source)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert HttpSource(directory=tmp_path, verify=bundle).verify == str(bundle)


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("120", None, 120.0),
        (" 0 ", None, 0.0),
        ("1.5", None, 1.5),
        ("-3", None, None),
        ("soon", None, None),
        ("", None, None),
        (None, None, None),
        ("Sun, 06 Nov 1994 08:49:47 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", 10.0),
        ("Sun, 06 Nov 1994 08:49:27 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("Sun, 06 Nov 1994 08:49:47 GMT", None, 0.0),  # long past by the wall clock
    ],
)
def test_parse_retry_after(value: str | None, date: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, date) == expected


def test_concurrent_downloads_of_one_name_never_share_a_part(
    harness: Harness, http_server: HttpServer
) -> None:
    arrived = [http_server.gate(), http_server.gate()]
    release = http_server.gate()
    count = iter(range(2))

    def held(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BODY))})
        arrived[next(count)].set()
        release.wait(WAIT)
        request.write(BODY)

    url = http_server.route("/same.bin", held)
    source = harness.source()
    prefix = "p" * 20  # the facade's ids share a per-system prefix
    first = harness.start(source, url, download_id=f"{prefix}{1:012x}")
    second = harness.start(source, url, download_id=f"{prefix}{2:012x}")
    for gate in arrived:
        assert gate.wait(WAIT)
    harness.wait_progress(0, f"{prefix}{1:012x}")
    harness.wait_progress(0, f"{prefix}{2:012x}")
    parts = [name for name in harness.files() if name.endswith(".part")]
    assert parts == [f"same.bin.{prefix}{1:012x}.part", f"same.bin.{prefix}{2:012x}.part"]
    release.set()
    names = sorted(Path(running.result()).name for running in (first, second))
    assert names == ["same (1).bin", "same.bin"]
    assert all(Path(harness.directory / n).read_bytes() == BODY for n in names)


def test_part_tags() -> None:
    assert part_tag("abc123") == "abc123"
    tag = part_tag("../weird id/" + "x" * 100)
    assert tag.startswith("h") and len(tag) == 25 and tag.isalnum()
    assert part_tag("a/b") != part_tag("a_b")


# -- through the system ------------------------------------------------------------


@pytest.fixture
def system_directory(tmp_path: Path) -> Path:
    return tmp_path / "system-downloads"


@pytest.fixture
def http_system(system_factory: Callable[..., ActorSystem], system_directory: Path) -> ActorSystem:
    """A system (on a ManualClock) with an HttpSource named "http"."""
    source = HttpSource(directory=system_directory, retries=0)
    return system_factory(download_sources=[source])


def test_system_download_succeeds(http_system: ActorSystem, http_server: HttpServer) -> None:
    url = http_server.file("/e2e/data.bin", BODY)
    download_id = http_system.downloads.submit("http", url, "Data", extra={"sha256": sha256(BODY)})
    record = http_system.downloads.wait(download_id, timeout=WAIT)
    assert record.state is DownloadState.SUCCEEDED, record.error
    assert record.file_path is not None
    assert Path(record.file_path).name == "data.bin"
    assert Path(record.file_path).read_bytes() == BODY
    assert record.transferred == len(BODY)


def test_system_download_404_is_errored_with_the_text(
    http_system: ActorSystem, http_server: HttpServer
) -> None:
    url = http_server.status("/e2e/missing", 404)
    download_id = http_system.downloads.submit("http", url, "Missing")
    record = http_system.downloads.wait(download_id, timeout=WAIT)
    assert record.state is DownloadState.ERRORED
    assert record.error == f"HTTP 404 Not Found: {url}"


def test_system_cancel_midway_removes_the_part(
    http_system: ActorSystem, http_server: HttpServer, system_directory: Path
) -> None:
    url, gates = slow_body(http_server, "/e2e/slow.bin", BODY, 1024)
    streaming = threading.Event()
    with http_system.events.subscribe(lambda event: streaming.set(), DownloadProgressed):
        download_id = http_system.downloads.submit("http", url, "Slow")
        assert streaming.wait(WAIT)  # the first report comes once the part file is open
    # A small body (16 KiB) keeps no meta file while it streams.
    assert sorted(p.name for p in system_directory.iterdir()) == [f"slow.bin.{download_id}.part"]
    gates[0].set()
    assert http_system.downloads.cancel(download_id)
    gates[1].set()
    record = http_system.downloads.wait(download_id, timeout=WAIT)
    assert record.state is DownloadState.CANCELLED
    http_system.settle(WAIT)  # the worker is done with the impl
    assert list(system_directory.iterdir()) == []


def test_system_stop_keeps_the_part_and_the_next_start_resumes(
    system_factory: Callable[..., ActorSystem],
    manual_clock: ManualClock,
    http_server: HttpServer,
    system_directory: Path,
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'downloads.db'}"
    url, gates = slow_body(http_server, "/e2e/resume.bin", BODY, 1024)
    # The stop cannot interrupt a blocked read: the short read timeout ends it
    # (the retry's wait then sees the stop), as a stalled server would.
    first = system_factory(
        download_sources=[
            HttpSource(directory=system_directory, chunk_size=1024, read_timeout=0.3)
        ],
        database_url=database,
    )
    reports: list[int] = []
    reported = threading.Condition()

    def on_progress(event: DownloadProgressed) -> None:
        with reported:
            reports.append(event.record.transferred)
            reported.notify_all()

    with first.events.subscribe(on_progress, DownloadProgressed):
        download_id = first.downloads.submit("http", url, "Resume", extra={"sha256": sha256(BODY)})
        with reported:
            assert reported.wait_for(lambda: 0 in reports, WAIT)  # the part is open
        manual_clock.jump(1.0)  # let the next report through the throttle (worker busy)
        gates[0].set()  # the first chunk; the rest waits for gates[1]
        with reported:
            assert reported.wait_for(lambda: 1024 in reports, WAIT)  # and it is on disk
    first.stop()  # cancels the running download with the reason "stopping"
    part = system_directory / f"resume.bin.{download_id}.part"
    assert part.stat().st_size == 1024
    assert (system_directory / f"{part.name}.meta").exists()

    http_server.file("/e2e/resume.bin", BODY, etag='"v1"')
    second = system_factory(
        download_sources=[HttpSource(directory=system_directory)], database_url=database
    )
    record = second.downloads.wait(download_id, timeout=WAIT)
    assert record.state is DownloadState.SUCCEEDED, record.error
    assert Path(record.file_path or "").read_bytes() == BODY
    ranges = [s.headers.get("Range") for s in http_server.seen("/e2e/resume.bin")]
    assert ranges == [None, "bytes=1024-"]
    assert sorted(p.name for p in system_directory.iterdir()) == ["resume.bin"]


def test_a_short_range_answer_is_resumed_again(harness: Harness, http_server: HttpServer) -> None:
    """A server that caps its 206 answers: the next attempt asks for the rest."""

    def capped(request: Request) -> None:
        first = int(request.headers["Range"][len("bytes=") : -1])
        last = min(first + 6999, len(BODY) - 1)
        window = f"bytes {first}-{last}/{len(BODY)}"
        request.send(206, BODY[first : last + 1], {"Content-Range": window, "ETag": '"v1"'})

    make_part(harness, "c.bin", "j" * 32, BODY[:3000], etag='"v1"', size=len(BODY))
    url = http_server.route("/c.bin", capped)
    running = harness.start(harness.source(), url, download_id="j" * 32)
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    assert Path(running.result()).read_bytes() == BODY
    ranges = [s.headers["Range"] for s in http_server.seen("/c.bin")]
    assert ranges == ["bytes=3000-", "bytes=10000-"]


def test_resume_without_validators_sends_range_only(
    harness: Harness, http_server: HttpServer
) -> None:
    make_part(harness, "n.bin", "k" * 32, BODY[:100], etag='W/"weak"', size=len(BODY))
    url = http_server.file("/n.bin", BODY)
    assert Path(harness.fetch(harness.source(), url, download_id="k" * 32)).read_bytes() == BODY
    seen = http_server.seen("/n.bin")[0].headers
    assert seen["Range"] == "bytes=100-" and "If-Range" not in seen


def test_max_bytes_is_checked_against_the_full_size_on_resume(
    harness: Harness, http_server: HttpServer
) -> None:
    make_part(harness, "m.bin", "l" * 32, BODY[:100], etag='"v1"', size=len(BODY))
    url = http_server.file("/m.bin", BODY, etag='"v1"')
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(max_bytes=1000), url, download_id="l" * 32)
    assert str(info.value) == (
        f"body larger than the size limit of 1000 bytes (Content-Range size {len(BODY)}): {url}"
    )


def test_public_import_path() -> None:
    from regisseur.actors.downloads import HttpSource as Exported

    assert Exported is HttpSource


# -- TLS -------------------------------------------------------------------------------


def test_tls_is_verified_and_a_bad_certificate_is_not_retried(
    harness: Harness, https_server: HttpServer
) -> None:
    url = https_server.file("/secure.bin", BODY)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url)
    assert str(info.value).startswith("TLS error (")
    assert "certificate verify failed" in str(info.value)
    assert str(info.value).endswith(f"): {url}")
    assert harness.timers.waits.empty()  # no retry was scheduled


def test_tls_with_a_ca_bundle(
    harness: Harness, https_server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    url = https_server.file("/secure.bin", BODY)
    path = harness.fetch(harness.source(verify=certificate[0]), url)
    assert Path(path).read_bytes() == BODY


@pytest.mark.timeout(30)
def test_a_relinked_download_directory_gets_the_next_files(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """The download directory is a link (``current -> release-1``) that is
    switched after a publish: the next file goes where the link now leads,
    beside its part, not into the directory it led to before."""
    old, new = tmp_path / "release-1", tmp_path / "release-2"
    old.mkdir()
    new.mkdir()
    current = tmp_path / "current"
    current.symlink_to(old)
    source = harness.source(directory=current)
    first = harness.fetch(source, http_server.file("/one.bin", b"one"))
    assert Path(first).read_bytes() == b"one"
    assert Path(first).parent == old
    switched = tmp_path / "switched"
    switched.symlink_to(new)
    switched.replace(current)  # atomically, as a deployment switches "current"
    second = harness.fetch(source, http_server.file("/two.bin", b"two"))
    assert Path(second).parent == new, second
    assert sorted(p.name for p in new.iterdir()) == ["two.bin"]
    assert sorted(p.name for p in old.iterdir()) == ["one.bin"]
