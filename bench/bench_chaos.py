"""Chaos under load: a big supervision tree, many messages, random faults.

Run: ``python bench/bench_chaos.py [--seed S] [--rounds R] [--actors N]
[--messages M] [--faults F] [--senders K]``

The long version of the seeded chaos run that CI runs short
(``tests/reliability/chaos.py``, ``tests/reliability/test_chaos.py``): a
tree of ``N`` workers under nested supervisors (all three strategies,
``depends_on`` inside the ``REST_FOR_ONE`` groups), ``M`` messages from
``K`` sender threads, and ``F`` faults injected at random points of their
streams: crashes, failed restarts, hangs on the manual clock, killed
threads (of workers, of hung workers, of supervisors).

Each round runs the same seed twice, interleaved: without faults (the same
tree and load: the baseline) and with them. Every run is checked as in the
test: each message handled exactly once or a dead letter, every child
running in the health tree, no thread left. Reported per round and as
medians: actors, messages, faults of each kind, dead letters, restarts,
elapsed time and messages per second. Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.reliability

from tests.reliability.chaos import ChaosConfig, Report, run

if TYPE_CHECKING:
    from collections.abc import Iterable


def _config(args: argparse.Namespace, seed: int, faults: int) -> ChaosConfig:
    scale = max(1.0, args.messages / 20_000)
    return ChaosConfig(
        seed=seed,
        actors=args.actors,
        messages=args.messages,
        faults=faults,
        senders=args.senders,
        send_timeout=20.0 * scale,
        drain_timeout=15.0 * scale,
        settle_timeout=10.0,
    )


def _line(label: str, report: Report) -> str:
    kinds = ", ".join(f"{k} {report.faults[k]}" for k in sorted(report.faults)) or "none"
    return (
        f"  {label:<9} {report.load_time:7.2f} s  {report.rate:>9,.0f} msg/s  "
        f"faults {sum(report.faults.values())} ({kinds}); "
        f"dead letters {report.dead_letters}; failures {report.failures}; "
        f"restarts {report.restarts}; problems {len(report.problems)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="seeds to run (default 3)")
    parser.add_argument("--actors", type=int, default=500, help="workers (default 500)")
    parser.add_argument("--messages", type=int, default=200_000, help="default 200000")
    parser.add_argument("--faults", type=int, default=2_000, help="default 2000")
    parser.add_argument("--senders", type=int, default=4, help="sender threads (default 4)")
    args = parser.parse_args()

    print(
        f"chaos: {args.actors} workers, {args.messages:,} messages from {args.senders} "
        f"senders, {args.faults:,} faults; {args.rounds} round(s) from seed {args.seed}"
    )
    calm: list[Report] = []
    chaos: list[Report] = []
    for seed in range(args.seed, args.seed + args.rounds):
        print(f"seed {seed}")
        quiet = run(_config(args, seed, 0))
        print(_line("no faults", quiet))
        loud = run(_config(args, seed, args.faults))
        print(_line("faults", loud))
        calm.append(quiet)
        chaos.append(loud)
        for report in (quiet, loud):
            for problem in report.problems[:20]:
                faults = sum(report.faults.values())
                print(f"    PROBLEM (seed {seed}, {faults} faults): {problem}")

    failed = [r for r in calm + chaos if r.problems]
    _summary(args, calm, chaos, readme=not failed)
    verdict = f"FAILED in {len(failed)} run(s)" if failed else "all passed"
    print(f"  {'checks':<17} {verdict}")
    return 1 if failed else 0


def _summary(
    args: argparse.Namespace, calm: list[Report], chaos: list[Report], *, readme: bool
) -> None:
    def median(values: Iterable[float]) -> float:
        return statistics.median(values)

    def row(label: str, value: str) -> None:
        print(f"  {label:<17} {value}")

    last = chaos[-1]
    print()
    print("medians over the rounds (with faults):")
    row("actors", f"{last.actors} ({last.workers} workers, {last.supervisors} supervisors)")
    row("messages", f"{median(r.sent for r in chaos):,.0f}")
    for kind in sorted({k for r in chaos for k in r.faults}):
        row(kind, f"{median(r.faults[kind] for r in chaos):,.0f}")
    reasons = sorted({k for r in chaos for k in r.dead_reasons})
    by_reason = ", ".join(f"{k!r} {median(r.dead_reasons[k] for r in chaos):,.0f}" for k in reasons)
    dead = median(r.dead_letters for r in chaos)
    row("dead letters", f"{dead:,.0f} ({by_reason})")
    row("failures", f"{median(r.failures for r in chaos):,.0f}")
    restarts = median(r.restarts for r in chaos)
    row("restarts", f"{restarts:,.0f}")
    start, stop = median(r.start_time for r in chaos), median(r.stop_time for r in chaos)
    row("start / stop", f"{start:.2f} s / {stop:.2f} s")
    load = median(r.load_time for r in chaos)
    rate = median(r.rate for r in chaos)
    base = median(r.rate for r in calm)
    row("elapsed", f"{load:.2f} s (first message sent to all drained)")
    row("throughput", f"{rate:,.0f} msg/s with faults, {base:,.0f} without ({rate / base:.2f}x)")
    if not readme:
        return
    print()
    print("README row:")
    print(
        f"| chaos: {last.actors} actors, {args.messages // 1000}k messages, "
        f"{args.faults:,} faults (`bench/bench_chaos.py`) | same load without faults "
        f"{base / 1000:,.0f}k msg/s | {rate / 1000:,.0f}k msg/s in {load:.1f} s; "
        f"{restarts:,.0f} restarts, {dead:,.0f} dead letters, no message lost "
        f"| {rate / base:.2f}x |"
    )


if __name__ == "__main__":
    sys.exit(main())
