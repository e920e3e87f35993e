"""HttpSource's zero-copy path: large plain-HTTP bodies moved with splice(2).

Bodies of at least ``_splice.MIN_BYTES`` over plain HTTP, with no checksum
to compute, go socket → pipe → file inside the kernel. These tests check
that the path is taken, and that it keeps every promise of the copy loop:
byte-identical files, progress, truncation and resume, read timeouts,
cancel midway, and a fallback that loses nothing when the socket or the
file refuses ``splice``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import _splice
from regisseur.actors.downloads._partfile import PartFile, Validators
from regisseur.actors.downloads.http import DownloadError, DownloadInterrupted
from tests.downloads.conftest import WAIT, Harness, HttpServer, Request, serve_bytes, sha256
from tests.downloads.test_http_copy import progress_shows_while_stalled

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "splice"), reason="splice(2) is Linux-only"),
]

# 3 MiB and an odd tail, not a multiple of the pipe or the step; every byte
# position distinguishable enough that a reordering or a lost block shows.
BIG = b"".join(i.to_bytes(4, "big") for i in range(786_432)) + b"tail-bytes"


class Moves(list[int]):
    """The byte counts of every Splicer.move (empty: the path was not taken)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def add(self, moved: int) -> None:
        with self.changed:
            self.append(moved)
            self.changed.notify_all()

    def wait_for_one(self) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self) > 0, WAIT):
                pytest.fail(f"nothing was spliced within {WAIT}s")


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> Iterator[Moves]:
    seen = Moves()
    original = _splice.Splicer.move

    def move(self: _splice.Splicer, count: int) -> int:
        moved = original(self, count)
        seen.add(moved)
        return moved

    monkeypatch.setattr(_splice.Splicer, "move", move)
    yield seen


def test_a_large_plain_body_is_spliced_byte_identical(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    url = http_server.file("/big.bin", BIG, etag='"v1"')
    path = harness.fetch(harness.source(), url)
    assert Path(path).read_bytes() == BIG
    assert moves and sum(moves) < len(BIG)  # the rest came from http.client's buffer
    assert harness.progress[-1].transferred == len(BIG)
    assert harness.files() == ["big.bin"]


def test_two_spliced_downloads_on_one_session(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    """The spliced response's connection is closed, never reused mid-body."""
    source = harness.source()
    session = harness.session(source)
    first = http_server.file("/one.bin", BIG)
    second = http_server.file("/two.bin", BIG[::-1])
    assert Path(harness.fetch(source, first, session=session)).read_bytes() == BIG
    assert Path(harness.fetch(source, second, session=session)).read_bytes() == BIG[::-1]


def test_a_checksum_is_computed_on_the_copy_path(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    url = http_server.file("/big.bin", BIG)
    path = harness.fetch(harness.source(), url, extra={"sha256": sha256(BIG)})
    assert Path(path).read_bytes() == BIG
    assert moves == []


def test_a_small_body_is_not_spliced(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    url = http_server.file("/small.bin", BIG[: _splice.MIN_BYTES - 1])
    assert Path(harness.fetch(harness.source(), url)).read_bytes() == BIG[: _splice.MIN_BYTES - 1]
    assert moves == []


def test_https_is_never_spliced(
    harness: Harness, https_server: HttpServer, certificate: tuple[Path, Path], moves: Moves
) -> None:
    url = https_server.file("/big.bin", BIG)
    path = harness.fetch(harness.source(verify=certificate[0]), url)
    assert Path(path).read_bytes() == BIG
    assert moves == []


def test_a_spliced_body_cut_short_is_resumed(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    cut = 1_500_000

    def first(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BIG)), "ETag": '"v1"'})
        request.write(BIG[:cut])
        request.close()

    url = http_server.sequence("/big.bin", first, lambda r: serve_bytes(r, BIG, etag='"v1"'))
    running = harness.start(harness.source(), url)
    assert harness.timers.next_wait() == 1.0
    harness.clock.advance(1.0)
    assert Path(running.result()).read_bytes() == BIG
    again = http_server.seen("/big.bin")[1].headers
    assert (again["Range"], again["If-Range"]) == (f"bytes={cut}-", '"v1"')
    assert moves  # the resumed body (1.6 MB) was spliced into the existing part too


def test_a_truncated_spliced_body_is_an_error(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    def cut(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BIG))})
        request.write(BIG[:2_000_000])
        request.close()

    url = http_server.route("/cut", cut)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(retries=0), url)
    assert str(info.value) == f"truncated: received 2000000 of {len(BIG)} bytes from {url}"
    assert harness.files() == []
    assert moves


