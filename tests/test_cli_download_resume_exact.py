"""A ``regisseur download`` run SIGKILLed mid-download: the next run resumes
at the part's last byte, not at its last checkpoint.

Real processes against a local server whose first full answer of
``/big.bin`` sends ``FIRST`` bytes, waits until the test has seen the
run's first checkpoint (``<part>.meta``), sends ``MORE`` bytes (too few
for another checkpoint: under 256 KiB), then holds. The run is killed
with ``FIRST + MORE`` bytes in its part and a checkpoint before them.
Before, the next run asked for ``Range: bytes=<checkpoint>-`` and fetched
what the part already held again; a meta file written in an earlier boot
of the machine (a power loss) or by a version that wrote none still does.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.serving import answer_empty, answer_in_stages, serving
from tests.test_cli_download import ROOT, WAIT, cli, run, succeeded, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

SIZE = 8 * 1024 * 1024  # over 1 MiB: spliced unless a checksum is asked for
FIRST = 64 * 1024
MORE = 128 * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/big.bin`` with ``Range`` support; the first full answer as the module says."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        server = self.server
        if self.path.rsplit("/", 1)[-1] != "big.bin":
            answer_empty(self, 404)
            return
        server.ranges.append(self.headers.get("Range"))
        if self.headers.get("Range") and server.busy_once.is_set():
            server.busy_once.clear()
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        stages = [
            (FIRST, server.first_sent, server.more),
            (FIRST + MORE, server.more_sent, server.gate),
        ]
        answer_in_stages(self, server.body, stages, wait=WAIT)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.body = os.urandom(SIZE)
        self.first_sent = threading.Event()
        self.more = threading.Event()  # send MORE (the test saw the first checkpoint)
        self.more_sent = threading.Event()
        self.gate = threading.Event()  # send the rest
        self.ranges: list[str | None] = []
        self.busy_once = threading.Event()  # answer the next ranged request 503
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/big.bin"

    def release(self) -> None:
        self.more.set()
        self.gate.set()


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    with serving(running, release=running.release, wait=WAIT):
        yield running


def _part(out_dir: Path) -> Path:
    [part] = out_dir.glob("big.bin.*.part")
    return part


def _meta(out_dir: Path) -> dict[str, Any]:
    """The ``.meta`` beside the part ({} while there is none)."""
    for meta in out_dir.glob("big.bin.*.part.meta"):
        try:
            found = json.loads(meta.read_text())
        except (OSError, ValueError):  # replaced as it was read
            return {}
        return found if isinstance(found, dict) else {}
    return {}


def _args(server: _Server, out_dir: Path, *, checksum: bool) -> list[str]:
    sha256 = ["--sha256", hashlib.sha256(server.body).hexdigest()] if checksum else []
    return ["download", server.url, "-o", str(out_dir), "--plain", *sha256]


def _command(server: _Server, out_dir: Path, *, checksum: bool) -> list[str]:
    return cli(*_args(server, out_dir, checksum=checksum))


def _start(command: list[str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as stderr:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _ahead_of_its_checkpoint(
    server: _Server, out_dir: Path, process: subprocess.Popen[str]
) -> None:
    """Wait until the run's part holds ``FIRST + MORE`` bytes, with its first
    checkpoint recorded before the ``MORE`` were sent."""
    assert server.first_sent.wait(WAIT), "the download never started"
    wait_until(lambda: _meta(out_dir).get("offset", 0) > 0, "the first checkpoint")
    server.more.set()
    wait_until(
        lambda: process.poll() is not None or _part(out_dir).stat().st_size == FIRST + MORE,
        "the part to hold the bytes sent after the checkpoint",
    )
    assert process.poll() is None, "the run ended before it was killed"


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT)


def _killed_mid_download(server: _Server, out_dir: Path, tmp_path: Path, *, checksum: bool) -> int:
    """A run killed with ``FIRST + MORE`` bytes in its part: its last checkpoint."""
    process = _start(_command(server, out_dir, checksum=checksum), tmp_path / "first.err")
    try:
        _ahead_of_its_checkpoint(server, out_dir, process)
        _kill(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert _part(out_dir).stat().st_size == FIRST + MORE
    checkpoint = int(_meta(out_dir)["offset"])
    assert 0 < checkpoint < FIRST + MORE
    return checkpoint


def _run_again(server: _Server, out_dir: Path, *, checksum: bool) -> list[str]:
    """The next run, to the exact file; the lines it said on stderr."""
    server.gate.set()
    again = run(*_args(server, out_dir, checksum=checksum))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {server.url}" in again.stderr
    assert again.stdout == f"{out_dir / 'big.bin'}\n"
    assert (out_dir / "big.bin").read_bytes() == server.body
    assert succeeded(out_dir) == [server.url]
    assert sorted(p.name for p in out_dir.iterdir() if ".part" in p.name) == []
    return again.stderr.splitlines()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("checksum", [False, True], ids=["spliced", "copied-with-sha256"])
def test_a_killed_run_is_resumed_from_the_last_byte_of_its_part(
    server: _Server,
    tmp_path: Path,
    checksum: bool,  # noqa: FBT001
) -> None:
    """Spliced (the kernel moves the body into the part) and copied through
    the buffered writer (``--sha256``: the part is hashed again from byte 0
    at the resume): every byte the killed process handed the kernel is in
    the part, and the resume asks for the first one it lacks."""
    out_dir = tmp_path / "out"
    _killed_mid_download(server, out_dir, tmp_path, checksum=checksum)
    _run_again(server, out_dir, checksum=checksum)
    assert server.ranges == [None, f"bytes={FIRST + MORE}-"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("boot", ["another", "none"], ids=["another-boot", "no-boot-recorded"])
def test_a_meta_of_another_boot_or_without_one_resumes_from_its_checkpoint(
    server: _Server, tmp_path: Path, boot: str
) -> None:
    """After a reboot (a power loss) the bytes past the checkpoint may never
    have reached the disk: the part is cut back to it. A meta file a version
    before this one wrote (no boot recorded) is read as before."""
    out_dir = tmp_path / "out"
    checkpoint = _killed_mid_download(server, out_dir, tmp_path, checksum=False)
    [meta_path] = out_dir.glob("big.bin.*.part.meta")
    meta = json.loads(meta_path.read_text())
    assert meta["boot"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    if boot == "another":
        meta["boot"] = "00000000-0000-4000-8000-000000000000"
    else:
        del meta["boot"]
    meta_path.write_text(json.dumps(meta))
    _run_again(server, out_dir, checksum=False)
    assert server.ranges == [None, f"bytes={checkpoint}-"]


@pytest.mark.timeout(120)
def test_a_run_taking_over_a_killed_runs_download_resumes_at_its_last_byte(
    server: _Server, tmp_path: Path
) -> None:
    """The waiting run takes the download over from the part the killed
    run left, from the first byte it lacks."""
    out_dir = tmp_path / "out"
    owner = _start(_command(server, out_dir, checksum=False), tmp_path / "owner.err")
    waiter: subprocess.Popen[str] | None = None
    waiter_log = tmp_path / "waiter.err"
    try:
        _ahead_of_its_checkpoint(server, out_dir, owner)
        waiter = _start(_command(server, out_dir, checksum=False), waiter_log)
        wait_until(lambda: "is downloading it" in waiter_log.read_text(), "the second run waiting")
        # Read before the kill: the waiter may write a checkpoint of its own soon after.
        assert int(_meta(out_dir)["offset"]) < FIRST + MORE
        _kill(owner)
        server.gate.set()
        out, _ = waiter.communicate(timeout=WAIT * 2)
    finally:
        server.release()
        for process in (owner, waiter):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    err = waiter_log.read_text()
    assert waiter.returncode == 0, err
    assert f"taking over {server.url}: pid {owner.pid} on host" in err
    assert out == f"{out_dir / 'big.bin'}\n"
    assert server.ranges == [None, f"bytes={FIRST + MORE}-"]
    assert (out_dir / "big.bin").read_bytes() == server.body
    assert succeeded(out_dir) == [server.url]


@pytest.mark.timeout(90)
def test_a_resumed_download_that_is_retried_is_said_resuming_not_downloading(
    server: _Server, tmp_path: Path
) -> None:
    """The next run resumes the killed run's download (the keeper does, as
    the run starts), and the server is busy once: the lines say
    ``resuming URL``, then ``retrying URL``, and never ``downloading URL``."""
    out_dir = tmp_path / "out"
    _killed_mid_download(server, out_dir, tmp_path, checksum=False)
    server.busy_once.set()
    lines = _run_again(server, out_dir, checksum=False)
    said = [line.split(" (attempt")[0] for line in lines if not line.startswith("  ")]
    assert said == [
        f"resuming {server.url}",
        f"retrying {server.url} in 0 s",
        f"done {server.url} -> {out_dir / 'big.bin'} (8.0 MiB)",
        f"1 of 1 download(s) done in {out_dir}",
    ]
    assert server.ranges == [None, f"bytes={FIRST + MORE}-", f"bytes={FIRST + MORE}-"]
