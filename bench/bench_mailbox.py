"""Tell throughput, ask latency and restart latency against plain Pykka.

Run: ``python bench/bench_mailbox.py [--messages N] [--rounds R] [--load KIND]``

Both sides run in the same process, interleaved round by round (the side
that goes first alternates), and the report quotes the median ratio
regisseur / Pykka over the rounds with its spread (min..max), because the
machines are shared and noisy. ``--load thread`` runs a CPU burner thread
in this process (it competes for the GIL), ``--load process`` one burner
process per core (they compete for the CPUs); the default is no extra load.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import threading
import time
from typing import TYPE_CHECKING, Any

import pykka

from regisseur.actors import Actor, ActorSystem
from regisseur.supervision import Backoff, ChildSpec
from regisseur.supervision.testing import FaultInjector

if TYPE_CHECKING:
    from collections.abc import Iterator


class _Done:
    """Marker telling the actor to signal the waiting benchmark."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event


class PlainCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if type(message) is _Done:
            message.event.set()
            return None
        self.count += 1
        return self.count


class Counter(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if type(message) is _Done:
            message.event.set()
            return None
        self.count += 1
        return self.count


def tell_rate(ref: pykka.ActorRef[Any], n: int) -> float:
    """Messages per second: n tells from this thread until the actor has handled all."""
    done = threading.Event()
    tell = ref.tell
    start = time.perf_counter()
    for _ in range(n):
        tell(1)
    tell(_Done(done))
    done.wait()
    return n / (time.perf_counter() - start)


def ask_p50(ref: pykka.ActorRef[Any], n: int) -> float:
    """Median ask round trip in microseconds."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        ref.ask(1)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def restart_latency(system: ActorSystem, n: int) -> float:
    """Median crash-to-next-message-handled latency in microseconds (zero backoff)."""
    faults = FaultInjector(system)
    samples = []
    for _ in range(n):
        faults.crash("restarter")
        t0 = time.perf_counter()
        system.tell("restarter", "crash me")
        system.ask("restarter", 1, timeout=10)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def _burn(stop: Any) -> None:
    """Spin on the CPU until ``stop`` is set (a thread's or a process's target)."""
    n = 0
    while not stop.is_set():
        for _ in range(10_000):
            n += 1


@contextlib.contextmanager
def load(kind: str) -> Iterator[None]:
    """Run CPU burners beside the bench: none, one thread, or a process per core."""
    if kind == "none":
        yield
        return
    if kind == "thread":
        stop_thread = threading.Event()
        burner = threading.Thread(target=_burn, args=(stop_thread,), daemon=True)
        burner.start()
        try:
            yield
        finally:
            stop_thread.set()
            burner.join()
        return
    stop_process = multiprocessing.Event()
    procs = [
        multiprocessing.Process(target=_burn, args=(stop_process,), daemon=True)
        for _ in range(os.cpu_count() or 1)
    ]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        stop_process.set()
        for proc in procs:
            proc.join()


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}..{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=300)
    parser.add_argument("--load", choices=("none", "thread", "process"), default="none")
    args = parser.parse_args()

    specs = [
        ChildSpec("counter", Counter),
        ChildSpec("restarter", Counter, backoff=Backoff(0)),
    ]
    with ActorSystem(specs, max_restarts=10**9, within=1.0) as system, load(args.load):
        ours = system.ref("counter")
        plain = PlainCounter.start()
        try:
            tell_plain, tell_ours, ask_plain, ask_ours = [], [], [], []
            for index in range(args.rounds):
                sides = [(plain, tell_plain, ask_plain), (ours, tell_ours, ask_ours)]
                if index % 2:
                    sides.reverse()
                for ref, tells, _ in sides:
                    tells.append(tell_rate(ref, args.messages))
                for ref, _, asks in sides:
                    asks.append(ask_p50(ref, args.asks))
            restart = restart_latency(system, args.restarts)
        finally:
            plain.stop()
    tp, to = statistics.median(tell_plain), statistics.median(tell_ours)
    ap, ao = statistics.median(ask_plain), statistics.median(ask_ours)
    tell_ratios = [o / p for o, p in zip(tell_ours, tell_plain, strict=True)]
    ask_ratios = [o / p for o, p in zip(ask_ours, ask_plain, strict=True)]
    print(f"load: {args.load}, {args.rounds} interleaved rounds")
    print(
        f"tell throughput  pykka {tp:>12,.0f} msg/s   regisseur {to:>12,.0f} msg/s   "
        f"ratio {_ratio(tell_ratios)} (higher is better)"
    )
    print(
        f"ask p50          pykka {ap:>10.1f} us     regisseur {ao:>10.1f} us     "
        f"ratio {_ratio(ask_ratios)} (lower is better)"
    )
    print(
        f"restart latency  crash -> next message handled, zero backoff: "
        f"p50 {restart:.0f} us over {args.restarts} restarts"
    )


if __name__ == "__main__":
    main()
