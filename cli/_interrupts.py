"""How the commands are stopped: Ctrl-C, and SIGTERM or SIGHUP taken like it.

A command stops its system when Ctrl-C reaches it (``KeyboardInterrupt``),
so what it did is kept: ``regisseur download`` flushes each ``.part`` and
records how far it got, and the next run resumes from there. SIGTERM is
what ``timeout``, systemd, CI runners and ``kill`` send; SIGHUP is what a
command gets when its terminal is closed (an ssh session drops, a window
is shut). Python's default for both ends the process at once, and a
download then resumes from its last checkpoint, up to 4 MiB earlier. The
console script therefore installs :func:`terminate_as_interrupt`: either
signal raises :class:`Terminated` (a ``KeyboardInterrupt``) on the main
thread and takes the same path, with exit code 143 (128 + 15) or 129
(128 + 1) instead of 130. A command that should outlive its terminal is
started with SIGHUP ignored (``nohup``), and then keeps ignoring it. The
first of Ctrl-C, SIGTERM and SIGHUP stops the command; the ones after it
are ignored until the command returns, so that none cuts its cleanup short.

Threads: the handlers run on the main thread (Python delivers signals
there); elsewhere these context managers do nothing. Process-wide: only
the console script installs the handlers, never ``main()``, which
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

__all__ = ["Terminated", "exit_code", "no_interrupts", "stopped_by", "terminate_as_interrupt"]

#: The signals taken like Ctrl-C (where the platform has them).
_TAKEN = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) reached a command: stop as after Ctrl-C, then exit
    128 + ``signum``."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP (the shell's 128 + signal number)."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)


def stopped_by(interrupt: KeyboardInterrupt) -> str:
    """What the command says it was: ``interrupted``, ``terminated`` or ``hung up``."""
    if not isinstance(interrupt, Terminated):
        return "interrupted"
    return "hung up" if interrupt.signum == getattr(signal, "SIGHUP", None) else "terminated"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _ignore_more()
    raise Terminated(signum)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C in the console script: Python's ``KeyboardInterrupt``, once."""
    _ignore_more()
    raise KeyboardInterrupt


def _ignore_more() -> None:
    """The first signal stops the command: the next ones are ignored from now on.

    Not only inside :func:`no_interrupts`: a second signal a few bytecodes
    after the first (Ctrl-C, then SIGTERM from a script), before the
    cleanup block began, would cut the cleanup short (the system not
    stopped, no offset recorded). The console script puts the defaults back
    when the command returns.
    """
    for signum in (signal.SIGINT, *_TAKEN):
        if signal.getsignal(signum) in (_raise_terminated, _raise_interrupt):
            signal.signal(signum, signal.SIG_IGN)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` on the main thread.

    Each is left alone when the process was started with it ignored
    (``nohup``) or handled by someone else (only the default, which ends
    the process at once, is replaced). Ctrl-C raises ``KeyboardInterrupt``
    as before. The first of these signals makes the block ignore the next
    ones (see :func:`_ignore_more`). The defaults are back after the block.
    """
    if not _on_main_thread():
        yield
        return
    taken = {s: _raise_terminated for s in _TAKEN if signal.getsignal(s) is signal.SIG_DFL}
    interrupt = signal.getsignal(signal.SIGINT)
    if interrupt is signal.default_int_handler:  # not ignored (a background job's)
        taken[signal.SIGINT] = _raise_interrupt
    for signum, handler in taken.items():
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum in taken:
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, default)


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore SIGINT (and SIGTERM and SIGHUP, where taken like it) inside the block.

    The commands stop their system in such a block after a first Ctrl-C,
    SIGTERM or SIGHUP, so a second one cannot leave threads or a half-stopped system
    behind (each stop is bounded by the children's ``shutdown_timeout``).
    On any thread but the main one, a no-op.
    """
    if not _on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    ours = [s for s in _TAKEN if signal.getsignal(s) is _raise_terminated]
    for signum in ours:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum in ours:
            signal.signal(signum, _raise_terminated)
        signal.signal(signal.SIGINT, previous)
