"""What the checks of a ``nofollow=1`` SQLite database cost, next to the same database without them.

Run: ``python bench/bench_records_checks.py [--rounds R] [--connections N] [--commits N]``

``regisseur download`` opens its records in ``-o DIR`` with ``nofollow=1``:
each new connection's ``-wal``, ``-shm`` and ``-journal`` are checked
before SQLite opens them and after (``/proc/self/fd``), and one connection
stays open from start to end. This bench measures, in one process and in
interleaved rounds (the machine's noise hits both sides), for a database
with the checks (``nofollow``) and the same file layout without them
(``plain``):

* ``open``: ``Database.open()`` of a new file and its ``close()`` (the
  template WAL file, the guard and the kept connection included);
* ``connect``: a new pooled connection (the pool emptied before each),
  its first statement included: what the checks add per connection;
* ``commit``: one ``INSERT`` and its commit on an open connection, the
  keeper's hot path: the checks add nothing here by design.

Prints the median of each round's median (µs), the spread (min-max of the
rounds' medians) and the ratio ``nofollow / plain``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from regisseur.actors.database import Database

SIDES = ("plain", "nofollow")


def _one_round(directory: Path, option: str, connections: int, commits: int) -> dict[str, float]:
    path = directory / "records.db"
    started = time.perf_counter()
    database = Database(f"sqlite:///{path}{option}")
    database.open()
    database.close()
    opened = time.perf_counter() - started
    database.open()
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS t (v INTEGER)"))
        connects = []
        for _ in range(connections):
            database.engine.dispose()  # the next use opens a new connection
            started = time.perf_counter()
            with database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            connects.append(time.perf_counter() - started)
        per_commit = []
        with database.engine.connect() as connection:
            for value in range(commits):
                started = time.perf_counter()
                connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
                connection.commit()
                per_commit.append(time.perf_counter() - started)
    finally:
        database.close()
    return {
        "open": opened,
        "connect": statistics.median(connects),
        "commit": statistics.median(per_commit),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--commits", type=int, default=300)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {side: {} for side in SIDES}
    for number in range(args.rounds):
        order = SIDES if number % 2 == 0 else SIDES[::-1]
        for side in order:
            option = "?nofollow=1" if side == "nofollow" else ""
            with tempfile.TemporaryDirectory(prefix="bench-records-") as folder:
                measured = _one_round(Path(folder), option, args.connections, args.commits)
            for key, value in measured.items():
                results[side].setdefault(key, []).append(value * 1e6)
    print(f"{args.rounds} rounds; µs, median of the rounds' medians (spread min-max)")
    for key in ("open", "connect", "commit"):
        cells = []
        medians = {}
        for side in SIDES:
            values = results[side][key]
            medians[side] = statistics.median(values)
            cells.append(f"{side} {medians[side]:8.0f} ({min(values):.0f}-{max(values):.0f})")
        ratio = medians["nofollow"] / medians["plain"]
        print(f"{key:8} " + "   ".join(cells) + f"   nofollow/plain {ratio:.2f}")


if __name__ == "__main__":
    main()
