"""``regisseur download`` as a subprocess against a local server: Ctrl-C, resume, failures.

The server's first full answer sends one chunk and then holds until the
test releases it, so a run can be interrupted midway without racing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.serving import answer_empty, answer_held, serving

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0
SIZE = 3 * 1024 * 1024
FIRST = 256 * 1024  # the HttpSource's chunk size: the client writes it at once
DB_NAME = ".regisseur-downloads.db"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "regisseur.cli", *args]


def run(
    *args: str,
    script: str | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    errors: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """The CLI with ``args`` (or ``python -c script`` with them), to its end."""
    command = cli(*args) if script is None else [sys.executable, "-c", script, *args]
    return subprocess.run(
        command,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        errors=errors,
        env=env,
        timeout=timeout,
        check=False,
    )


def _masks(pid: int) -> dict[int, set[int]]:
    """The signals each thread of process ``pid`` blocks, by thread id (its SigBlk)."""
    masks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            for line in (task / "status").read_text().splitlines():
                if line.startswith("SigBlk:"):
                    bits = int(line.split()[1], 16)
                    masks[int(task.name)] = {n for n in range(1, 65) if bits & (1 << (n - 1))}
    return masks


_KEPT_FOR_MAIN = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def only_main_takes_signals(pid: int) -> None:
    """Every thread of process ``pid`` but the main one blocks Ctrl-C,
    SIGTERM and SIGHUP, and the main one blocks none of them: the kernel
    can hand these signals to the main thread only."""
    masks = _masks(pid)
    assert len(masks) > 4, masks  # the main thread, the timers, the kernel, the workers...
    assert not masks.pop(pid) & _KEPT_FOR_MAIN, "the main thread blocks a signal"
    takers = [tid for tid, blocked in masks.items() if not blocked >= _KEPT_FOR_MAIN]
    assert not takers, f"{len(takers)} of {len(masks)} other threads can take a signal"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Bounded wait on a file another process writes (there is no event to wait on)."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.01)


class _Files(http.server.BaseHTTPRequestHandler):
    """``/big.bin`` (and any name in ``server.served``) with Range support, a
    404 for anything else.

    A full answer while ``gate`` is not set sends FIRST bytes, sets
    ``first_sent`` and holds until ``gate`` is set. With a ``barrier``,
    each answer first waits there (a broken barrier answers 503).
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        server = self.server
        if self.path.rsplit("/", 1)[-1] not in server.served:
            answer_empty(self, 404)
            return
        if server.barrier is not None:
            try:
                server.barrier.wait(WAIT)
            except threading.BrokenBarrierError:
                answer_empty(self, 503)
                return
        server.ranges.append(self.headers.get("Range"))
        answer_held(
            self, server.body, gate=server.gate, first=server.first_sent, chunk=FIRST, wait=WAIT
        )

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.body = os.urandom(SIZE)
        self.gate = threading.Event()
        self.first_sent = threading.Event()
        self.ranges: list[str | None] = []
        self.served = {"big.bin"}
        self.barrier: threading.Barrier | None = None
        super().__init__(("127.0.0.1", 0), _Files)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def files() -> Iterator[_Server]:
    server = _Server()

    def release() -> None:
        server.gate.set()
        if server.barrier is not None:
            server.barrier.abort()

    with serving(server, release=release, wait=WAIT):
        yield server


def signal_midway(
    command: list[str], server: _Server, out_dir: Path, sig: int | None, *, parts: int = 1
) -> subprocess.Popen[str]:
    """Start ``command``; once ``parts`` .part files hold the first chunk,
    send it ``sig`` (None: send nothing). The process is killed if that fails."""
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.first_sent.wait(WAIT), "the download never started"
        wait_until(
            lambda: sum(p.stat().st_size >= FIRST for p in out_dir.glob("*.part")) >= parts,
            "the first chunk in every .part file",
        )
        if sig is not None:
            process.send_signal(sig)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process


