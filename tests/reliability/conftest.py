"""The reliability suites' own guard: no new thread of any name outlives a test."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

_JOIN = 5.0


@pytest.fixture(autouse=True)
def _no_thread_outlives_the_test() -> Iterator[None]:
    """Stricter than the suite's guard: any new thread, whatever its name."""
    before = set(threading.enumerate())
    yield
    left = []
    for thread in threading.enumerate():
        if thread in before or thread is threading.current_thread():
            continue
        thread.join(_JOIN)
        if thread.is_alive():
            left.append(thread.name)
    if left:
        pytest.fail(f"threads outlived the test: {', '.join(left)}")
