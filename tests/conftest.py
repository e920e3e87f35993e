"""Suite-wide guard: no regisseur thread outlives the test that started it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


def _ours() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("regisseur:")]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(_ours())
    yield
    leaked = []
    for thread in _ours():
        if thread in before:
            continue
        thread.join(5.0)
        if thread.is_alive():
            leaked.append(thread.name)
    if leaked:
        pytest.fail(f"threads outlived the test: {', '.join(leaked)}")
