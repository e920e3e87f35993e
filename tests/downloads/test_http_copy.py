"""The copy loop of a plain ``Content-Length`` body, over HTTP and HTTPS.

After the bytes ``http.client`` buffered with the head, HttpSource reads
the socket itself and hands the part a whole buffer at a time (not each
16 KiB TLS record); these tests hold it to the bytes, the connection's
reuse, and the size of its writes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import _partfile
from tests.downloads.conftest import Harness, HttpServer, sha256
from tests.downloads.test_http import make_part

if TYPE_CHECKING:
    from collections.abc import Iterator

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
    opened = _partfile.PartFile.open

    class Counting:
        def __init__(self, file: Any) -> None:
            self._file = file

        def write(self, data: Any) -> int:
            writes.append(len(data))
            return int(self._file.write(data))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._file, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self._file.__exit__(*exc)

    monkeypatch.setattr(
        _partfile.PartFile, "open", lambda self, offset: Counting(opened(self, offset))
    )
    url = https_server.file("/big.bin", body)
    source = harness.source(verify=str(certificate[0]))
    path = harness.fetch(source, url, extra={"sha256": sha256(body)})  # hashed: never spliced
    assert Path(path).read_bytes() == body
    assert sum(writes) == len(body)
    assert len(writes) <= len(body) // source.chunk_size + 3, writes


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
    after = harness.fetch(source, server.file("/after.bin", BODY[:5000]), session=session)
    assert Path(after).read_bytes() == BODY[:5000]


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
    after = harness.fetch(source, server.file("/after.bin", BODY[:5000]), session=session)
    assert Path(after).read_bytes() == BODY[:5000]