def ended(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for ``process`` (killed after WAIT): its exit code, stdout and stderr."""
    try:
        out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def interrupted_download(
    url: str, out_dir: Path, server: _Server, *more: str, sig: int = signal.SIGINT
) -> tuple[int, str, str]:
    """Start a download (of ``more`` URLs too), send it ``sig`` (Ctrl-C) once
    every .part holds the first chunk."""
    command = cli("download", url, *more, "-o", str(out_dir), "--plain", "-j", str(1 + len(more)))
    return ended(signal_midway(command, server, out_dir, sig, parts=1 + len(more)))


def test_ctrl_c_keeps_the_part_and_the_next_run_resumes_it(files: _Server, tmp_path: Path) -> None:
    url = files.url("/data/big.bin")
    out_dir = tmp_path / "out"
    code, out, err = interrupted_download(url, out_dir, files)
    assert code == 130, out + err
    assert "Traceback" not in out + err
    assert "interrupted: 1 partial file(s) kept" in err
    [part] = out_dir.glob("*.part")
    assert part.stat().st_size >= FIRST
    assert (out_dir / DB_NAME).is_file(), "the records live in DIR by default"

    files.gate.set()
    expected = hashlib.sha256(files.body).hexdigest()
    again = run("download", url, "-o", str(out_dir), "--plain", "--sha256", expected)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {url}" in again.stderr
    final = out_dir / "big.bin"
    assert hashlib.sha256(final.read_bytes()).hexdigest() == expected
    assert files.ranges[0] is None
    resumed_from = [int(r.split("=")[1].split("-")[0]) for r in files.ranges[1:] if r]
    assert resumed_from and resumed_from[0] >= FIRST, f"a Range request: {files.ranges}"
    assert len(files.ranges) == 2, "no duplicate download of the pending URL"
    assert not list(out_dir.glob("*.part*"))

    # A third run finds it done: nothing is fetched, the checksum is checked on disk;
    # with another checksum the file on disk is not the one wanted: fetched again.
    third = run("download", url, "-o", str(out_dir), "--plain", "--sha256", expected)
    assert third.returncode == 0, third.stderr
    assert f"already downloaded {url} -> {final}" in third.stderr
    assert len(files.ranges) == 2
    wrong = run("download", url, "-o", str(out_dir), "--plain", "--sha256", "0" * 64)
    assert wrong.returncode == 1
    assert f"FAILED {url}: sha256 mismatch: expected {'0' * 64}, got {expected}" in wrong.stderr
    assert len(files.ranges) == 3
    assert hashlib.sha256(final.read_bytes()).hexdigest() == expected, "the good file is kept"


def succeeded(out_dir: Path) -> list[str]:
    """The URLs with a Succeeded record in ``out_dir`` (``regisseur status DIR --json``)."""
    result = run("status", str(out_dir), "--json")
    assert result.returncode == 0, result.stderr
    return sorted(
        d["target_id"]
        for d in json.loads(result.stdout)["downloads"]
        if d["state"].endswith("Succeeded")
    )


def resumes_from_the_part(
    server: _Server, url: str, out_dir: Path
) -> subprocess.CompletedProcess[str]:
    """The next run resumes from the size of the .part left, ends with the
    server's bytes and one Succeeded record; that run."""
    [part] = out_dir.glob("*.part")
    kept = part.stat().st_size
    assert kept >= FIRST
    server.gate.set()
    again = run("download", url, "-o", str(out_dir), "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    assert server.ranges[1:] == [f"bytes={kept}-"], server.ranges
    assert (out_dir / "big.bin").read_bytes() == server.body
    assert succeeded(out_dir) == [url]
    return again


def test_sigterm_stops_like_ctrl_c_and_the_next_run_resumes(files: _Server, tmp_path: Path) -> None:
    """What ``timeout``, systemd or a CI runner send: the run stops its system
    (parts flushed, offsets recorded), says so and exits 143; no traceback."""
    url = files.url("/data/big.bin")
    out_dir = tmp_path / "out"
    code, out, err = interrupted_download(url, out_dir, files, sig=signal.SIGTERM)
    assert code == 143, out + err
    assert "Traceback" not in out + err
    assert "terminated: 1 partial file(s) kept" in err
    again = resumes_from_the_part(files, url, out_dir)
    assert f"resuming {url}" in again.stderr


def test_failed_downloads_exit_1_with_one_failed_line_each(files: _Server, tmp_path: Path) -> None:
    files.gate.set()
    good, gone, nope = files.url("/big.bin"), files.url("/gone.bin"), files.url("/nope.bin")
    result = run("download", good, gone, nope, "-o", str(tmp_path), "-j", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = sorted(line for line in result.stderr.splitlines() if line.startswith("FAILED"))
    assert failed == [
        f"FAILED {gone}: HTTP 404 Not Found",
        f"FAILED {nope}: HTTP 404 Not Found",
    ]
    assert "Traceback" not in result.stderr
    assert (tmp_path / "big.bin").stat().st_size == SIZE
    assert "1 of 3 download(s) done" in result.stderr


def test_a_failed_line_says_the_url_once_and_keeps_where_a_redirect_led() -> None:
    from regisseur.cli.download import _failed_line

    url = "https://bob:pw@h.example/a.bin?token=t1"
    assert _failed_line(url, f"HTTP 404 Not Found: {url}") == (
        "FAILED https://bob:[REDACTED]@h.example/a.bin?token=[REDACTED]: HTTP 404 Not Found"
    )
    elsewhere = "https://h.example/moved.bin"
    assert _failed_line(url, f"HTTP 404 Not Found: {elsewhere}").endswith(
        f": HTTP 404 Not Found: {elsewhere}"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("http://a/x", "http://a/y", "--sha256", "ab" * 32), "--sha256 needs exactly one URL"),
        (("http://a/x", "--sha256", "xyz"), "not 64 hex digits"),
        (("http://a/x", "-j", "0"), "must be between 1 and 256, got 0"),
        # Before: ran with few URLs; with 300 it ended "DownloadSource 'http'
        # concurrency must be between 1 and 256, got 300" once started.
        ((*(f"http://a/{n}" for n in range(300)), "-j", "1000"), "between 1 and 256, got 1000"),
        (("http://a/x", "--retries", "-1"), "must be between 0 and 100, got -1"),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = run("download", *args, "-o", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert not list(tmp_path.iterdir()), "nothing started"


def test_jobs_are_bounded_as_a_source_bounds_its_workers() -> None:
    from regisseur.actors.downloads.source import MAX_CONCURRENCY
    from regisseur.cli._download_args import MOST_JOBS

    assert MOST_JOBS == MAX_CONCURRENCY


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from regisseur.cli._download_view import LineView, make_view

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    monkeypatch.setitem(sys.modules, "regisseur.cli._download_bars", None)
    assert type(make_view(Terminal(), plain=False)) is LineView


@pytest.mark.timeout(90)
def test_interrupted_downloads_run_beside_the_new_one_up_to_jobs(
    files: _Server, tmp_path: Path
) -> None:
    """A run starts as many workers as its URLs need, and grows to -j for the
    downloads an earlier run left (all in flight at once, or the barrier breaks)."""
    out_dir = tmp_path / "out"
    files.served = {"a.bin", "b.bin", "c.bin", "fresh.bin"}
    held = [files.url(f"/{name}.bin") for name in "abc"]
    code, _out, err = interrupted_download(held[0], out_dir, files, *held[1:])
    assert code == 130, err
    assert "interrupted: 3 partial file(s) kept" in err

    files.gate.set()
    files.barrier = threading.Barrier(4)  # the three resumed ones and the new one
    fresh = files.url("/fresh.bin")
    again = run("download", fresh, "-o", str(out_dir), "-j", "4", "--retries", "0", "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    for url in held:
        assert f"resuming {url}" in again.stderr
    for name in ("a", "b", "c", "fresh"):
        assert (out_dir / f"{name}.bin").read_bytes() == files.body
    assert "4 of 4 download(s) done" in again.stderr


def test_stdout_lists_the_files_in_the_order_of_the_urls(files: _Server, tmp_path: Path) -> None:
    """Before: a URL an earlier run left unfinished came first (resumed ones were
    waited for first), so ``paste urls.txt <(regisseur download -i urls.txt)``
    paired URLs with the wrong files; downloads of earlier runs that this run
    did not name come after its own."""
    out_dir = tmp_path / "out"
    files.served = {"a.bin", "b.bin", "c.bin", "left.bin"}
    left, second = files.url("/left.bin"), files.url("/b.bin")
    code, _out, err = interrupted_download(left, out_dir, files, second)
    assert code == 130, err

    files.gate.set()
    urls = [files.url("/a.bin"), second, files.url("/c.bin")]
    again = run("download", *urls, "-o", str(out_dir), "--plain", "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    names = [Path(line).name for line in again.stdout.splitlines()]
    assert names == ["a.bin", "b.bin", "c.bin", "left.bin"]


def _mid_download(files: _Server, url: str, out_dir: Path) -> subprocess.Popen[bytes]:
    """A run of ``download URL -o OUT_DIR`` that has its first chunk in the
    ``.part`` file and waits for the server's gate (the caller ends it)."""
    holder = subprocess.Popen(
        cli("download", url, "-o", str(out_dir), "--plain"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert files.first_sent.wait(WAIT), "the download never started"
        wait_until(
            lambda: any(p.stat().st_size >= FIRST for p in out_dir.glob("*.part")),
            "the first chunk in the .part file",
        )
    except BaseException:
        holder.kill()
        holder.wait(WAIT)
        raise
    return holder


@pytest.mark.timeout(90)  # above run()'s own 60 s, so the stopped run is always ended
def test_max_time_bounds_the_wait_for_a_download_another_run_holds(
    files: _Server, tmp_path: Path
) -> None:
    """Before: a second run waited for the other run's download without end, past its
    own --max-time, when that run was stopped (SIGSTOP) or stuck."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    holder = _mid_download(files, url, out_dir)
    try:
        holder.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        second = run("download", url, "-o", str(out_dir), "--plain", "--max-time", "1")
        took = time.monotonic() - started
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait(WAIT)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"pid {holder.pid} on host" in second.stderr
    assert "is still downloading it after the --max-time of 1 s" in second.stderr
    assert took < 20
    # The part is the other run's, and no disk was full: nothing to free, nothing kept here.
    assert "partial file(s) kept" not in second.stderr
    assert "free some space" not in second.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["killed", "interrupted"])
def test_status_tells_a_running_download_from_one_whose_run_is_gone(
    files: _Server, tmp_path: Path, how: str
) -> None:
    """Before: after the run was killed or stopped with Ctrl-C, ``status`` still
    showed its download as "InProgress, Downloading", as if it went on."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    holder = _mid_download(files, url, out_dir)
    try:
        live = run("status", str(out_dir), "--json")
        assert live.returncode == 0, live.stderr
        [record] = json.loads(live.stdout)["downloads"]
        assert record["running"] is True
        assert "InProgress, Downloading" in run("status", str(out_dir)).stdout
        holder.send_signal(signal.SIGKILL if how == "killed" else signal.SIGINT)
        holder.wait(WAIT)
    finally:
        holder.kill()
        holder.wait(WAIT)
    owners = out_dir / f"{DB_NAME}-owners"
    before = sorted(p.name for p in owners.iterdir())
    gone = run("status", str(out_dir), "--json")
    assert gone.returncode == 0, gone.stderr
    [record] = json.loads(gone.stdout)["downloads"]
    assert record["state"] == "InProgress, Downloading"  # the stored state, as it was
    assert record["running"] is False
    table = run("status", str(out_dir))
    assert "InProgress, stopped" in table.stdout, table.stdout
    assert sorted(p.name for p in owners.iterdir()) == before  # status changed nothing
    if how == "killed":  # its lock file is left: a FIFO planted there is never waited on
        [lock] = [p for p in owners.iterdir() if p.name != "plan.lock"]
        lock.unlink()
        os.mkfifo(lock)
        planted = run("status", str(out_dir), "--json", timeout=20)
        assert planted.returncode == 0, planted.stderr
        assert json.loads(planted.stdout)["downloads"][0]["running"] is None


@pytest.mark.timeout(90)  # above run()'s own 60 s
def test_max_time_bounds_the_wait_for_another_run_that_is_starting(tmp_path: Path) -> None:
    """Before: a run stopped (Ctrl-Z) while it started held the planning lock, and a
    second run in the directory waited for it without end, past its --max-time."""
    import fcntl

    out_dir = tmp_path / "out"
    locks = out_dir / f"{DB_NAME}-owners"
    locks.mkdir(parents=True, mode=0o700)
    fd = os.open(locks / "plan.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a stopped run starting in out_dir holds it
        url = "http://127.0.0.1:9/never.bin"
        result = run("download", url, "-o", str(out_dir), "--plain", "--max-time", "1")
    finally:
        os.close(fd)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "waiting for another run to start" in result.stderr
    assert f"another run in {out_dir} is still starting after the --max-time of 1 s" in (
        result.stderr
    )


@pytest.mark.timeout(90)
def test_a_download_another_run_finishes_is_said_done_by_the_waiting_run(
    files: _Server, tmp_path: Path
) -> None:
    """Before: the waiting run said ``waiting for URL: pid N ... is
    downloading it`` and then nothing about that URL on stderr (only its
    path on stdout and the count), as if the wait had never ended."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    holder = _mid_download(files, url, out_dir)
    errors = tmp_path / "stderr"
    try:
        with errors.open("w") as stderr:
            waiter = subprocess.Popen(
                cli("download", url, "-o", str(out_dir), "--plain"),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        try:
            wait_until(lambda: "waiting for" in errors.read_text(), "the second run to wait")
            files.gate.set()
            out, _ = waiter.communicate(timeout=WAIT)
        finally:
            waiter.kill()
            waiter.wait(WAIT)
    finally:
        files.gate.set()
        holder.wait(WAIT)
    err = errors.read_text()
    assert waiter.returncode == 0, err
    final = out_dir / "big.bin"
    assert out == f"{final}\n"
    assert f"done {url} -> {final} (3.0 MiB, by pid {holder.pid} on host" in err, err


@pytest.mark.timeout(90)
def test_a_moved_or_copied_directory_keeps_its_downloads(files: _Server, tmp_path: Path) -> None:
    """The records live in the directory (``DIR/.regisseur-downloads.db``)
    and go with it. Before: they named the files by their old absolute
    paths, so after ``mv DIR NEW`` the same command fetched every file again
    beside itself (``big (1).bin``: "big.bin is gone"), and in a copy it
    answered with the files of the original directory."""
    files.gate.set()
    url = files.url("/big.bin")
    first = run("download", url, "-o", str(tmp_path / "out"), "--plain")
    assert first.returncode == 0, first.stderr
    fetched = len(files.ranges)

    moved = tmp_path / "moved"
    (tmp_path / "out").rename(moved)
    again = run("download", url, "-o", str(moved), "--plain")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{moved / 'big.bin'}\n"
    assert f"already downloaded {url} -> {moved / 'big.bin'}" in again.stderr
    assert len(files.ranges) == fetched, "nothing fetched again"
    assert sorted(p.name for p in moved.iterdir() if not p.name.startswith(DB_NAME)) == ["big.bin"]

    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    in_copy = run("download", url, "-o", str(copy), "--plain")
    assert in_copy.returncode == 0, in_copy.stderr
    assert in_copy.stdout == f"{copy / 'big.bin'}\n"
    assert len(files.ranges) == fetched

    # A file under the name that is not the download (another size) is not
    # taken for it: fetched again, beside it.
    (copy / "big.bin").write_bytes(b"changed")
    changed = run("download", url, "-o", str(copy), "--plain")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout == f"{copy / 'big (1).bin'}\n"
    assert (copy / "big (1).bin").read_bytes() == files.body
