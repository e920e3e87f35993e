"""The ask future keeps Pykka's future contract with its lighter reply slot."""

from __future__ import annotations

import queue
import sys
import threading

import pykka
import pytest

from regisseur.actors import WaitTimeoutError
from regisseur.actors._future import LoopFuture


@pytest.mark.timeout(10)
def test_every_waiter_is_woken_by_one_reply() -> None:
    future: LoopFuture[int] = LoopFuture()
    waiting = threading.Barrier(5)
    got: list[int] = []

    def wait() -> None:
        waiting.wait()
        got.append(future.get(timeout=5))

    threads = [threading.Thread(target=wait) for _ in range(4)]
    for thread in threads:
        thread.start()
    waiting.wait()
    future.set(7)
    for thread in threads:
        thread.join(5)
    assert got == [7, 7, 7, 7]
    assert future.get(timeout=0) == 7


@pytest.mark.timeout(10)
def test_a_reply_slot_is_set_once_and_times_out_with_the_librarys_error() -> None:
    future: LoopFuture[int] = LoopFuture()
    with pytest.raises(WaitTimeoutError) as caught:
        future.get(timeout=0.01)
    assert isinstance(caught.value, pykka.Timeout)
    future.set(1)
    with pytest.raises(queue.Full):
        future.set(2)
    with pytest.raises(queue.Full):
        future.set_exception((ValueError, ValueError("late"), None))
    assert future.get() == 1


@pytest.mark.timeout(10)
def test_an_exception_reply_raises_with_its_traceback() -> None:
    future: LoopFuture[int] = LoopFuture()
    try:
        raise KeyError("gone")
    except KeyError:
        future.set_exception(sys.exc_info())
    with pytest.raises(KeyError) as caught:
        future.get()
    assert caught.value.__traceback__ is not None
    bare: LoopFuture[int] = LoopFuture()
    bare.set_exception((ValueError, None, None))  # Pykka builds the exception from its type
    with pytest.raises(ValueError):
        bare.get()


@pytest.mark.timeout(10)
def test_derived_futures_wait_for_their_source_and_keep_the_value() -> None:
    source: LoopFuture[int] = LoopFuture()
    other: LoopFuture[int] = LoopFuture()
    calls: list[int] = []

    def double(value: int) -> int:
        calls.append(value)
        return value * 2

    mapped = source.map(double)
    joined = source.join(other)
    with pytest.raises(WaitTimeoutError):
        mapped.get(timeout=0.01)
    threading.Timer(0.01, source.set, args=(3,)).start()
    assert mapped.get(timeout=5) == 6
    assert mapped.get(timeout=0) == 6
    assert calls == [3]  # the hook ran once; its value is kept
    other.set(4)
    assert list(pykka.get_all([joined], timeout=5)[0]) == [3, 4]
    with pytest.raises(queue.Full):
        mapped.set(0)
