"""A second Ctrl-C (or SIGTERM) while ``regisseur download`` stops: it quits at once.

Real processes (``python -c`` running the console script) whose system stop
is held back by a hook, as a source ignoring its stop or a slow records
disk would hold it, against the local server of ``tests/test_cli_download.py``
(its first full answer holds after one chunk). A quit at once must leave
the folder as a SIGKILL does: the next same command finishes the download.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cli_scripts import patched_cli
from tests.test_cli_download import (
    FIRST,
    ROOT,
    WAIT,
    files,
    only_main_takes_signals,
    run,
    succeeded,
    wait_until,
)

if TYPE_CHECKING:
    from tests.test_cli_download import _Server

__all__ = ["files"]  # the fixture, shared

# The console script, whose system stop first waits until the file named by
# REGISSEUR_TEST_RELEASE exists (at most 60 s: longer than the test waits).
_SLOW_STOP = patched_cli("""
import os, sys, threading, time
from pathlib import Path
from regisseur.actors.system import ActorSystem
stop = ActorSystem.stop
def slow_stop(self, *args, **kwargs):
    release = Path(os.environ["REGISSEUR_TEST_RELEASE"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    return stop(self, *args, **kwargs)
ActorSystem.stop = slow_stop
""")

_STOPPING = "stopping: keeping 1 partial file(s) (Ctrl-C again quits at once"
_CUT_SHORT = "quit at once: the records may be behind; the partial files resume from"


class _SlowStop:
    """A download run with a held-back stop, stderr in a file to watch."""

    def __init__(self, server: _Server, url: str, out_dir: Path, tmp_path: Path) -> None:
        self.release = tmp_path / "release"
        self.log = tmp_path / "stderr.txt"
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SLOW_STOP, "download", url, "-o", str(out_dir), "--plain"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=sink,
                text=True,
                env={**_environ(), "REGISSEUR_TEST_RELEASE": str(self.release)},
            )
        try:
            assert server.first_sent.wait(WAIT), "the download never started"
            wait_until(
                lambda: any(p.stat().st_size >= FIRST for p in out_dir.glob("*.part")),
                "the first chunk in the .part file",
            )
        except BaseException:
            self.kill()
            raise

    def stopping(self, sig: int) -> None:
        """Send ``sig`` and wait until the run says it is stopping."""
        self.process.send_signal(sig)
        wait_until(lambda: _STOPPING in self.log.read_text(), "the stopping line")

    def end(self) -> tuple[int, str, str, float]:
        """Exit code, stdout, stderr and how long it took to end (killed after WAIT)."""
        started = time.monotonic()
        try:
            out, _ = self.process.communicate(timeout=WAIT)
        finally:
            self.kill()
        return self.process.returncode, out, self.log.read_text(), time.monotonic() - started

    def kill(self) -> None:
        self.release.touch()
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def _environ() -> dict[str, str]:
    return dict(os.environ)


def _checkpoint(out_dir: Path) -> int:
    """The good length the ``.meta`` beside the part records (0 if none)."""
    for meta in out_dir.glob("big.bin.*.part.meta"):
        return int(json.loads(meta.read_text())["offset"])
    return 0


def _held(out_dir: Path) -> int:
    """The bytes in the ``.part`` left behind (0 if none)."""
    for part in out_dir.glob("big.bin.*.part"):
        return part.stat().st_size
    return 0


def _finishes_like_after_a_kill(server: _Server, url: str, out_dir: Path) -> None:
    """The same command again: resumes from the part's last byte (what the
    quit left in the kernel's hands, past the last checkpoint too) and ends
    with the server's bytes and one Succeeded record."""
    offset = _held(out_dir)
    server.gate.set()
    again = run("download", url, "-o", str(out_dir), "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout == f"{out_dir / 'big.bin'}\n"
    assert server.ranges[1:] == [f"bytes={offset}-" if offset else None], server.ranges
    assert (out_dir / "big.bin").read_bytes() == server.body
    assert succeeded(out_dir) == [url]
    assert not list(out_dir.glob("*.part*")), "no part left"


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_a_second_signal_during_a_slow_stop_quits_at_once_and_the_next_run_finishes(
    files: _Server, tmp_path: Path, sig: int, code: int
) -> None:
    """The first signal: the run says at once that it is stopping. The second,
    while its stop is held back: one line saying what was cut short, the
    exit code of the signal, no traceback. The next run finishes the file."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    slow = _SlowStop(files, url, out_dir, tmp_path)
    try:
        slow.stopping(sig)
        slow.process.send_signal(sig)
        got, out, err, took = slow.end()
    finally:
        slow.kill()
    assert got == code, out + err
    assert took < WAIT / 2, f"quit after {took:.1f} s"
    assert out == ""
    assert "Traceback" not in err
    assert err.count(_STOPPING) == 1
    assert err.count(_CUT_SHORT) == 1
    assert err.rstrip("\n").endswith("when the same command runs again"), err
    assert "partial file(s) kept" not in err, "the stop did not end"
    _finishes_like_after_a_kill(files, url, out_dir)


@pytest.mark.timeout(90)
def test_sighup_after_ctrl_c_is_ignored_and_the_stop_ends(files: _Server, tmp_path: Path) -> None:
    """The terminal goes away while the run stops after Ctrl-C: the stop goes
    on to its end (the part's offset recorded), exit 130."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    slow = _SlowStop(files, url, out_dir, tmp_path)
    try:
        slow.stopping(signal.SIGINT)
        slow.process.send_signal(signal.SIGHUP)
        slow.release.touch()
        got, out, err, _ = slow.end()
    finally:
        slow.kill()
    assert got == 130, out + err
    assert "Traceback" not in err
    assert _CUT_SHORT not in err
    assert f"interrupted: 1 partial file(s) kept in {out_dir}" in err
    [part] = out_dir.glob("*.part")
    assert _checkpoint(out_dir) == part.stat().st_size >= FIRST, "recorded to the byte"
    _finishes_like_after_a_kill(files, url, out_dir)


def _ignores(pid: int, sig: int) -> bool:
    """Whether process ``pid`` ignores ``sig`` (its SigIgn mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


@pytest.mark.timeout(90)
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc")
def test_with_q_the_stopping_line_is_silenced_and_the_quit_line_is_not(
    files: _Server, tmp_path: Path
) -> None:
    """``-q`` silences progress lines, the stopping line among them; the
    line saying what a quit cut short is a result, and is shown."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    script = _SLOW_STOP.replace("sys.argv[0]", "sys.argv.append('-q'); sys.argv[0]")
    log = tmp_path / "stderr.txt"
    release = tmp_path / "release"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", script, "download", url, "-o", str(out_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env={**_environ(), "REGISSEUR_TEST_RELEASE": str(release)},
        )
    try:
        assert files.first_sent.wait(WAIT), "the download never started"
        wait_until(
            lambda: any(p.stat().st_size >= FIRST for p in out_dir.glob("*.part")),
            "the first chunk in the .part file",
        )
        process.send_signal(signal.SIGINT)
        # Nothing on stderr says the first was taken; the run then ignores SIGHUP.
        wait_until(lambda: _ignores(process.pid, signal.SIGHUP), "the first Ctrl-C taken")
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=WAIT)
    finally:
        release.touch()
        if process.poll() is None:
            process.kill()
            process.communicate()
    err = log.read_text()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "stopping:" not in err
    assert err.count(_CUT_SHORT) == 1, err
    _finishes_like_after_a_kill(files, url, out_dir)


@pytest.mark.timeout(90)
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_only_the_main_thread_can_take_a_signal_so_a_second_one_quits_at_once(
    files: _Server, tmp_path: Path
) -> None:
    """The kernel hands a signal sent to the process to any thread that does
    not block it (another one when the main thread already has one pending),
    and Python runs the handler on the main thread only: a second Ctrl-C
    handed to a worker waited for the end of the main thread's current wait
    in the stop (up to a 5 s stop bound). Every thread of the run but the
    main one blocks Ctrl-C, SIGTERM and SIGHUP, while it downloads and while
    it stops; the second signal quits at once."""
    url = files.url("/big.bin")
    out_dir = tmp_path / "out"
    slow = _SlowStop(files, url, out_dir, tmp_path)
    try:
        only_main_takes_signals(slow.process.pid)
        slow.stopping(signal.SIGINT)
        only_main_takes_signals(slow.process.pid)
        slow.process.send_signal(signal.SIGTERM)
        got, out, err, took = slow.end()
    finally:
        slow.kill()
    assert got == 143, out + err
    assert took < WAIT / 2, f"quit after {took:.1f} s"
    assert err.count(_CUT_SHORT) == 1, err
