"""What the download tests share: bounded waits, state names and test impls."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from regisseur.messages import DownloadState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

WAIT = 5.0  # real seconds; every blocking wait in these tests is bounded by it

INIT = DownloadState.INITIALIZING
RUNNING = DownloadState.IN_PROGRESS
SUCCEEDED = DownloadState.SUCCEEDED
ERRORED = DownloadState.ERRORED
CANCELLED = DownloadState.CANCELLED


def quick(download_id: str, target_id: str, name: str) -> str:
    return f"/files/{name}"


def fails(download_id: str, target_id: str, name: str) -> str:
    raise RuntimeError(f"cannot fetch {name}")


class Gate:
    """A download impl (it takes the context) that holds each download until opened.

    Thread-safe. ``started`` lists display names in start order; ``running``
    and ``peak`` count downloads inside the impl now and at most;
    ``saw_cancel`` lists the downloads whose impl returned because
    ``ctx.cancelled`` became true (the impl returns ``None`` then).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.started: list[str] = []
        self.saw_cancel: list[str] = []
        self.running = 0
        self.peak = 0
        self._open: set[str] = set()
        self._all_open = False

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        deadline = time.monotonic() + WAIT
        with self._cond:
            self.started.append(name)
            self.running += 1
            self.peak = max(self.peak, self.running)
            self._cond.notify_all()
            try:
                while not (self._all_open or name in self._open):
                    if ctx.cancelled:
                        self.saw_cancel.append(name)
                        return None
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        msg = f"gate for {name!r} never opened"
                        raise TimeoutError(msg)
                    self._cond.wait(min(remaining, 0.01))  # also polls ctx.cancelled
                return f"/files/{name}"
            finally:
                self.running -= 1
                self._cond.notify_all()

    def open(self, *names: str) -> None:
        """Let ``names`` (every download when none is given) finish."""
        with self._cond:
            if names:
                self._open.update(names)
            else:
                self._all_open = True
            self._cond.notify_all()

    def reset_peak(self) -> None:
        with self._cond:
            self.peak = self.running

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, WAIT), f"gate: {what} within {WAIT}s"

    def wait_started(self, count: int) -> None:
        self.wait_for(lambda: len(self.started) >= count, f"{count} started")


class Hold:
    """An impl that blocks (bounded) until ``release`` is set or it is cancelled."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        self.entered.set()
        deadline = time.monotonic() + WAIT
        while not self.release.wait(0.01):
            if ctx.cancelled or time.monotonic() > deadline:
                return None
        return f"/files/{name}"


ANOTHER_BOOT = "00000000-0000-4000-8000-000000000000"  # no kernel draws this boot id


def written_before_a_reboot(meta_path: Path) -> None:
    """Make the part meta file at ``meta_path`` one an earlier boot of the
    machine wrote (as after a power loss): a resume trusts its checkpoint
    alone, not the part's size."""
    meta = json.loads(meta_path.read_text())
    meta["boot"] = ANOTHER_BOOT
    meta_path.write_text(json.dumps(meta))


@contextlib.contextmanager
def holding_process(script: str, path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second Python process running ``script`` on ``path``: it takes a lock,
    prints ``locked``, and holds it until its stdin closes. Yielded once it
    holds the lock; let go (stdin closed, killed if it does not end) after
    the block, unless the block ended it already."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(WAIT)
