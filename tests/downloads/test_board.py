"""The run board a source's workers share: FIFO, claims, wakes, delay and limit.

The board is plain data under a lock: these tests call it as the queue
actor and the workers do, on one thread, with the clock's time passed in.
"""

from __future__ import annotations

from typing import Any

import pytest

from regisseur.actors.downloads.board import RETIRE, RunBoard, Taken
from regisseur.actors.downloads.context import CancelToken
from regisseur.messages.downloads import DownloadRecord

W1, W2, W3 = (f"source:s.worker-{i}" for i in (1, 2, 3))


def record(download_id: str) -> DownloadRecord:
    return DownloadRecord(id=download_id, source="s", target_id="t", filename=download_id)


def opened(*ids: str, concurrency: int = 2, delay: float = 0.0, now: float = 0.0) -> RunBoard:
    board = RunBoard(concurrency, delay)
    board.open(concurrency, delay, now, [(record(i), n) for n, i in enumerate(ids, 1)])
    return board


def park(board: RunBoard, *workers: str) -> None:
    """Each of ``workers`` finds nothing to take and parks, in this order."""
    for worker in workers:
        assert board.take(worker, 0.0, CancelToken) is None


def taken(result: Any) -> Taken:
    assert isinstance(result, Taken), result
    return result


def test_puts_before_the_keepers_answer_are_covered_by_it() -> None:
    board = RunBoard(2, 0.0)
    assert board.put(record("early"), claim=1) == []
    assert board.take(W1, 0.0, CancelToken) is None  # nothing: the worker parks
    wake, retire = board.open(2, 0.0, 0.0, [(record("a"), 1)])
    assert (wake, retire) == ([W1], [])
    assert taken(board.take(W1, 0.0, CancelToken)).record.id == "a"
    assert board.take(W1, 0.0, CancelToken) is None


def test_downloads_are_taken_in_order_interrupted_ones_first() -> None:
    board = opened("a", "b")
    board.put(record("c"), claim=7)
    board.put(record("resumed"), front=True, claim=9)
    got = [taken(board.take(W1, 0.0, CancelToken)) for _ in range(4)]
    assert [(t.record.id, t.claim) for t in got] == [
        ("resumed", 9),
        ("a", 1),
        ("b", 2),
        ("c", 7),
    ]


def test_a_put_wakes_as_many_parked_workers_as_it_brings_downloads() -> None:
    board = opened(concurrency=3)
    park(board, W1, W2, W3)
    assert board.put(record("a"), claim=1) == [W1]
    assert board.put_many([(record("b"), 2), (record("c"), 3)]) == [W2, W3]
    assert board.put(record("d"), claim=4) == []  # nobody is parked now


def test_the_taker_wakes_a_parked_worker_when_more_wait_than_are_awake() -> None:
    board = opened(concurrency=2)
    assert board.take(W2, 0.0, CancelToken) is None  # parked
    board.put(record("a"), claim=1)  # wakes W2 ...
    board.put(record("b"), claim=2)
    # ... but W1, finishing a run, takes first: W2 is woken again for "b".
    first = taken(board.take(W1, 0.0, CancelToken))
    assert first.record.id == "a"


def test_a_repeated_put_keeps_one_entry_with_the_newest_claim() -> None:
    board = opened("a")
    board.put(record("a"), claim=5)
    board.put(record("a"), claim=3)
    assert taken(board.take(W1, 0.0, CancelToken)).claim == 5
    assert board.take(W1, 0.0, CancelToken) is None


def test_a_running_download_put_again_waits_for_its_run_to_end() -> None:
    board = opened("a")
    run = taken(board.take(W1, 0.0, CancelToken))
    board.put(record("a"), front=True, claim=8)  # the keeper re-queued it first
    assert board.take(W2, 0.0, CancelToken) is None  # never beside its own run
    board.done(W1, run.record.id)
    again = taken(board.take(W1, 0.0, CancelToken))
    assert (again.record.id, again.claim) == ("a", 8)


def test_withdraw_drops_a_waiting_download_and_cancels_a_running_one() -> None:
    board = opened("a", "b")
    run = taken(board.take(W1, 0.0, CancelToken))
    board.withdraw("b", "cancelled")
    board.withdraw(run.record.id, "fenced")
    assert board.take(W2, 0.0, CancelToken) is None
    assert (run.token.cancelled, run.token.reason) == (True, "fenced")
    assert board.snapshot()["queued"] == 0


