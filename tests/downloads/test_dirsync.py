"""Workers publishing into one directory at the same time share its fsync."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads import _dirsync
from regisseur.actors.downloads._dirsync import DirectorySync

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 30.0


class _Waits(threading.Condition):
    """A condition that counts the threads waiting on it (for the test to see)."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.waiting = 0
        self.seen = threading.Condition()

    def wait(self, timeout: float | None = None) -> bool:
        with self.seen:
            self.waiting += 1
            self.seen.notify_all()
        return super().wait(timeout)


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
    sync = DirectorySync(tmp_path)
    waits = _Waits()
    sync._changed = waits  # noqa: SLF001 - to see the callers wait
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
    with waits.seen:  # both changed the directory after that fsync began
        assert waits.seen.wait_for(lambda: waits.waiting >= 2, WAIT)
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
