"""How the commands are stopped: Ctrl-C, and SIGTERM or SIGHUP taken like it.

A command stops its system when Ctrl-C reaches it (``KeyboardInterrupt``),
so what it did is kept: ``regisseur download`` flushes each ``.part`` and
records how far it got, and the next run resumes from there. SIGTERM is
what ``timeout``, systemd, CI runners and ``kill`` send; SIGHUP is what a
command gets when its terminal is closed (an ssh session drops, a window
is shut). Python's default for both ends the process at once: its parts
still resume from their last byte, but no line says what was kept and
the records may be behind. The
console script therefore installs :func:`terminate_as_interrupt`: either
signal raises :class:`Terminated` (a ``KeyboardInterrupt``) on the main
thread and takes the same path, with exit code 143 (128 + 15) or 129
(128 + 1) instead of 130. A command that should outlive its terminal is
started with SIGHUP ignored (``nohup``), and then keeps ignoring it.

The first of Ctrl-C, SIGTERM and SIGHUP stops the command, which cleans up
(its stop is bounded, but can take seconds). A second Ctrl-C or SIGTERM
while it does quits at once, as docker and most downloaders do: the
process writes the line :func:`cut_short_says` set (what was cut short)
straight to stderr and ends with ``os._exit`` (no cleanup, no traceback;
what is on disk is what a SIGKILL would leave), exit code 128 + that
signal. SIGHUP after the first signal is ignored: the terminal is gone,
and finishing the cleanup is better than nothing.

Threads: the handlers run on the main thread (Python runs them there);
elsewhere these context managers do nothing. The kernel hands a signal to
any thread that does not block it, and one handed to another thread waits
for the main thread's current wait to end (in a stop: up to a 5 s bound);
so ``regisseur download``'s system and its progress view start their
threads with these signals blocked (``main_thread_signals``, see
:mod:`regisseur.actors.signals`), and only the main thread can take them.
Process-wide: only the console script installs the handlers, never
``main()``, which another program may call; there :func:`cleaning_up`
ignores Ctrl-C during the cleanup, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING

from regisseur.cli._error_text import raised_from

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

__all__ = [
    "Terminated",
    "cleaning_up",
    "cut_short_says",
    "exit_code",
    "interrupt_behind",
    "interrupted",
    "stopped_by",
    "terminate_as_interrupt",
]

#: The signals taken like Ctrl-C (where the platform has them).
_TAKEN = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: The signals that, once the command is stopping, quit it at once.
_QUITTING = (signal.SIGINT, signal.SIGTERM)

#: The line a quit at once writes (see :func:`cut_short_says`).
_DEFAULT_CUT_SHORT = "quit at once: the stop was cut short"
_cut_short = _DEFAULT_CUT_SHORT


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) reached a command: stop as after Ctrl-C, then exit
    128 + ``signum``."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP (the shell's 128 + signal number)."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM, SIGHUP) an exception was raised while handling, or None.

    A signal's exception can land while a lock is being taken back on the
    main thread (inside ``Condition.wait``): the ``with`` around it then
    releases a lock it does not hold, and the ``RuntimeError`` of that
    replaces the interrupt, which stays its ``__context__``. The command
    was interrupted all the same.
    """
    return next((e for e in raised_from(exc) if isinstance(e, KeyboardInterrupt)), None)


def interrupted(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and what a command says it was (:func:`stopped_by`) when
    ``exc`` is an interrupt or an error raised as one unwound
    (:func:`interrupt_behind`); None for any other error."""
    interrupt = interrupt_behind(exc)
    return None if interrupt is None else (exit_code(interrupt), stopped_by(interrupt))


def stopped_by(interrupt: KeyboardInterrupt) -> str:
    """What the command says it was: ``interrupted``, ``terminated`` or ``hung up``."""
    if not isinstance(interrupt, Terminated):
        return "interrupted"
    return "hung up" if interrupt.signum == getattr(signal, "SIGHUP", None) else "terminated"


def cut_short_says(line: str) -> None:
    """What a quit at once writes on stderr: what the command's cleanup leaves undone.

    Called by a command before it runs (any thread); it only matters in the
    console script, whose handlers write it. Reset when the console
    script's block ends.
    """
    global _cut_short  # the handlers are process-wide too
    _cut_short = line


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _stopping()
    raise Terminated(signum)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C in the console script: Python's ``KeyboardInterrupt``, once."""
    _stopping()
    raise KeyboardInterrupt


def _quit_now(signum: int, frame: FrameType | None) -> None:
    """A second Ctrl-C or SIGTERM while the command stops: end the process now.

    The line goes to file descriptor 2 in one ``write`` (not through
    ``sys.stderr``, which the interrupted code may be writing to), then
    ``os._exit``: no cleanup, no flush, no thread joined, no traceback.
    Files are left as a SIGKILL leaves them. Errors writing the line
    (stderr closed) are ignored: the exit code says it.
    """
    with contextlib.suppress(OSError):
        os.write(2, f"{_cut_short}\n".encode(errors="backslashreplace"))
    os._exit(128 + signum)


def _stopping() -> None:
    """The first signal stops the command: from now on a second Ctrl-C or
    SIGTERM quits at once (:func:`_quit_now`), SIGHUP is ignored.

    Set here, not when the cleanup block begins: a second signal a few
    bytecodes after the first (Ctrl-C, then SIGTERM from a script) is a
    second signal too. Only the signals this module took are changed; the
    console script puts the defaults back when the command returns.
    """
    for signum in (signal.SIGINT, *_TAKEN):
        if signal.getsignal(signum) in (_raise_terminated, _raise_interrupt):
            signal.signal(signum, _quit_now if signum in _QUITTING else signal.SIG_IGN)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` on the main thread.

    Each is left alone when the process was started with it ignored
    (``nohup``) or handled by someone else (only the default, which ends
    the process at once, is replaced). Ctrl-C raises ``KeyboardInterrupt``
    as before. After the first of these signals, a second Ctrl-C or SIGTERM
    quits at once and SIGHUP is ignored (see :func:`_stopping`). The
    defaults are back after the block.
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
        cut_short_says(_DEFAULT_CUT_SHORT)


@contextlib.contextmanager
def cleaning_up() -> Iterator[None]:
    """The block in which a command stops its system after a first signal.

    In the console script, a second Ctrl-C or SIGTERM in it quits at once
    (:func:`_quit_now`); SIGHUP is ignored (both set by the first signal,
    which may also have come a few bytecodes before the block). Anywhere
    else (``main()`` in another program, no signal yet), SIGINT, and
    SIGTERM and SIGHUP where taken like it, are ignored inside the block so
    that a signal cannot leave threads or a half-stopped system behind
    (each stop is bounded by the children's ``shutdown_timeout``). On any
    thread but the main one, a no-op.
    """
    if not _on_main_thread():
        yield
        return
    kept = (_quit_now, signal.SIG_IGN)
    ours = [
        s
        for s in (signal.SIGINT, *_TAKEN)
        if signal.getsignal(s) in (_raise_interrupt, _raise_terminated)
        or (s == signal.SIGINT and signal.getsignal(s) not in kept)
    ]
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in ours}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
