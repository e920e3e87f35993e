"""The copy loop of a plain ``Content-Length`` body, over HTTP and HTTPS.

After the bytes ``http.client`` buffered with the head, HttpSource reads
the socket itself and hands the part a whole buffer at a time (not each
16 KiB TLS record); these tests hold it to the bytes (whatever their
pieces, pauses and errors, and never past a range's end), the
connection's reuse (never after a short body or one with bytes after
it), the size of its writes, and its reports while a server is quiet.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import _partfile
from regisseur.actors.downloads.http_errors import DownloadError, DownloadInterrupted
from regisseur.messages import DownloadProgressed, DownloadState
from tests.downloads.conftest import WAIT, Harness, HttpServer, serve_bytes, sha256
from tests.downloads.test_http import make_part
from tests.reliability.test_hostile_http import http_system

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Not a multiple of any buffer or TLS record; under 1 MiB, so never spliced.
BODY = random.Random(7).randbytes(300_001)


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest) -> Iterator[HttpServer]:
    """The plain server, or the TLS one (after the harness is made, closed after it)."""
    name = "http_server" if request.param == "http" else "https_server"
    served: HttpServer = request.getfixturevalue(name)
    yield served


def head_and_body(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def next_download_is_exact(harness: Harness, server: HttpServer, source: Any, session: Any) -> None:
    """A download after the test's on the same session arrives exact (a dirty
    connection handed out again would break it)."""
    after = harness.fetch(source, server.file("/after.bin", BODY[:5000]), session=session)
    assert Path(after).read_bytes() == BODY[:5000]


def exact_on_one_connection(
    harness: Harness, server: HttpServer, source: Any, url: str, body: bytes
) -> None:
    """``url`` (checksummed: never spliced) arrives as ``body``, and the next
    download goes over the same connection, exact."""
    session = harness.session(source)
    path = harness.fetch(source, url, session=session, extra={"sha256": sha256(body)})
    assert Path(path).read_bytes() == body
    next_download_is_exact(harness, server, source, session)
    assert server.connection_count() == 1


class SpiedPart:
    """The part's writer, with every ``write`` seen by ``on_write`` first.

    ``on_write(file, data)`` returns what ``write`` returns (it may write
    part of ``data`` and raise, as a filling disk does).
    """

    def __init__(self, file: Any, on_write: Callable[[Any, Any], int]) -> None:
        self._file = file
        self._on_write = on_write

    def write(self, data: Any) -> int:
        return self._on_write(self._file, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> SpiedPart:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.__exit__(*exc)


def spy_on_parts(patch: pytest.MonkeyPatch, on_write: Callable[[Any, Any], int]) -> None:
    """Make every part this test opens a :class:`SpiedPart`."""
    opened = _partfile.PartFile.open
    patch.setattr(
        _partfile.PartFile, "open", lambda self, offset: SpiedPart(opened(self, offset), on_write)
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("chunk_size", [1024, 256 * 1024])
def test_body_sent_with_its_head_arrives_whole_and_the_connection_is_reused(
    harness: Harness,
    server: HttpServer,
    certificate: tuple[Path, Path],
    chunk_size: int,
) -> None:
    """The head and the start of the body come in one write, so ``http.client``
    holds body bytes in its buffer (more than a 1 KiB buffer of ours takes in
    one read) when the copy starts: they come first, then the socket's."""
    url = server.route("/one.bin", lambda request: request.raw(head_and_body(BODY)))
    other = server.route("/two.bin", lambda request: request.raw(head_and_body(BODY[::-1])))
    source = harness.source(chunk_size=chunk_size, verify=str(certificate[0]))
    session = harness.session(source)
    first = harness.fetch(source, url, session=session, extra={"sha256": sha256(BODY)})
    second = harness.fetch(source, other, session=session)
    assert Path(first).read_bytes() == BODY
    assert Path(second).read_bytes() == BODY[::-1]
    assert server.connection_count() == 1  # the whole first body freed the connection


