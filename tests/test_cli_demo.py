"""``regisseur demo`` as a subprocess: plain lines, JSON lines, the live view, Ctrl-C.

The three complete runs (plain, JSON, live on a pseudo-terminal) run side by
side in one module fixture, so the module takes about one demo's time.
Every wait on a subprocess is bounded.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
RUN_LIMIT = 40.0  # the demo ends itself within 30 s
STAMP = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


def demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "regisseur.cli", "demo", *args]


@dataclass
class Run:
    returncode: int
    out: str
    err: str


def _pty_run(args: list[str]) -> Run:
    """Run on a pseudo-terminal (120x60) so stdout is a TTY; read it all."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "60"}
    process = subprocess.Popen(
        args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # a pty's buffer is small: read while it runs
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, name="test-pty-reader")
    reader.start()
    try:
        _, err = process.communicate(timeout=RUN_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(RUN_LIMIT)
        os.close(master)
    return Run(process.returncode, b"".join(chunks).decode("utf-8", "replace"), err.decode())


def _pipe_run(args: list[str]) -> Run:
    result = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=RUN_LIMIT, check=False
    )
    return Run(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """One plain, one JSON and (with rich) one live demo, side by side."""
    jobs: dict[str, Any] = {
        "plain": lambda: _pipe_run(demo("--plain")),
        "json": lambda: _pipe_run(demo("--json")),
    }
    try:
        import rich  # noqa: F401
    except ImportError:
        pass
    else:
        jobs["live"] = lambda: _pty_run(demo())
    results: dict[str, Run] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            results[name] = jobs[name]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_LIMIT + 5)
    if errors:
        raise errors[0]
    return results


def stamped(out: str) -> list[tuple[float, str]]:
    """The ``[  1.23s] text`` lines as (seconds, text)."""
    lines = []
    for line in out.splitlines():
        match = STAMP.match(line)
        if match:
            lines.append((float(match.group(1)), match.group(2)))
    return lines


# -- plain ----------------------------------------------------------------------------


def test_plain_demo_ends_with_exit_code_0_well_within_30_seconds(runs: dict[str, Run]) -> None:
    run = runs["plain"]
    assert run.returncode == 0, run.out + run.err
    assert "Traceback" not in run.out + run.err
    assert run.err == ""
    assert stamped(run.out)[-1][0] < 30
    assert stamped(run.out)[-1][1] == "--- done: system stopped, no thread left behind"


def test_plain_demo_restarts_the_flaky_server_with_growing_delays(runs: dict[str, Run]) -> None:
    lines = stamped(runs["plain"].out)
    restarting = [(t, text) for t, text in lines if text.startswith("ChildRestarting flaky-server")]
    delays = [float(text.rsplit("=", 1)[1]) for _, text in restarting]
    assert delays == [0.5, 1.0, 2.0]
    restarted = [t for t, text in lines if text == "ChildRestarted flaky-server"]
    assert len(restarted) == 3
    for (asked, _), done, delay in zip(restarting, restarted, delays, strict=True):
        assert done - asked >= delay * 0.9, "each restart waits its backoff"


def test_plain_demo_shows_the_downloads_retry_404_and_cancel(runs: dict[str, Run]) -> None:
    out = runs["plain"].out
    assert re.search(
        r"\] download missing\.bin Errored: HTTP 404 Not Found: "
        r"http://127\.0\.0\.1:\d+/missing\.bin$",
        out,
        re.MULTILINE,
    )
    assert "DownloadRetrying flaky.bin attempt=1 delay=0.2 error=HTTP 500" in out
    assert re.search(r"\] download flaky\.bin Completed, Succeeded: .*flaky\.bin", out)
    assert "--- cancelling slow.bin midway" in out
    assert re.search(r"\] download slow\.bin Cancelled: at \d+% ", out)
    assert len(re.findall(r"\] download volume-\d\.txt Completed, Succeeded", out)) == 3


def test_plain_demo_stops_doomed_for_good_and_pauses_the_reporter(runs: dict[str, Run]) -> None:
    lines = [text for _, text in stamped(runs["plain"].out)]
    assert "ChildGaveUp doomed error=FatalError: the licence expired" in lines
    assert not any(text.startswith("ChildRestarting doomed") for text in lines)
    [paused] = [t for t in lines if t.startswith("--- paused the reporter after")]
    [resumed] = [t for t in lines if t.endswith("resuming it")]
    runs_before = re.findall(r"after (\d+) run", paused)
    assert re.search(r"the reporter is paused after (\d+) run", resumed)
    assert re.findall(r"after (\d+) run", resumed) == runs_before, "no run while paused"
    after = lines[lines.index(resumed) :]
    assert any(t.startswith("ServiceRan reporter") for t in after), "runs again once resumed"


def test_plain_demo_ends_with_a_summary(runs: dict[str, Run]) -> None:
    out = runs["plain"].out
    summary = out[out.index("summary: downloads (9)") :]
    assert "Completed, Succeeded (7)" in summary
    assert "Errored (1)" in summary and "HTTP 404 Not Found" in summary
    assert "Cancelled (1)" in summary
    assert re.search(r"^\s+flaky-server\s+running\s+restarts=3\s", summary, re.MULTILINE)
    assert re.search(r"^\s+doomed\s+failed\s+restarts=0\s+last error: FatalError", summary, re.M)
    assert re.search(r"^\s+cache\s+running", summary, re.MULTILINE)


