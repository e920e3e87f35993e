"""Two ``regisseur download`` runs on one output directory, many rounds: the counts.

The long form of ``tests/reliability/test_two_writers.py``: each round
starts a run, then a second run on the same ``-o DIR`` while the first is
mid-download, in each of the modes ``same`` (both runs want the same
URL), ``different`` and ``mixed`` (one URL in common, one each of their
own), and counts what a user would call broken (see
``tests/reliability/two_writers.py``): rounds, corrupt files, double
publishes, records Errored although their file is complete, stray part
files, runs that did not exit 0, URLs without exactly one Succeeded record.

Usage: ``python bench/bench_two_writers.py [--rounds N] [--modes same,different,mixed]``
(``--rounds`` per mode, default 20). Exits 1 if any count is not zero.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability import two_writers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per mode (20)")
    parser.add_argument("--modes", default="same,different,mixed")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in two_writers.MODES]
    if unknown or args.rounds < 1:
        parser.error(f"unknown mode(s) {unknown} or rounds < 1")
    totals = {
        "rounds": 0,
        "corrupt files": 0,
        "double publishes": 0,
        "errored with complete file": 0,
        "stray part files": 0,
        "runs not exiting 0": 0,
        "URLs without exactly one success": 0,
    }
    seconds: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-two-writers-") as scratch,
        contextlib.contextmanager(two_writers.serve)() as server,
    ):
        for number in range(args.rounds):
            for mode in modes:
                started = time.monotonic()
                result = two_writers.run_round(server, mode, Path(scratch) / f"{mode}-{number}")
                seconds.append(time.monotonic() - started)
                totals["rounds"] += 1
                totals["corrupt files"] += result.corrupt
                totals["double publishes"] += result.double_publish
                totals["errored with complete file"] += result.errored_with_complete_file
                totals["stray part files"] += len(result.stray)
                totals["runs not exiting 0"] += sum(1 for c in result.codes if c != 0)
                totals["URLs without exactly one success"] += result.not_exactly_one_success
                if not result.ok:
                    print(f"round {number} {mode}: {result}", file=sys.stderr)
    for label, count in totals.items():
        print(f"{label:34} {count}")
    spread = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    print(
        f"{'seconds per round':34} median {statistics.median(seconds):.2f} "
        f"(quartiles {spread[0]:.2f}-{spread[2]:.2f})"
    )
    broken = sum(v for k, v in totals.items() if k != "rounds")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
