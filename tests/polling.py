"""Waiting for the state of another process: the one bounded poll of the suite.

A test waits for its own process's actors with ``system.settle()``, the
manual clock or events. State outside this process (files a child process
writes, rows it commits, a server it starts) announces nothing here, so a
poll with a deadline is the only way to see it; every test that needs one
uses :func:`wait_until`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["POLL", "wait_until"]

T = TypeVar("T")
POLL = 0.02  # seconds between two looks


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
    interval: float = POLL,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    An exception of a type in ``ignoring`` counts as "not yet" (a file or
    database the other process has not made yet). Raises ``AssertionError``
    naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)  # another process's state: nothing here can announce it
