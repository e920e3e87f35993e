"""Start time of a dependency graph against its critical path.

Run: ``python bench/bench_startup.py [--quick] [--rounds R] [--start-ms MS]``

100 children in 5 levels of 20; each child depends on two children of the
level before and takes ``MS`` milliseconds in ``on_start``. The graph can
start no faster than its critical path, 5 x MS. Side by side in the same
process, interleaved round by round:

* ``critical path``: 5 sleeps of MS in a row, measured (the floor);
* ``threads``: the same graph by hand, one thread per child per level
  started together and joined (what a hand-written parallel start costs);
* ``regisseur``: ``ActorSystem(children).start()`` (with the threads and
  supervisors it creates), and ``stop()`` timed apart.

Reported: median seconds and the ratio of each to the measured critical
path (the target for regisseur is at most 1.3), and the median of the
per-round ratios. ``--quick`` runs 3 rounds.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from regisseur.actors import Actor, ActorSystem
from regisseur.supervision import ChildSpec

LEVELS = 5
WIDTH = 20
TARGET = 1.3  # regisseur's start time / the critical path


class Slow(Actor):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_start(self) -> None:
        time.sleep(self.seconds)  # simulated start-up work, not a wait


def graph(seconds: float) -> list[ChildSpec]:
    specs = []
    for level in range(LEVELS):
        for index in range(WIDTH):
            depends: tuple[str, ...] = ()
            if level:
                depends = (f"c{level - 1}-{index}", f"c{level - 1}-{(index + 1) % WIDTH}")
            specs.append(ChildSpec(f"c{level}-{index}", Slow, args=(seconds,), depends_on=depends))
    return specs


def critical_path(seconds: float) -> float:
    start = time.perf_counter()
    for _ in range(LEVELS):
        time.sleep(seconds)
    return time.perf_counter() - start


def by_hand(seconds: float) -> float:
    start = time.perf_counter()
    for _ in range(LEVELS):
        threads = [threading.Thread(target=time.sleep, args=(seconds,)) for _ in range(WIDTH)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return time.perf_counter() - start


def with_regisseur(seconds: float) -> tuple[float, float]:
    system = ActorSystem(graph(seconds), database_url=None)
    start = time.perf_counter()
    system.start()
    started = time.perf_counter() - start
    running = len(system.names())
    assert running >= LEVELS * WIDTH, f"only {running} actors are running"
    start = time.perf_counter()
    system.stop()
    stopped = time.perf_counter() - start
    assert system.threads() == [], "threads outlived the system"
    return started, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="default 7 (3 with --quick)")
    parser.add_argument("--start-ms", type=float, default=20.0)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    seconds = args.start_ms / 1000
    floor: list[float] = []
    hand: list[float] = []
    ours: list[float] = []
    stops: list[float] = []
    for _ in range(rounds):
        floor.append(critical_path(seconds))
        hand.append(by_hand(seconds))
        started, stopped = with_regisseur(seconds)
        ours.append(started)
        stops.append(stopped)
    path = statistics.median(floor)
    print(
        f"{LEVELS * WIDTH} children, {LEVELS} levels of {WIDTH}, {args.start_ms:g} ms each, "
        f"{rounds} rounds (medians)"
    )
    print(f"{'':<16}{'seconds':>10}{'x critical path':>18}")
    for name, values in (
        ("critical path", floor),
        ("threads", hand),
        ("regisseur", ours),
    ):
        median = statistics.median(values)
        print(f"{name:<16}{median:>10.3f}{median / path:>17.2f}x")
    print(f"{'stop (100)':<16}{statistics.median(stops):>10.3f}")
    ratios = [o / f for o, f in zip(ours, floor, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"median per-round ratio regisseur / critical path: {ratio:.2f}")
    print(f"target: at most {TARGET}x ({verdict})")
    against_threads = [o / h for o, h in zip(ours, hand, strict=True)]
    print(
        "median per-round ratio regisseur / threads by hand: "
        f"{statistics.median(against_threads):.2f} (what supervision adds; steadier under load)"
    )
    nominal = LEVELS * seconds
    if nominal:
        median = statistics.median(ours)
        print(f"against the nominal {LEVELS} x {args.start_ms:g} ms: {median / nominal:.2f}x")


if __name__ == "__main__":
    main()
