"""``ActorSystem(main_thread_signals=True)``: the kernel can hand a signal sent
to the process to no thread of the system, only to the main thread.

Each thread's mask is read where the kernel keeps it
(``/proc/self/task/<tid>/status``, ``SigBlk``): the timer thread, every
actor's thread, a restarted actor's new thread and a thread an actor
starts itself. The caller's own mask is as it was after ``start()`` and
``stop()``; by default no thread blocks anything (a process an actor starts
would inherit it).
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ActorSystem, RealClock
from regisseur.actors.signals import MAIN_THREAD_SIGNALS, signals_blocked
from regisseur.supervision import ChildSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.supervision.testing.faults import FaultInjector

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir() or not hasattr(signal, "pthread_sigmask"),
    reason="needs /proc and pthread_sigmask",
)

WAIT = 10.0
_KEPT = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def blocked_in(thread: threading.Thread) -> set[int]:
    """The signals ``thread`` blocks, as the kernel sees them."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    [mask] = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
    bits = int(mask, 16)
    return {number for number in range(1, 65) if bits & (1 << (number - 1))}


def threads_of(system: ActorSystem) -> list[threading.Thread]:
    """The system's threads, the timer thread included (by their names)."""
    prefix = f"regisseur:{system.name}/"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def own_mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


class Helper(Actor):
    """Starts a thread of its own (a pool's) on request; answers with its mask."""

    def on_receive(self, message: Any) -> Any:
        if message == "pool":
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(own_mask).result(WAIT)
        return own_mask()


@pytest.mark.timeout(60)
def test_every_thread_of_the_system_blocks_the_process_signals_and_the_caller_keeps_its_mask(
    system_factory: Callable[..., ActorSystem], faults: FaultInjector
) -> None:
    before = own_mask()
    system = system_factory(
        [ChildSpec("helper", Helper), ChildSpec("other", Helper)],
        clock=RealClock(),
        database_url=None,
        name="quiet",
        main_thread_signals=True,
    )
    assert own_mask() == before, "start() left the caller's mask changed"
    threads = threads_of(system)
    assert any(t.name.endswith("/timers") for t in threads), [t.name for t in threads]
    assert len(threads) >= 4, [t.name for t in threads]  # timers, kernel, children, ...
    for thread in threads:
        assert blocked_in(thread) >= MAIN_THREAD_SIGNALS >= _KEPT, thread.name
    assert not blocked_in(threading.main_thread()) & _KEPT
    helper = system.ref("helper")
    # A thread an actor starts inherits its mask.
    assert set(helper.ask("pool", timeout=WAIT)) >= MAIN_THREAD_SIGNALS
    # A child whose thread died gets a new one (from its supervisor's): blocked too.
    old = set(threads_of(system))
    faults.kill("helper")
    system.settle(WAIT)
    assert set(system.ref("helper").ask("mask", timeout=WAIT)) >= MAIN_THREAD_SIGNALS
    assert set(threads_of(system)) - old, "no new thread was made"
    # A child spawned from the caller's thread: the same.
    system.spawn(ChildSpec("late", Helper))
    assert set(system.ref("late").ask("mask", timeout=WAIT)) >= MAIN_THREAD_SIGNALS
    system.stop()
    assert own_mask() == before, "stop() left the caller's mask changed"


@pytest.mark.timeout(60)
def test_by_default_the_system_threads_block_nothing_new(
    system_factory: Callable[..., ActorSystem],
) -> None:
    """Off by default: a process an actor starts gets the mask it would get anyway."""
    before = own_mask()
    system = system_factory(
        [ChildSpec("helper", Helper)], clock=RealClock(), database_url=None, name="plain"
    )
    assert system.blocked_signals == frozenset()
    for thread in threads_of(system):
        assert blocked_in(thread) == before, thread.name
    assert set(system.ref("helper").ask("pool", timeout=WAIT)) == before


def test_signals_blocked_restores_the_mask_after_an_error() -> None:
    before = own_mask()
    with pytest.raises(KeyError), signals_blocked():
        assert own_mask() >= MAIN_THREAD_SIGNALS
        raise KeyError("inside")
    assert own_mask() == before


def test_main_thread_signals_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="main_thread_signals must be True or False, got 'yes'"):
        ActorSystem(database_url=None, main_thread_signals="yes")  # type: ignore[arg-type]
