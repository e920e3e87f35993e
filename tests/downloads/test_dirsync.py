"""Workers publishing into one directory at the same time share its fsync."""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads import _dirsync
from regisseur.actors.downloads._dirsync import DirectorySync

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 30.0


class _Counted(DirectorySync):
    """A DirectorySync that counts its callers' sleeps and wake-ups (for the test to see)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.waiting = 0
        self.wakes = 0
        self.seen = threading.Condition()

    def _on_queue(self, waiter: _dirsync._Waiter) -> None:
        with self.seen:
            self.waiting += 1
            self.seen.notify_all()
        super()._on_queue(waiter)
        with self.seen:
            self.wakes += 1


@pytest.mark.timeout(60)
def test_callers_during_an_fsync_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = [threading.Event(), threading.Event()]
    started: list[int] = []
    finished: list[int] = []
    progress = threading.Condition()

    def fake_fsync(directory: Path) -> None:
        with progress:
            index = len(started)
            started.append(index)
            progress.notify_all()
        assert release[index].wait(WAIT)
        finished.append(index)

    monkeypatch.setattr(_dirsync, "sync_directory", fake_fsync)
    sync = _Counted(tmp_path)
    returned: dict[str, list[int]] = {}

    def call(name: str) -> None:
        sync.sync()
        returned[name] = list(finished)  # the fsyncs complete when it returned

    first = threading.Thread(target=call, args=("first",))
    first.start()
    with progress:  # the first caller's fsync is under way
        assert progress.wait_for(lambda: len(started) == 1, WAIT)
    later = [threading.Thread(target=call, args=(name,)) for name in ("second", "third")]
    for thread in later:
        thread.start()
    with sync.seen:  # both changed the directory after that fsync began
        assert sync.seen.wait_for(lambda: sync.waiting >= 2, WAIT)
    release[0].set()
    first.join(WAIT)
    with progress:  # one more fsync, for both later callers
        assert progress.wait_for(lambda: len(started) == 2, WAIT)
    release[1].set()
    for thread in later:
        thread.join(WAIT)
    assert len(started) == 2  # three callers, two fsyncs
    assert returned["first"] == [0]
    # Neither later caller returned on the fsync that began before its change.
    assert returned["second"] == returned["third"] == [0, 1]
    # Each slept once and was woken once: to lead the second fsync, or covered by it.
    assert sync.waiting == sync.wakes == 2


def test_a_failed_fsync_is_raised_and_the_next_caller_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def failing_once(directory: Path) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(_dirsync, "sync_directory", failing_once)
    sync = DirectorySync(tmp_path)
    with pytest.raises(OSError, match="Input/output error"):
        sync.sync()
    sync.sync()
    assert len(calls) == 2


def test_the_real_fsync_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "published").write_bytes(b"x")
    DirectorySync(tmp_path).sync()  # no error on a real directory


@pytest.mark.timeout(60)
def test_a_failed_shared_fsync_hands_the_lead_to_a_caller_that_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    started: list[int] = []
    progress = threading.Condition()

    def first_fails(directory: Path) -> None:
        with progress:
            started.append(len(started))
            progress.notify_all()
        if len(started) == 1:
            assert release.wait(WAIT)
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(_dirsync, "sync_directory", first_fails)
    sync = _Counted(tmp_path)
    outcome: dict[str, str] = {}

    def call(name: str) -> None:
        try:
            sync.sync()
        except OSError as exc:
            outcome[name] = str(exc)
        else:
            outcome[name] = "durable"

    first = threading.Thread(target=call, args=("first",))
    first.start()
    with progress:
        assert progress.wait_for(lambda: len(started) == 1, WAIT)
    second = threading.Thread(target=call, args=("second",))
    second.start()
    with sync.seen:
        assert sync.seen.wait_for(lambda: sync.waiting == 1, WAIT)
    release.set()
    for thread in (first, second):
        thread.join(WAIT)
    assert outcome == {"first": "[Errno 5] Input/output error", "second": "durable"}
    assert len(started) == 2  # the waiting caller ran an fsync of its own


@pytest.mark.timeout(60)
def test_many_callers_each_return_after_an_fsync_that_began_after_their_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    changes = [0]  # changes made so far
    completed: list[int] = []  # per completed fsync: the changes made before it began

    def recording_fsync(directory: Path) -> None:
        with lock:
            began_after = changes[0]
        with lock:
            completed.append(began_after)

    monkeypatch.setattr(_dirsync, "sync_directory", recording_fsync)
    sync = DirectorySync(tmp_path)
    failures: list[str] = []

    def publisher() -> None:
        for _ in range(200):
            with lock:
                changes[0] += 1
                mine = changes[0]
            sync.sync()
            with lock:
                if not any(began >= mine for began in completed):
                    failures.append(f"change {mine} returned before a covering fsync")

    threads = [threading.Thread(target=publisher) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


class _Interrupted(Exception):
    """What the test's signal handler raises in the main thread's wait."""


@pytest.mark.timeout(60)
def test_a_caller_interrupted_while_it_waits_leaves_no_lead_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that leaves its wait by an exception (Ctrl-C's KeyboardInterrupt
    on the main thread: a lock's wait there is interrupted by a signal whose
    handler raises) must not take the next fsync's lead with it: later callers
    would sleep for ever."""
    release = threading.Event()
    started: list[int] = []
    progress = threading.Condition()

    def first_blocks(directory: Path) -> None:
        with progress:
            started.append(len(started))
            progress.notify_all()
        if len(started) == 1:
            assert release.wait(WAIT)

    monkeypatch.setattr(_dirsync, "sync_directory", first_blocks)
    sync = _Counted(tmp_path)

    interrupted = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        if not interrupted.is_set():  # once: a repeated signal after it changes nothing
            interrupted.set()
            raise _Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    main = threading.get_ident()
    first = threading.Thread(target=sync.sync)
    later = threading.Thread(target=sync.sync)

    def interrupt_the_waiting_main_thread() -> None:
        with sync.seen:
            assert sync.seen.wait_for(lambda: sync.waiting == 1, WAIT)
        # Sent again until it lands: a signal that arrives after the main
        # thread checked for signals but before its lock wait began does not
        # interrupt that wait (CPython runs the handler only once it wakes).
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            signal.pthread_kill(main, signal.SIGUSR1)
            if interrupted.wait(0.05):
                return

    kicker = threading.Thread(target=interrupt_the_waiting_main_thread)
    try:
        first.start()
        with progress:
            assert progress.wait_for(lambda: len(started) == 1, WAIT)
        kicker.start()
        with pytest.raises(_Interrupted):
            sync.sync()  # queued behind the first caller's fsync, then interrupted
        kicker.join(WAIT)
        release.set()
        first.join(WAIT)
        later.start()
        later.join(5.0)  # one fsync of its own, not blocked: well within this
        assert not later.is_alive(), "a later caller waits for a lead nobody holds"
        assert len(started) == 2
    finally:
        signal.signal(signal.SIGUSR1, previous)
        release.set()
        for waiter in list(sync._queue):  # a failed run: let its sleepers go
            waiter.lead = False
            waiter.wake.release()
        for thread in (first, later, kicker):
            if thread.ident is not None:
                thread.join(WAIT)