def test_a_stalled_spliced_body_times_out(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    gate = http_server.gate()

    def stall(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BIG))})
        request.write(BIG[:1_500_000])
        gate.wait(WAIT)

    url = http_server.route("/stall", stall)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(retries=0, read_timeout=0.2), url)
    assert str(info.value) == (
        f"read timed out after 0.2s: received 1500000 of {len(BIG)} bytes from {url}"
    )
    gate.set()


def test_cancel_ends_a_spliced_body_waiting_for_data(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    gate = http_server.gate()

    def slow(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BIG))})
        request.write(BIG[:1_500_000])
        gate.wait(WAIT)  # then nothing more: only the cancel can end the wait

    url = http_server.route("/slow.bin", slow)
    running = harness.start(harness.source(read_timeout=WAIT * 4), url)
    moves.wait_for_one()  # in the splice loop; soon waiting for bytes that never come
    running.token.cancel("cancelled")
    with pytest.raises(DownloadInterrupted) as info:
        running.result()  # well before the 20 s read timeout
    assert info.value.reason == "cancelled"
    assert harness.files() == []
    gate.set()


def _refuse(monkeypatch: pytest.MonkeyPatch, *, into_files: bool) -> list[int]:
    """Make os.splice fail with EINVAL from sockets, or into regular files."""
    refused: list[int] = []
    real = os.splice

    def splice(src: int, dst: int, count: int, *args: Any, **kwargs: Any) -> int:
        target = dst if into_files else src
        mode = os.fstat(target).st_mode
        if stat.S_ISREG(mode) if into_files else stat.S_ISSOCK(mode):
            refused.append(count)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(src, dst, count, *args, **kwargs)

    monkeypatch.setattr(os, "splice", splice)
    return refused


def test_a_socket_refusing_splice_is_copied_instead(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = _refuse(monkeypatch, into_files=False)
    url = http_server.file("/big.bin", BIG)
    assert Path(harness.fetch(harness.source(), url)).read_bytes() == BIG
    assert len(refused) == 1  # tried once, then the copy loop


def test_a_file_refusing_splice_is_written_from_the_pipe(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = _refuse(monkeypatch, into_files=True)
    url = http_server.file("/big.bin", BIG)
    assert Path(harness.fetch(harness.source(), url)).read_bytes() == BIG
    assert len(refused) == 1  # tried once, then os.write for the rest


def test_plain_socket_rejects_anything_but_a_tcp_socket() -> None:
    assert _splice.plain_socket(object()) is None
    assert _splice.plain_socket(None) is None


def test_a_full_disk_while_splicing_is_a_write_error_and_not_retried(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.splice

    def splice(src: int, dst: int, count: int, *args: Any, **kwargs: Any) -> int:
        if stat.S_ISREG(os.fstat(dst).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, count, *args, **kwargs)

    monkeypatch.setattr(os, "splice", splice)
    url = http_server.file("/big.bin", BIG)
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url, download_id="c" * 32)
    part = harness.directory / f"big.bin.{'c' * 32}.part"
    text = f"cannot write {str(part)!r}: No space left on device"
    assert str(info.value).startswith(f"{text}; ")
    assert str(info.value).endswith(" bytes kept for a re-run")
    assert len(http_server.seen("/big.bin")) == 1  # a full disk is not worth a retry
    # What reached the part before the refusal is kept for a re-run.
    assert harness.files() == [part.name, f"{part.name}.meta"]


def test_urgent_data_mid_body_falls_back_to_copying_instead_of_spinning(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    """splice stops at a TCP urgent byte while the socket stays readable; the
    copy loop takes over (recv skips the urgent byte, as the copy path does)."""

    def urgent(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BIG))})
        request.write(BIG[:1_500_000])
        request._handler.connection.send(b"!", socket.MSG_OOB)
        request.write(BIG[1_500_000:])

    url = http_server.route("/urgent.bin", urgent)
    path = harness.fetch(harness.source(retries=0, read_timeout=WAIT), url)
    assert Path(path).read_bytes() == BIG
    assert moves  # spliced up to the urgent byte, copied after it


