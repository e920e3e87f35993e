"""Cluster mode under faults: the long forms of tests/cluster's fencing and outage tests.

Run: ``python bench/bench_cluster_faults.py [--rounds R] [--downloads N] [--files F]``

Needs PostgreSQL binaries (a throwaway server on loopback, tests/cluster/pg.py).
Every round runs real node processes (tests/cluster/node_child.py):

* ``freeze-body``: node a frozen (SIGSTOP) during a download's body until
  node b has taken it over and published it, then woken (SIGCONT);
* ``freeze-publish``: a frozen between the end of the body and the publish;
* ``reaped-reclaim``: a frozen until reaped, woken, claims its download again
  while the old run ends;
* ``outage-noop``: N no-op downloads on two nodes, PostgreSQL killed (SIGKILL)
  for twice the lease;
* ``outage-http``: F HttpSource downloads (a slow server) on two nodes,
  PostgreSQL stopped (``-m immediate``) for twice the lease.

Printed per scenario, summed over the rounds: rounds, failed rounds (an
assertion of the test), downloads, corrupt files, published twice (two
publishes or two files), two nodes running one download at once (frozen
windows left out; measured for the no-op source only), Errored, left
unfinished, part files left (HTTP), live nodes reaped (outages).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.cluster

from tests.cluster import test_cluster_db_outage as outage
from tests.cluster import test_cluster_fencing as fencing
from tests.cluster.helpers import concurrent_runs, spans, table
from tests.cluster.pg import PostgresServer

if TYPE_CHECKING:
    from collections.abc import Callable

FIELDS = (
    "rounds",
    "failed",
    "downloads",
    "corrupt",
    "published_twice",
    "concurrent_runs",
    "errored",
    "unfinished",
    "parts_left",
    "reaped_live_nodes",
)


def noop_counts(url: str, out: Path) -> Counter[str]:
    """The counts of one no-op round, from the table and what the nodes left."""
    counts: Counter[str] = Counter()
    with table(url) as db:
        rows = db.rows()
    counts["downloads"] = len(rows)
    counts["errored"] = sum(1 for r in rows if r.state == "Errored")
    ended = ("Errored", "Cancelled", "Completed, Succeeded")
    counts["unfinished"] = sum(1 for r in rows if r.state not in ended)
    published = Counter(download_id for download_id, *_ in spans(out))
    counts["published_twice"] = sum(1 for n in published.values() if n > 1)
    counts["concurrent_runs"] = len(concurrent_runs(out, _frozen(out)))
    for row in rows:
        if row.file_path is not None:
            path = Path(row.file_path)
            if not path.exists() or path.read_text(encoding="utf-8") != path.name:
                counts["corrupt"] += 1
    return counts


def _frozen(out: Path) -> list[tuple[str, float, float]]:
    try:
        lines = (out / "frozen.log").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [(n, float(a), float(b)) for n, a, b in (line.split() for line in lines)]


def freeze_round(
    server: PostgresServer, test: Callable[[str, Path], None]
) -> tuple[Counter[str], str | None]:
    url = server.create_database()
    out = Path(tempfile.mkdtemp(prefix="regisseur-faults-"))
    error = None
    try:
        test(url, out)
    except AssertionError as exc:
        error = str(exc).splitlines()[0]
    counts = noop_counts(url, out)
    server.drop_database(url)
    return counts, error


def outage_round(
    server: PostgresServer, run: Callable[..., dict[str, Any]], **options: Any
) -> tuple[Counter[str], str | None]:
    out = Path(tempfile.mkdtemp(prefix="regisseur-faults-"))
    try:
        counts = run(server, out, **options)
    except AssertionError as exc:
        return Counter(), str(exc).splitlines()[0]
    return Counter({k: v for k, v in counts.items() if k in FIELDS}), None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--downloads", type=int, default=200, help="no-op downloads per outage")
    parser.add_argument("--files", type=int, default=12, help="HTTP downloads per outage")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args()
    scenarios: dict[str, Callable[[PostgresServer], tuple[Counter[str], str | None]]] = {
        "freeze-body": lambda s: freeze_round(
            s, fencing.test_a_node_frozen_during_the_body_publishes_nothing_once_woken
        ),
        "freeze-publish": lambda s: freeze_round(
            s, fencing.test_a_node_frozen_between_the_body_and_the_publish_publishes_nothing
        ),
        "reaped-reclaim": lambda s: freeze_round(
            s, fencing.test_a_reaped_node_claims_its_download_again_while_the_old_run_ends
        ),
        "outage-noop": lambda s: outage_round(
            s, outage.noop_outage, total=args.downloads, kill=True
        ),
        "outage-http": lambda s: outage_round(s, outage.http_outage, files=args.files),
    }
    wanted = [n for n in args.only.split(",") if n] or list(scenarios)
    totals: dict[str, Counter[str]] = {name: Counter() for name in wanted}
    failures: dict[str, list[str]] = {name: [] for name in wanted}
    started = time.monotonic()
    with PostgresServer() as server:
        for round_ in range(args.rounds):
            for name in wanted:
                counts, error = scenarios[name](server)
                counts["rounds"] = 1
                if error is not None:
                    counts["failed"] = 1
                    failures[name].append(error)
                totals[name] += counts
                print(f"round {round_ + 1} {name}: {dict(counts)}", flush=True)
    for name in wanted:
        print(f"\n{name}: " + ", ".join(f"{f}={totals[name][f]}" for f in FIELDS))
    for name, errors in failures.items():
        for error in errors:
            print(f"failed {name}: {error}")
    print(f"\n{time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
