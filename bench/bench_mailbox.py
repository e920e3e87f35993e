"""Tell throughput, ask latency and restart latency against plain Pykka.

Run: ``python bench/bench_mailbox.py [--messages N] [--rounds R]``

Both sides run in the same process, interleaved round by round, and the
report quotes medians and the ratio regisseur / Pykka, because the machines
are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import pykka

from regisseur.actors import Actor, ActorSystem
from regisseur.supervision import Backoff, ChildSpec
from regisseur.supervision.testing import FaultInjector


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=300)
    args = parser.parse_args()

    specs = [
        ChildSpec("counter", Counter),
        ChildSpec("restarter", Counter, backoff=Backoff(0)),
    ]
    with ActorSystem(specs, max_restarts=10**9, within=1.0) as system:
        ours = system.ref("counter")
        plain = PlainCounter.start()
        try:
            tell_plain, tell_ours, ask_plain, ask_ours = [], [], [], []
            for _ in range(args.rounds):
                tell_plain.append(tell_rate(plain, args.messages))
                tell_ours.append(tell_rate(ours, args.messages))
                ask_plain.append(ask_p50(plain, args.asks))
                ask_ours.append(ask_p50(ours, args.asks))
            restart = restart_latency(system, args.restarts)
        finally:
            plain.stop()
    tp, to = statistics.median(tell_plain), statistics.median(tell_ours)
    ap, ao = statistics.median(ask_plain), statistics.median(ask_ours)
    print(
        f"tell throughput  pykka {tp:>12,.0f} msg/s   regisseur {to:>12,.0f} msg/s   "
        f"ratio {to / tp:.2f}x (median of {args.rounds} rounds)"
    )
    print(
        f"ask p50          pykka {ap:>10.1f} us     regisseur {ao:>10.1f} us     "
        f"ratio {ao / ap:.2f} (lower is better)"
    )
    print(
        f"restart latency  crash -> next message handled, zero backoff: "
        f"p50 {restart:.0f} us over {args.restarts} restarts"
    )


if __name__ == "__main__":
    main()
