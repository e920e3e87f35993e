"""How the commands are stopped: Ctrl-C, and SIGTERM taken like it.

A command stops its system when Ctrl-C reaches it (``KeyboardInterrupt``),
so what it did is kept: ``regisseur download`` flushes each ``.part`` and
records how far it got, and the next run resumes from there. SIGTERM is
what ``timeout``, systemd, CI runners and ``kill`` send; Python's default
ends the process at once, and a download then resumes from its last
checkpoint, up to 4 MiB earlier. The console script therefore installs
:func:`terminate_as_interrupt`: SIGTERM raises :class:`Terminated` (a
``KeyboardInterrupt``) on the main thread and takes the same path, with
exit code 143 (128 + 15) instead of 130.

Threads: the handlers run on the main thread (Python delivers signals
there); elsewhere these context managers do nothing. Process-wide: only
the console script installs the SIGTERM handler, never ``main()``, which
another program may call.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

__all__ = ["Terminated", "exit_code", "no_interrupts", "terminate_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM reached a command: stop as after Ctrl-C, then exit 143."""


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 after Ctrl-C, 143 after SIGTERM (the shell's 128 + signal number)."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` on the main thread.

    Left alone when the process was started with SIGTERM ignored or handled
    by someone else (only the default, which ends the process at once, is
    replaced). The previous handler is back after the block.
    """
    if not _on_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore SIGINT (and SIGTERM, if taken like it) inside the block.

    The commands stop their system in such a block after a first Ctrl-C or
    SIGTERM, so a second one cannot leave threads or a half-stopped system
    behind (each stop is bounded by the children's ``shutdown_timeout``).
    On any thread but the main one, a no-op.
    """
    if not _on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    ours = signal.getsignal(signal.SIGTERM) is _raise_terminated
    if ours:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        if ours:
            signal.signal(signal.SIGTERM, _raise_terminated)
        signal.signal(signal.SIGINT, previous)