def test_a_206_shorter_than_its_content_range_is_not_read_past(
    harness: Harness, http_server: HttpServer, moves: Moves
) -> None:
    """The body ends at the response's Content-Length even when Content-Range
    promises more: the bytes after it are never written into the part."""
    offset = 100_000
    short = 1_200_000
    part_id = "e" * 32

    def lying(request: Request) -> None:
        request.head(
            206,
            {
                "Content-Length": str(short),
                "Content-Range": f"bytes {offset}-{len(BIG) - 1}/{len(BIG)}",
                "ETag": '"v1"',
            },
        )
        request.write(BIG[offset : offset + short] + b"GARBAGE" * 1000)
        request.close()

    harness.directory.mkdir(parents=True, exist_ok=True)
    part = PartFile(harness.directory, ["big.bin"], part_id)
    part.path.write_bytes(BIG[:offset])
    part.save(Validators('"v1"', None, len(BIG)), offset)
    url = http_server.route("/big.bin", lying)
    with pytest.raises(DownloadError, match="truncated"):
        harness.fetch(harness.source(retries=0, keep_partial=True), url, download_id=part_id)
    assert part.path.read_bytes() == BIG[: offset + short]


def test_without_a_large_pipe_the_body_is_copied(
    harness: Harness, http_server: HttpServer, moves: Moves, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unprivileged user past pipe-user-pages-soft is refused a 1 MiB pipe:
    a 64 KiB pipe would cost more than the copy loop, so that loop runs."""
    import fcntl

    real = fcntl.fcntl

    def fcntl_refusing(fd: int, command: int, *args: Any) -> Any:
        if command == _splice._F_SETPIPE_SZ:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(fd, command, *args)

    def pipes() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor, gone by now
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        return count

    monkeypatch.setattr(fcntl, "fcntl", fcntl_refusing)
    before = pipes()
    url = http_server.file("/big.bin", BIG)
    assert Path(harness.fetch(harness.source(), url)).read_bytes() == BIG
    assert moves == []
    assert pipes() == before  # the small pipe was closed again


def test_a_stall_after_splice_was_refused_still_shows_what_came(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A socket that refuses splice mid-body, then a server that goes quiet.

    Before: the rest was read through ``http.client``'s buffered reader,
    whose ``readinto`` waits until the whole 256 KiB buffer is full: the
    bytes of a stalled server's last burst were neither written nor
    reported (nor seen by the low-speed watch) until the read timeout.
    Now the rest is read from the socket like any copied body, and a quiet
    socket hands over what came after the reporting interval."""
    _refuse(monkeypatch, into_files=False)
    sent = 1_100_000  # past MIN_BYTES, and not a multiple of the buffer
    gate = http_server.gate()

    def stall(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BIG))})
        request.write(BIG[:sent])
        gate.wait(WAIT)

    url = http_server.route("/stalled.bin", stall)
    progress_shows_while_stalled(url, sent, tmp_path)