def test_starts_keep_the_delay_and_one_worker_waits_for_it() -> None:
    board = opened("a", "b", "c", concurrency=3, delay=5.0, now=100.0)
    first = taken(board.take(W1, 100.0, CancelToken))
    assert first.wake is None  # nobody parked yet
    assert board.take(W2, 101.0, CancelToken) == pytest.approx(4.0)  # W2 waits 4 s
    assert board.take(W3, 101.0, CancelToken) is None  # W3 parks: one waiter is enough
    second = taken(board.take(W2, 105.0, CancelToken))
    assert second.record.id == "b"
    assert second.wake == W3  # "c" waits: W3 takes over the waiting
    assert board.take(W3, 105.0, CancelToken) == pytest.approx(5.0)


def test_a_shorter_delay_wakes_the_waiting_worker() -> None:
    board = opened("a", "b", delay=3600.0)
    taken(board.take(W1, 0.0, CancelToken))
    assert board.take(W2, 1.0, CancelToken) == pytest.approx(3599.0)
    wake, retire = board.configure(2, 0.0, 2.0)
    assert (wake, retire) == ([W2], [])
    assert taken(board.take(W2, 2.0, CancelToken)).record.id == "b"


def test_a_lower_limit_retires_parked_workers_at_once_and_busy_ones_after_their_run() -> None:
    board = opened("a", concurrency=3)
    run = taken(board.take(W3, 0.0, CancelToken))
    assert board.take(W2, 0.0, CancelToken) is None
    wake, retire = board.configure(1, 0.0, 0.0)
    assert (wake, retire) == ([], [W2])
    board.done(W3, run.record.id)
    board.put(record("b"), claim=2)
    assert board.take(W3, 0.0, CancelToken) is RETIRE
    assert taken(board.take(W1, 0.0, CancelToken)).record.id == "b"


def test_a_download_a_retired_worker_was_woken_for_is_not_stranded() -> None:
    board = opened(concurrency=3)
    park(board, W3, W1)
    assert board.put(record("a"), claim=1) == [W3]
    wake, retire = board.configure(2, 0.0, 0.0)  # W3 is awake, not parked: not retired here
    assert retire == []
    assert board.take(W3, 0.0, CancelToken) is RETIRE
    successor = board.leave(W3)
    # W1 is woken for "a", by the new limits or else by the leaving worker.
    assert (wake, successor) in (([W1], None), ([], W1))
    assert taken(board.take(W1, 0.0, CancelToken)).record.id == "a"


def test_a_worker_leaving_while_downloads_wait_wakes_a_parked_one() -> None:
    board = opened(concurrency=3)
    park(board, W1, W2)
    assert board.put(record("a"), claim=1) == [W1]
    assert board.leave(W1) == W2  # W1 goes before it took "a"
    assert taken(board.take(W2, 0.0, CancelToken)).record.id == "a"
    assert board.leave(W3) is None  # nothing waits


def test_a_run_its_abandoned_worker_still_has_going_holds_back_a_new_claim() -> None:
    """W1 was abandoned at a stop with its run of "a" going (its impl does not
    see the stop); its successor starts beside it. The run stays on the
    board as an orphan: the successor has the slot, but a new claim of "a"
    waits until the orphan's thread says it is done, then the successor
    (parked meanwhile) is woken by that thread."""
    board = opened("a", concurrency=1)
    run = taken(board.take(W1, 0.0, CancelToken))
    board.put(record("a"), claim=4)  # the keeper queued it again meanwhile
    board.join(W1)  # the successor starts
    assert board.snapshot()["running"] == 0 and board.snapshot()["orphans"] == 1
    assert board.running() == (("a", run.claim),)
    assert board.take(W1, 0.0, CancelToken) is None  # never two runs of "a" at once
    assert board.put(record("b"), claim=1) == [W1]  # the orphan takes no slot
    b = taken(board.take(W1, 0.0, CancelToken))
    assert b.record.id == "b"
    assert board.done(W1, "b") == []  # the successor goes on taking by itself
    assert board.take(W1, 0.0, CancelToken) is None  # parks
    assert board.done(W1, "a") == [W1]  # the orphan's thread wakes it
    again = taken(board.take(W1, 0.0, CancelToken))
    assert (again.record.id, again.claim) == ("a", 4)
    assert board.snapshot()["orphans"] == 0


