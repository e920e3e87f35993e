"""Ctrl-C while a command cleans up: ignored, so the cleanup finishes."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["no_interrupts"]


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore SIGINT inside the block (on the main thread; elsewhere a no-op).

    The commands stop their system in such a block after a first Ctrl-C, so
    a second one cannot leave threads or a half-stopped system behind (each
    stop is bounded by the children's ``shutdown_timeout``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