@pytest.mark.timeout(30)
def test_a_short_body_is_an_error_and_its_connection_is_not_reused(
    harness: Harness, server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    def cut(request: Any) -> None:
        request.raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY[:70_000])
        request.close()

    url = server.sequence("/cut.bin", cut, lambda request: request.raw(head_and_body(BODY)))
    source = harness.source(retries=0, verify=str(certificate[0]))
    session = harness.session(source)
    with pytest.raises(Exception, match="70000"):
        harness.fetch(source, url, session=session, extra={"keep_partial": True})
    path = harness.fetch(source, server.file("/next.bin", BODY[:1000]), session=session)
    assert Path(path).read_bytes() == BODY[:1000]
    assert server.connection_count() == 2  # the cut connection was not handed out again


@pytest.mark.timeout(30)
def test_a_fast_tls_body_reaches_the_part_a_buffer_at_a_time(
    harness: Harness,
    https_server: HttpServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: one write (with its progress report and hash update) per TLS
    record of 16 KiB, 64 for a 1 MiB body; the buffer is 256 KiB."""
    body = BODY * 4  # 1.2 MB
    writes: list[int] = []

    def counting(file: Any, data: Any) -> int:
        writes.append(len(data))
        return int(file.write(data))

    spy_on_parts(monkeypatch, counting)
    url = https_server.file("/big.bin", body)
    source = harness.source(verify=str(certificate[0]))
    path = harness.fetch(source, url, extra={"sha256": sha256(body)})  # hashed: never spliced
    assert Path(path).read_bytes() == body
    assert sum(writes) == len(body)
    assert len(writes) <= len(body) // source.chunk_size + 3, writes


@pytest.mark.timeout(30)
def test_a_write_that_failed_midway_is_not_repeated_and_the_resume_is_exact(
    harness: Harness,
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills while a buffer is written: part of it reached the part,
    then the write failed. Writing the buffer again (as the error path of the
    copy loop did at first) would double those bytes in the part."""
    body = BODY * 2  # 600 KB: more than two buffers, so a meta file records the good length
    calls: list[int] = []

    def fills_up(file: Any, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 2:
            file.write(data[: len(data) // 2])  # half of it, then the disk is full
            raise OSError(28, "No space left on device")
        return int(file.write(data))

    url = http_server.file("/full.bin", body, etag='"v1"')
    source = harness.source(chunk_size=64 * 1024)
    with monkeypatch.context() as patch:
        spy_on_parts(patch, fills_up)
        with pytest.raises(Exception, match="No space left on device"):
            harness.fetch(source, url, download_id="f" * 32, extra={"keep_partial": True})
    assert len(calls) == 2  # the failed write was not tried again
    path = harness.fetch(source, url, download_id="f" * 32)
    assert Path(path).read_bytes() == body


def range_head(first: int, size: int, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\n"
        b'ETag: "v1"\r\n%b\r\n' % (first, size - 1, size, extra)
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("framing", ["longer length", "no length", "chunked"])
def test_bytes_past_the_content_range_never_reach_the_file(
    harness: Harness, server: HttpServer, certificate: tuple[Path, Path], framing: str
) -> None:
    """A resumed answer that carries more than its Content-Range promises.

    Before: the copy read the whole answer (to its own Content-Length, to
    the end of the connection, or to the last chunk), so the bytes past the
    range were appended and a file longer than its size was published as a
    success. Now the copy stops at the range's end; the rest of the answer
    is left unread, so its connection is not used again."""
    rest = BODY[1000:] + b"JUNK" * 20
    if framing == "longer length":
        answer = range_head(1000, len(BODY), b"Content-Length: %d\r\n" % len(rest)) + rest
    elif framing == "no length":
        answer = range_head(1000, len(BODY), b"Connection: close\r\n") + rest
    else:
        framed = b"%x\r\n%b\r\n0\r\n\r\n" % (len(rest), rest)
        answer = range_head(1000, len(BODY), b"Transfer-Encoding: chunked\r\n") + framed

    def resumed(request: Any) -> None:
        request.raw(answer)
        if framing == "no length":
            request.close()

    make_part(harness, "r.bin", "r" * 32, BODY[:1000], etag='"v1"', size=len(BODY))
    url = server.route("/r.bin", resumed)
    source = harness.source(retries=0, verify=str(certificate[0]))
    session = harness.session(source)
    path = harness.fetch(source, url, session=session, download_id="r" * 32)
    assert Path(path).read_bytes() == BODY
    next_download_is_exact(harness, server, source, session)


@pytest.mark.timeout(30)
def test_bytes_after_a_whole_body_do_not_break_the_next_download(
    harness: Harness, server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    """A server that sends more than its Content-Length, in the same write.

    Before (over TLS): the body was read from the socket up to its last
    byte exactly; the junk after it, decrypted with it in the same TLS
    record, stayed inside the TLS socket where the pool's check for a
    dropped connection (is the socket readable?) cannot see it, so the
    connection was used again and the next download failed on
    ``BadStatusLine: JUNK...``."""
    body = BODY[:20_000]
    url = server.route("/junk.bin", lambda request: request.raw(head_and_body(body) + b"JUNK" * 8))
    source = harness.source(retries=0, verify=str(certificate[0]))
    session = harness.session(source)
    assert Path(harness.fetch(source, url, session=session)).read_bytes() == body
    next_download_is_exact(harness, server, source, session)


def trickled(body: bytes) -> Callable[[Any], None]:
    """The head with 3 body bytes, 40 more one write each, then the rest at once."""

    def answer(request: Any) -> None:
        whole = head_and_body(body)
        start = len(whole) - len(body)
        request.raw(whole[: start + 3])
        for at in range(start + 3, min(start + 43, len(whole))):
            request.write(whole[at : at + 1])
        request.write(whole[start + 43 :])

    return answer


@pytest.mark.timeout(30)
@pytest.mark.parametrize("size", [0, 1, 8193, 16385])
@pytest.mark.parametrize("chunk_size", [1, 7, 8192])
def test_a_body_in_any_pieces_arrives_exact(
    harness: Harness,
    server: HttpServer,
    certificate: tuple[Path, Path],
    size: int,
    chunk_size: int,
) -> None:
    """Buffers of 1, 7 and 8192 bytes (http.client's own size) against bytes
    that come with the head, one by one, then in a burst: whichever reader
    holds them, every byte lands once, in order, and the connection is clean
    for the next download."""
    body = BODY[:size]
    url = server.route("/pieces.bin", trickled(body))
    source = harness.source(chunk_size=chunk_size, verify=str(certificate[0]))
    exact_on_one_connection(harness, server, source, url, body)


@pytest.mark.timeout(30)
def test_bytes_read_before_a_timeout_are_kept_and_resumed_from(
    harness: Harness, server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    """The 5,001 bytes wait in the copy's buffer (neither full nor due on the
    test's clock) when the read times out: they reach the part, its record
    says so, and the next run asks for the rest from there."""
    gate = server.gate()

    def stall(request: Any) -> None:
        request.head(200, {"Content-Length": str(len(BODY)), "ETag": '"v1"'})
        request.write(BODY[:5001])
        gate.wait(WAIT)

    url = server.sequence("/stall.bin", stall, lambda r: serve_bytes(r, BODY, etag='"v1"'))
    options = {"retries": 0, "keep_partial": True, "verify": str(certificate[0])}
    with pytest.raises(DownloadError, match="read timed out after 0.5s: received 5001 of"):
        harness.fetch(harness.source(read_timeout=0.5, **options), url, download_id="t" * 32)
    gate.set()
    part = harness.directory / f"stall.bin.{'t' * 32}.part"
    assert part.read_bytes() == BODY[:5001]
    path = harness.fetch(
        harness.source(**options), url, download_id="t" * 32, extra={"sha256": sha256(BODY)}
    )
    assert Path(path).read_bytes() == BODY
    assert server.seen("/stall.bin")[1].headers["Range"] == "bytes=5001-"


@pytest.mark.timeout(30)
def test_a_server_silent_after_its_head_times_out_after_the_read_timeout(
    harness: Harness, server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    """The head, then nothing: the download fails after the read timeout
    (2 s), not twice that (the first read, through ``http.client``'s
    reader, waited all of it, and the quiet reads after it waited it again)."""
    gate = server.gate()

    def silent(request: Any) -> None:
        request.head(200, {"Content-Length": str(len(BODY))})
        gate.wait(WAIT)

    url = server.route("/silent.bin", silent)
    source = harness.source(read_timeout=2.0, retries=0, verify=str(certificate[0]))
    began = time.monotonic()
    with pytest.raises(DownloadError, match="read timed out after 2s: received 0 of 300001"):
        harness.fetch(source, url)
    took = time.monotonic() - began
    gate.set()
    assert 2.0 <= took < 3.0


@pytest.mark.timeout(30)
def test_a_stop_ends_a_blocked_tls_read_at_once_and_the_next_run_resumes(
    harness: Harness, https_server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    """The server goes quiet mid-body and never speaks again: the stop shuts
    the TLS socket down (the read would wait 30 s), the part keeps its good
    bytes, and the next run resumes to the exact file."""
    gates = [https_server.gate() for _ in range(2)]

    def quiet(request: Any) -> None:
        request.head(200, {"Content-Length": str(len(BODY)), "ETag": '"v1"'})
        gates[0].wait(WAIT)
        request.write(BODY[:1024])
        gates[1].wait(WAIT)

    url = https_server.sequence("/quiet.bin", quiet, lambda r: serve_bytes(r, BODY, etag='"v1"'))
    source = harness.source(chunk_size=1024, verify=str(certificate[0]))
    running = harness.start(source, url, download_id="q" * 32)
    harness.wait_progress(0)  # the head is read, the part open
    harness.clock.advance(1.0)  # let the next progress report through the throttle
    gates[0].set()
    harness.wait_progress(1024)  # a full buffer is on disk; the next read blocks
    running.token.cancel("stopping")
    with pytest.raises(DownloadInterrupted):
        running.result()
    part = harness.directory / f"quiet.bin.{'q' * 32}.part"
    assert part.read_bytes() == BODY[:1024]
    path = harness.fetch(source, url, download_id="q" * 32, extra={"sha256": sha256(BODY)})
    assert Path(path).read_bytes() == BODY
    assert https_server.seen("/quiet.bin")[1].headers["Range"] == "bytes=1024-"


@pytest.mark.timeout(30)
def test_bytes_that_came_before_the_server_went_quiet_are_reported(
    server: HttpServer, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    """A burst, then silence: a server that stalls mid-body (on the real clock).

    Before: the burst waited in the copy's buffer (not full, and no read
    returned to see that a report was due) for as long as the server stayed
    quiet, up to the read timeout: no progress showed it and no checkpoint
    recorded it. Now a read of a quiet socket gives up after the reporting
    interval, and what came is written and reported."""
    burst = 100_000
    gate = server.gate()

    def stall(request: Any) -> None:
        request.raw(head_and_body(BODY)[: -len(BODY)] + BODY[:burst])
        gate.wait(WAIT)

    url = server.route("/quiet.bin", stall)
    progress_shows_while_stalled(url, burst, tmp_path, verify=str(certificate[0]))


def progress_shows_while_stalled(url: str, sent: int, folder: Path, **options: Any) -> None:
    """Through a system on the real clock, a progress report of ``sent`` bytes
    comes within ``WAIT`` while the server of ``url`` holds the rest (its read
    timeout is longer); then the download is cancelled."""
    shown = threading.Event()

    def seen(event: object) -> None:
        if isinstance(event, DownloadProgressed) and event.record.transferred == sent:
            shown.set()

    options.setdefault("read_timeout", WAIT * 2)
    with http_system(folder, **options) as system, system.downloads.subscribe(seen):
        download = system.downloads.submit("http", url, "stalled")
        assert shown.wait(WAIT)
        assert system.downloads.cancel(download) is True
        assert system.downloads.wait(download, WAIT).state is DownloadState.CANCELLED


@pytest.mark.timeout(30)
def test_pauses_of_the_server_lose_no_byte_and_keep_the_connection(
    harness: Harness, server: HttpServer, certificate: tuple[Path, Path]
) -> None:
    """Pauses longer than a quiet read waits (the server's own pace, 0.3 s):
    one before the first body byte (``http.client``'s reader gives up and the
    socket is read directly from then on), one mid-body; every byte lands,
    the part is whole and the connection serves the next download."""
    pace = server.gate()  # never opened: it only paces the server

    def paused(request: Any) -> None:
        whole = head_and_body(BODY)
        start = len(whole) - len(BODY)
        request.raw(whole[:start])
        pace.wait(0.3)
        request.write(whole[start : start + 50_000])
        pace.wait(0.3)
        request.write(whole[start + 50_000 :])

    url = server.route("/paused.bin", paused)
    source = harness.source(read_timeout=WAIT, verify=str(certificate[0]))
    exact_on_one_connection(harness, server, source, url, BODY)