def test_done_and_take_hands_a_going_worker_its_next_download_in_one_step() -> None:
    board = opened("a", "b", concurrency=1)
    first = taken(board.take(W1, 0.0, CancelToken))
    wakes, second = board.done_and_take(W1, first.record.id, 0.0, CancelToken)
    assert wakes == [] and taken(second).record.id == "b"
    assert board.running() == (("b", 2),)  # "a" is no longer running
    assert board.done_and_take(W1, "b", 0.0, CancelToken) == ([], None)  # parked
    assert board.put(record("c"), claim=3) == [W1]  # so a put wakes it


def test_done_and_take_by_an_abandoned_worker_takes_nothing_and_wakes_its_successor() -> None:
    board = opened("a", concurrency=1)
    run = taken(board.take(W1, 0.0, CancelToken))
    board.put(record("a"), claim=4)  # queued again behind its own run
    board.join(W1)  # the successor starts, and parks: "a" still runs
    assert board.take(W1, 0.0, CancelToken) is None
    # The orphan's thread ends its run: it takes nothing, the successor is woken.
    assert board.done_and_take(W1, run.record.id, 0.0, CancelToken) == ([W1], None)
    again = taken(board.take(W1, 0.0, CancelToken))
    assert (again.record.id, again.claim) == ("a", 4)


def test_a_withdraw_reaches_the_run_of_an_abandoned_worker() -> None:
    board = opened("a")
    run = taken(board.take(W1, 0.0, CancelToken))
    board.put(record("a"), claim=4)
    board.join(W1)
    board.withdraw("a", "cancelled")
    assert run.token.cancelled and run.token.reason == "cancelled"
    assert board.done(W1, "a") == []  # the waiting claim was dropped with it
    assert board.take(W1, 0.0, CancelToken) is None


def test_a_queue_restart_empties_the_fifo_until_the_next_answer() -> None:
    board = opened("a", "b")
    board.reset()
    assert board.take(W1, 0.0, CancelToken) is None
    assert board.put(record("c"), claim=1) == []  # before the new answer: covered by it
    wake, _ = board.open(2, 0.0, 0.0, [(record("b"), 3)])
    assert wake == [W1]
    assert taken(board.take(W1, 0.0, CancelToken)).record.id == "b"
    assert board.snapshot() == {
        "queued": 0,
        "running": 1,
        "orphans": 0,
        "concurrency": 2,
        "delay": 0.0,
        "started": 1,
        "attached": True,
    }


def test_a_lowered_limit_holds_for_starts_until_the_runs_above_it_end() -> None:
    board = opened("a", "b", "c", "d", concurrency=3)
    runs = {w: taken(board.take(w, 0.0, CancelToken)) for w in (W1, W2, W3)}
    assert board.configure(1, 0.0, 0.0) == ([], [])
    board.done(W1, runs[W1].record.id)
    assert board.take(W1, 0.0, CancelToken) is None  # two still run: W1 parks
    board.done(W2, runs[W2].record.id)
    assert board.take(W2, 0.0, CancelToken) is RETIRE
    assert board.leave(W2) is None  # W3 still runs: nobody is woken yet
    board.done(W3, runs[W3].record.id)
    assert board.take(W3, 0.0, CancelToken) is RETIRE
    assert board.leave(W3) == W1  # the last run above the limit ended
    assert taken(board.take(W1, 0.0, CancelToken)).record.id == "d"


def test_a_lost_worker_is_no_longer_woken_and_its_downloads_go_to_others() -> None:
    board = opened("a", "b", concurrency=3, delay=5.0)
    assert taken(board.take(W1, 0.0, CancelToken)).record.id == "a"
    assert board.take(W2, 1.0, CancelToken) == pytest.approx(4.0)  # W2 waits out the delay
    assert board.take(W3, 1.0, CancelToken) is None  # W3 parks
    # W2 is killed on its timer: W3 takes over the waiting; W2's successor gets a Take too.
    assert board.lost(W2) == [W3, W2]
    assert board.take(W3, 2.0, CancelToken) == pytest.approx(3.0)
    board.join(W2)  # the successor starts: it parks behind the waiter
    assert board.take(W2, 2.0, CancelToken) is None
    assert board.put(record("c"), claim=3) == []  # the waiter takes it in turn
    assert taken(board.take(W3, 5.0, CancelToken)).wake == W2
