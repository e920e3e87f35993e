"""Suite-wide guards: no regisseur thread outlives the test that started it, and
the processes the suite starts get Ctrl-C (SIGINT) as from a terminal."""

from __future__ import annotations

import signal
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


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_the_children() -> Iterator[None]:
    """Let the processes the suite starts get SIGINT as from a terminal.

    A shell starts a background job (``.ci/run &``, ``nohup``) with SIGINT
    ignored, and a started process inherits that: the CLI processes the
    Ctrl-C tests interrupt would then ignore it (and the tests fail for the
    shell's reason, not the code's). Restored at the end of the session.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
