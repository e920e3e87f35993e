"""Which thread takes the process's signals: the main thread, where Python runs their handlers.

The kernel hands a signal sent to the whole process (Ctrl-C, ``kill``,
``timeout``) to any one thread that does not block it; it prefers the main
thread, but takes another when the main thread already has a signal
pending. Python runs every handler on the main thread. A main thread that
waits in a blocking call (a lock, ``Thread.join``, ``Future.result(timeout)``,
an ``ask``) wakes early only when the signal interrupts *its own* wait: one
that the kernel handed to another thread is handled when the main thread's
wait ends (up to a stop's whole ``shutdown_timeout``).

A thread that blocks these signals can never be handed one, and a thread
inherits the signal mask of the thread that starts it. So a system whose
threads all block them leaves the main thread (or any thread of the
program's own that does not block them) as the only one the kernel can
pick: ``ActorSystem(main_thread_signals=True)`` starts every thread of the
system inside :func:`signals_blocked`, from whichever thread starts it (the
caller of ``start()``, a supervisor restarting a child), and every thread
those threads start inherits the mask (the workers of a
``ThreadPoolExecutor`` an actor submits to, say: a pool starts its threads
from the thread that submits, so the program's own threads submitting to
it start unblocked ones).

Child processes: a process started from a thread that blocks signals
(``subprocess``, ``os.fork``, ``multiprocessing``) starts with them blocked
too, and keeps them blocked through ``exec``: SIGTERM or Ctrl-C would not
reach it. ``main_thread_signals`` is therefore off by default; turn it on
for a system whose actors start no processes (``regisseur download`` does).

Threads: any thread; :func:`signals_blocked` changes only the calling
thread's mask, and restores it as it was on leaving the block (an
exception included). Where the platform has no ``pthread_sigmask``
(Windows), nothing is blocked.
"""

from __future__ import annotations

import contextlib
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["MAIN_THREAD_SIGNALS", "signals_blocked"]

#: The signals sent to the process as a whole that a Python program handles
#: (or whose default ends it): those ``main_thread_signals`` keeps for the
#: main thread. Not the signals the kernel sends to the very thread that
#: caused them (SIGSEGV, SIGFPE, SIGPIPE, ...): blocking those changes
#: nothing or kills the process.
MAIN_THREAD_SIGNALS: frozenset[signal.Signals] = frozenset(
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
        "SIGWINCH",
    )
    if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_blocked(signals: Iterable[int] = MAIN_THREAD_SIGNALS) -> Iterator[None]:
    """Within the block, ``signals`` are blocked in the calling thread.

    A thread started inside the block starts with them blocked (and stays
    so: it inherits the mask, the block's end does not change it). A
    signal sent to the process meanwhile waits until a thread that does
    not block it takes it (the calling thread after the block, if no other
    does). The thread's mask is restored as it was, whatever happens in the
    block. With no signals, or without ``pthread_sigmask``, it does nothing.
    """
    wanted = frozenset(signals)
    if not wanted or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
