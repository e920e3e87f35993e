"""What supervision costs as the tree grows: restart, spawn and stop against plain Pykka.

Run: ``python bench/bench_tree.py [--rounds R] [--quick] [--no-restart] [--sizes N ...]``

Three figures, each as a ratio against plain Pykka measured side by side in
this process, round by round (the machines are shared and noisy), reported
as the median ratio with its spread (min..max over the rounds):

* **restart**: crash -> the next message handled, with zero backoff. The
  Pykka side is a hand-rolled restart: the crash comes back to the sender
  through ``ask``, which starts a fresh actor and asks it. Measured with 0,
  100 and 1,000 idle siblings; the goal is that the figure does not grow
  with the siblings.
* **spawn**: ``system.spawn`` of N children one after the other against
  ``Actor.start`` of N plain Pykka actors (per actor). The two sides take
  turns in chunks of 100 up to 12,000 children each (one after the other
  beyond that), so that both meet the same load and the same thread count.
* **stop**: stopping a system of N children against stopping N plain Pykka
  actors (per actor), for N from 1,000 upwards; the goal is a flat figure.
  A third side, **bare threads**, stops N daemon threads that each wait on
  an ``Event`` (set it, join the thread, in the same window): what the
  operating system charges for waking and ending one of N live threads.
  On Linux that grows with N by itself (every futex wake walks a hash
  bucket shared with the other sleeping threads; 512 buckets on 2 CPUs),
  so "flat" is read as regisseur / bare threads staying flat.
* **spawn** is also set against Pykka actors on daemon threads (as
  regisseur's are): Pykka's default non-daemon threads pay, in CPython
  3.11's ``threading``, a scan of every live non-daemon thread at each
  start and each stop, which flatters any ratio against them at 10,000.
  The Pykka side stops its actors as regisseur does, at most ``STOP_WINDOW``
  asked ahead of the one awaited: asking all N at once wakes N threads that
  fight over the GIL, which at 20,000 takes minutes and loads the whole
  machine (a slower baseline would only flatter the ratio).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import deque
from typing import Any

import pykka

from regisseur.actors import Actor, ActorSystem
from regisseur.supervision import Backoff, ChildSpec
from regisseur.supervision.testing import FaultInjector


class Crash(Exception):
    """The failure both sides restart after."""


class Plain(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            # A failed ask leaves a Pykka actor running: it ends itself, as
            # the crashed incarnation would (else every restart leaks a thread
            # and the baseline slows down as the rounds go).
            self.stop()
            raise Crash("crash")
        return message

    def on_failure(self, *_: Any) -> None:
        """Pykka logs the failure otherwise; the bench only wants the restart."""


class Ours(Actor):
    def on_receive(self, message: Any) -> Any:
        return message


STOP_WINDOW = 32


def _median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}..{max(values):.2f})"


def plain_restart(n: int) -> float:
    """Median seconds: crash, start a fresh actor, its first answer."""
    ref = Plain.start()
    samples = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                ref.ask("crash")
            except Crash:
                ref = Plain.start()
            ref.ask(1)
            samples.append(time.perf_counter() - t0)
    finally:
        ref.stop()
    return statistics.median(samples)


def our_restart(system: ActorSystem, n: int) -> float:
    """Median seconds: crash (a fault injected into the next message), next answer."""
    faults = FaultInjector(system)
    samples = []
    for _ in range(n):
        faults.crash("subject")
        t0 = time.perf_counter()
        system.tell("subject", "crash me")
        system.ask("subject", 1, timeout=10)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def restart_ratios(siblings: int, rounds: int, restarts: int) -> tuple[list[float], list[float]]:
    """(ratios, our medians in seconds), one per round; the side going first alternates."""
    specs = [ChildSpec("subject", Ours, backoff=Backoff(0))]
    specs += [ChildSpec(f"idle{i}", Ours) for i in range(siblings)]
    ratios, absolute = [], []
    with ActorSystem(specs, database_url=None, max_restarts=10**9, within=1.0) as system:
        for index in range(rounds):
            if index % 2:
                ours = our_restart(system, restarts)
                plain = plain_restart(restarts)
            else:
                plain = plain_restart(restarts)
                ours = our_restart(system, restarts)
            ratios.append(ours / plain)
            absolute.append(ours)
    return ratios, absolute


class PlainDaemon(Plain):
    use_daemon_thread = True


def daemon_spawn(n: int) -> float:
    """Seconds to start n Pykka actors on daemon threads (then stopped, untimed)."""
    t0 = time.perf_counter()
    refs = [PlainDaemon.start() for _ in range(n)]
    elapsed = time.perf_counter() - t0
    for ref in refs:
        ref.stop()
    _threads_gone(n)
    return elapsed


def bare_thread_stop(n: int) -> tuple[float, float]:
    """(wall, process CPU) seconds to end n waiting daemon threads, STOP_WINDOW
    set ahead of the one joined."""
    events = [threading.Event() for _ in range(n)]
    threads = [threading.Thread(target=event.wait, daemon=True) for event in events]
    for thread in threads:
        thread.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    joining: deque[threading.Thread] = deque()
    for event, thread in zip(events, threads, strict=True):
        if len(joining) >= STOP_WINDOW:
            joining.popleft().join()
        event.set()
        joining.append(thread)
    for thread in joining:
        thread.join()
    return time.perf_counter() - t0, time.process_time() - cpu0


# Chunks of the interleaved spawn: each side spawns this many, in turn.
SPAWN_CHUNK = 100
# Interleaving keeps both sides' threads alive at once (two mappings each);
# beyond this many children per side the process would pass Linux's
# default vm.max_map_count (65,530), so larger sizes spawn one side after
# the other.
MAX_INTERLEAVED = 12_000


def _plain_stop(refs: list[pykka.ActorRef[Any]]) -> float:
    """Seconds to stop ``refs``, at most STOP_WINDOW asked ahead of the one awaited."""
    t0 = time.perf_counter()
    asked: deque[pykka.Future[Any]] = deque()
    for ref in refs:
        if len(asked) >= STOP_WINDOW:
            asked.popleft().get()
        asked.append(ref.stop(block=False))
    for future in asked:
        future.get()
    return time.perf_counter() - t0


def _spawn_both(system: ActorSystem, n: int) -> tuple[float, float, list[pykka.ActorRef[Any]]]:
    """(our seconds, Pykka's seconds, Pykka's refs): n children each.

    Up to MAX_INTERLEAVED, the two sides take turns in chunks of SPAWN_CHUNK
    (the side going first alternates), so both see the same machine and
    the same number of live threads; beyond it Pykka's actors are started,
    timed, stopped, and then ours.
    """
    ours = plain = 0.0
    refs: list[pykka.ActorRef[Any]] = []
    if n > MAX_INTERLEAVED:
        t0 = time.perf_counter()
        refs = [Plain.start() for _ in range(n)]
        plain = time.perf_counter() - t0
        _plain_stop(refs)
        _threads_gone(n)
        t0 = time.perf_counter()
        for i in range(n):
            system.spawn(ChildSpec(f"c{i}", Ours))
        return time.perf_counter() - t0, plain, []
    for chunk, first in enumerate(range(0, n, SPAWN_CHUNK)):
        count = min(SPAWN_CHUNK, n - first)
        for side in ("ours", "plain") if chunk % 2 == 0 else ("plain", "ours"):
            t0 = time.perf_counter()
            if side == "ours":
                for i in range(first, first + count):
                    system.spawn(ChildSpec(f"c{i}", Ours))
                ours += time.perf_counter() - t0
            else:
                refs.extend(Plain.start() for _ in range(count))
                plain += time.perf_counter() - t0
    return ours, plain, refs


def spawn_and_stop(n: int) -> tuple[float, ...]:
    """One round for n children: (spawn ratio, stop ratio, our stop seconds per
    actor, spawn ratio against daemon Pykka, stop ratio against bare threads,
    the same by process CPU: less moved by the neighbours' load)."""
    daemon = daemon_spawn(n)
    bare, bare_cpu = bare_thread_stop(n)
    _threads_gone(n)
    plain_stop = _plain_stop([Plain.start() for _ in range(n)])
    _threads_gone(n)

    system = ActorSystem(database_url=None)
    system.start()
    try:
        our_spawn, plain_spawn, refs = _spawn_both(system, n)
        _plain_stop(refs)  # untimed: ours is stopped alone, as Pykka's was
        _threads_gone(n, alive=n)
    finally:
        t0, cpu0 = time.perf_counter(), time.process_time()
        system.stop()
        our_stop = time.perf_counter() - t0
        our_stop_cpu = time.process_time() - cpu0
    _threads_gone(n)
    return (
        our_spawn / plain_spawn,
        our_stop / plain_stop,
        our_stop / n,
        our_spawn / daemon,
        our_stop / bare,
        our_stop_cpu / bare_cpu,
    )


def _threads_gone(n: int, alive: int = 0) -> None:
    """Wait (untimed, bounded) until the stopped actors' threads have exited.

    Both sides return from stop once every actor has stopped; their threads
    end a moment later. Without this wait the next round starts while
    thousands still exit, and at 20,000 the process runs out of threads.
    ``alive``: threads that are meant to stay (the other side's actors).
    """
    limit = 50 + alive
    deadline = time.monotonic() + 120
    while threading.active_count() > limit and time.monotonic() < deadline:
        time.sleep(0.1)
    if threading.active_count() > limit:
        print(f"  ({threading.active_count()} threads still alive after {n} stops)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="children for spawn/stop (default 1,000 10,000 20,000)"
    )
    parser.add_argument("--no-restart", action="store_true", help="only the spawn and stop figures")
    args = parser.parse_args()
    siblings = (0, 100) if args.quick else (0, 100, 1_000)
    sizes = (200, 1_000) if args.quick else (1_000, 10_000, 20_000)
    if args.sizes:
        sizes = tuple(args.sizes)

    if not args.no_restart:
        print(f"restart (crash -> next message handled), {args.rounds} rounds of {args.restarts}:")
    for count in () if args.no_restart else siblings:
        ratios, absolute = restart_ratios(count, args.rounds, args.restarts)
        figure = _median_spread(ratios)
        p50 = statistics.median(absolute) * 1e6
        print(
            f"  {count:>5} idle siblings   regisseur / hand-rolled pykka  {figure}"
            f"   (regisseur p50 {p50:.0f} us)"
        )

    print("spawn and stop, per actor, regisseur / pykka:")
    for n in sizes:
        pairs = [spawn_and_stop(n) for _ in range(max(1, args.rounds // 2))]
        spawn = [pair[0] for pair in pairs]
        stop = [pair[1] for pair in pairs]
        per_actor = statistics.median(pair[2] for pair in pairs) * 1e6
        daemon = [pair[3] for pair in pairs]
        bare = [pair[4] for pair in pairs]
        bare_cpu = [pair[5] for pair in pairs]
        print(
            f"  {n:>6} children   spawn {_median_spread(spawn)}   stop {_median_spread(stop)}"
            f"   (regisseur stop {per_actor:.0f} us/actor)\n"
            f"  {'':>6}            spawn / daemon pykka {_median_spread(daemon)}"
            f"   stop / bare threads {_median_spread(bare)}, by CPU {_median_spread(bare_cpu)}"
        )


if __name__ == "__main__":
    main()