# -- JSON -----------------------------------------------------------------------------


def test_json_demo_prints_one_event_per_line(runs: dict[str, Run]) -> None:
    run = runs["json"]
    assert run.returncode == 0, run.err
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert all(set(line) == {"type", "time", "fields"} for line in lines)
    kinds = {line["type"] for line in lines}
    assert {
        "ChildStarted",
        "ChildRestarting",
        "ChildGaveUp",
        "DownloadStateChanged",
        "DownloadProgressed",
        "DownloadRetrying",
        "ServiceRan",
        "note",
        "summary",
    } <= kinds
    delays = [x["fields"]["delay"] for x in lines if x["type"] == "ChildRestarting"]
    assert delays == [0.5, 1.0, 2.0]
    errored = [
        x["fields"]["record"]
        for x in lines
        if x["type"] == "DownloadStateChanged" and x["fields"]["record"]["state"] == "Errored"
    ]
    assert [r["filename"] for r in errored] == ["missing.bin"]
    assert errored[0]["error"].startswith("HTTP 404 Not Found: http://127.0.0.1:")


def test_json_summary_has_the_downloads_and_the_tree(runs: dict[str, Run]) -> None:
    lines = [json.loads(line) for line in runs["json"].out.splitlines()]
    [summary] = [x["fields"] for x in lines if x["type"] == "summary"]
    states = {d["filename"]: d["state"] for d in summary["downloads"]}
    assert states["missing.bin"] == "Errored"
    assert states["slow.bin"] == "Cancelled"
    assert states["flaky.bin"] == states["alpha.bin"] == "Completed, Succeeded"
    children = {c["name"]: c for c in summary["children"]}
    assert children["flaky-server"]["restarts"] == 3
    assert children["flaky-server"]["status"] == "running"
    assert children["doomed"]["status"] == "failed"


# -- live -------------------------------------------------------------------------------


def test_live_view_on_a_terminal(runs: dict[str, Run]) -> None:
    if "live" not in runs:
        pytest.skip("rich is not installed")
    run = runs["live"]
    assert run.returncode == 0, run.out[-3000:] + run.err
    assert "Traceback" not in run.out + run.err
    for pane in ("supervision tree", "downloads", "events"):
        assert pane in run.out
    assert "━" in run.out, "progress bars"
    assert "done: system stopped, no thread left behind" in run.out


# -- Ctrl-C -----------------------------------------------------------------------------


class Lines:
    """A subprocess's stdout lines, read on a thread; ``expect`` waits (bounded)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._stream = process.stdout
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, name="test-lines")
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self._queue.put(line)
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = RUN_LIMIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"ended before {pattern!r}: {''.join(self.seen)}"
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def rest(self) -> str:
        self._thread.join(RUN_LIMIT)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)


@pytest.fixture
def running_demo() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        demo("--plain"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=RUN_LIMIT)


def test_ctrl_c_ends_the_demo_at_once(running_demo: subprocess.Popen[str]) -> None:
    lines = Lines(running_demo)
    lines.expect(r"download slow\.bin InProgress")  # mid-download, mid-backoff
    running_demo.send_signal(signal.SIGINT)
    started = time.monotonic()
    running_demo.wait(timeout=10)
    took = time.monotonic() - started
    out = lines.rest()
    assert running_demo.stderr is not None
    err = running_demo.stderr.read()
    assert running_demo.returncode == 130, out + err
    assert took < 2.0
    assert "Traceback" not in out + err
    assert "interrupted: the system and the server are stopped" in out
    assert "threads left behind" not in out


# -- without rich -------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_is_imported_by_the_live_views_only() -> None:
    code = (
        "import sys, regisseur.cli, regisseur.cli.demo, regisseur.cli.download, regisseur.cli._download_view\n"
        "assert 'rich' not in sys.modules, 'rich imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from regisseur.cli.demo import choose_mode
    from regisseur.cli.demo._show import PlainShow, make_show

    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    monkeypatch.setitem(sys.modules, "regisseur.cli.demo._live", None)
    terminal = _Terminal()
    assert choose_mode(False, False, terminal) == "plain"
    show = make_show("live", terminal, None, "demo")  # type: ignore[arg-type]
    assert type(show) is PlainShow
    assert choose_mode(True, False, terminal) == "plain"
    assert choose_mode(False, True, terminal) == "json"


# -- in process ----------------------------------------------------------------------------


def test_a_demo_that_runs_out_of_time_fails_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    from regisseur.cli import demo as demo_module
    from regisseur.cli.demo import run_demo

    monkeypatch.setattr(demo_module, "DEADLINE", 0.5)  # shorter than the flaky server's backoff
    out = io.StringIO()
    assert run_demo(plain=True, out=out) == 1
    text = out.getvalue()
    assert "--- the demo failed: TimeoutError: the demo ran out of time waiting for" in text
    assert "threads left behind" not in text
    assert "summary" not in text
