"""wait_unlocked: a run waits out a lock on its records before it starts."""

from __future__ import annotations

import pytest

from regisseur.cli._records_wait import GRACE, RecordsLocked, wait_unlocked

pytestmark = pytest.mark.timeout(10)

DB = "/d/.regisseur-downloads.db"


class _Lock:
    """A lock that lasts ``looks`` looks, on a clock moved only by the waits."""

    def __init__(self, looks: int) -> None:
        self.looks = looks
        self.now = 0.0
        self.asked = 0

    def locked(self) -> str | None:
        self.asked += 1
        return "database is locked" if self.asked <= self.looks else None

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def _wait(lock: _Lock, notices: list[str], timeout: float | None) -> None:
    wait_unlocked(
        lock.locked, DB, notices.append, timeout, clock=lambda: lock.now, sleep=lock.sleep
    )


def test_an_unlocked_database_is_not_waited_for() -> None:
    lock, notices = _Lock(0), []
    _wait(lock, notices, None)
    assert (lock.asked, lock.now, notices) == (1, 0.0, [])


def test_a_lock_shorter_than_the_grace_is_waited_out_without_a_word() -> None:
    lock, notices = _Lock(3), []
    _wait(lock, notices, None)
    assert lock.asked == 4 and 0 < lock.now < GRACE
    assert notices == []


def test_a_lasting_lock_is_said_once_and_waited_out_without_a_bound() -> None:
    lock, notices = _Lock(10_000), []
    _wait(lock, notices, None)
    assert lock.now > 100 * GRACE, "no bound without --max-time"
    assert notices == [
        f"waiting for the records database {DB}: database is locked "
        "(another process holds it; Ctrl-C stops the run)"
    ]


def test_a_lock_past_max_time_ends_the_wait_with_the_reason() -> None:
    lock, notices = _Lock(10_000), []
    with pytest.raises(RecordsLocked) as raised:
        _wait(lock, notices, 3.0)
    assert 3.0 <= lock.now < 3.2
    assert str(raised.value) == (
        f"the records database {DB} was still locked by another process after the "
        "--max-time of 3 s (database is locked); nothing was downloaded"
    )
    assert len(notices) == 1
