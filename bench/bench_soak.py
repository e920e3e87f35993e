"""Soak: downloads submitted continuously for minutes while faults hit them.

Run: ``python bench/bench_soak.py [--minutes M] [--fault-every S] [--seed N]
[--rounds R] [--rate R] [--speed X] [--no-baseline]``

The long form of ``tests/reliability/test_soak.py`` (see
``tests/reliability/soak.py``): two no-op download sources on a SQLite
file, ``--rate`` submits per second, one fault every ``--fault-every``
seconds injected into the keeper, a queue or a worker (crash of the next
message, crash of the keeper's next submit, killed thread), on the real
clock unless ``--speed`` is given. Each round runs the same seed without
faults first (the baseline), then with them.

Printed per run: faults injected (by kind and target), restarts, submitted,
terminal (by state), lost (ids the keeper does not know), stuck (never
ended), the longest stall (the longest time under faults with no download
ending) and the drain time; then medians with their spread over the
rounds. Exit status 1 if any download was lost or stuck.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.reliability

from tests.reliability.soak import SoakConfig, SoakReport, run


def _spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per run (default 10)")
    parser.add_argument("--fault-every", type=float, default=0.5, help="seconds (default 0.5)")
    parser.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="seeds to run (default 1)")
    parser.add_argument("--rate", type=float, default=200.0, help="submits/s (default 200)")
    parser.add_argument("--speed", type=float, default=None, help="manual clock speed-up")
    parser.add_argument("--no-baseline", action="store_true", help="skip the runs without faults")
    args = parser.parse_args()

    print(
        f"soak: {args.minutes:g} min per run, {args.rate:g} submits/s, one fault every "
        f"{args.fault_every:g} s, {args.rounds} round(s) from seed {args.seed}, "
        f"{'real clock' if args.speed is None else f'clock x{args.speed:g}'}"
    )
    loud: list[SoakReport] = []
    calm: list[SoakReport] = []
    for seed in range(args.seed, args.seed + args.rounds):
        config = SoakConfig(
            seed=seed,
            duration=args.minutes * 60.0,
            fault_every=args.fault_every,
            submit_rate=args.rate,
            speed=args.speed,
            drain_timeout=120.0,
        )
        with tempfile.TemporaryDirectory(prefix="regisseur-soak-") as folder:
            if not args.no_baseline:
                quiet = run(SoakConfig(**{**config.__dict__, "inject": False}), Path(folder))
                calm.append(quiet)
                print(f"-- seed {seed}, no faults")
                print(quiet.summary())
            report = run(config, Path(folder))
        loud.append(report)
        print(f"-- seed {seed}, faults")
        print(report.summary())
        for problem in report.problems[:20]:
            print(f"   PROBLEM {problem}")

    print()
    print(f"over {len(loud)} round(s) with faults: median (min, max)")
    print(f"  faults injected  {_spread([sum(r.faults.values()) for r in loud])}")
    print(f"  submitted        {_spread([r.submitted for r in loud])}")
    print(f"  terminal         {_spread([r.terminal for r in loud])}")
    print(f"  lost             {sum(len(r.lost) for r in loud)} in all")
    print(f"  stuck            {sum(len(r.stuck) for r in loud)} in all")
    print(f"  longest stall    {_spread([r.longest_stall for r in loud])} s")
    print(f"  throughput       {_spread([r.rate for r in loud])} downloads/s")
    if calm:
        print(
            f"  without faults   {_spread([r.rate for r in calm])} downloads/s, "
            f"longest stall {_spread([r.longest_stall for r in calm])} s"
        )
    failed = any(r.lost or r.stuck for r in loud + calm)
    print(f"  checks           {'FAILED' if failed else 'every submitted download ended'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
