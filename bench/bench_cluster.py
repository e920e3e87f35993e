"""Cluster mode: no-op downloads over 1, 2 and 4 node processes on one PostgreSQL.

Run: ``python bench/bench_cluster.py [--downloads N] [--rounds R] [--nodes 1,2,4]``

Needs PostgreSQL binaries (or ``REGISSEUR_PG_URL``); a throwaway server is
started on loopback (tests/cluster/pg.py).

Two measurements:

* Claim overhead, side by side in this process, interleaved round by
  round: N no-op downloads (4 sources x concurrency 4) on one system with
  PostgreSQL as a single node (the keeper owns the records, no claims)
  and the same system in cluster mode (every download stored free,
  claimed with FOR UPDATE SKIP LOCKED, every write conditional, every
  change announced). Reported: median seconds and the extra time per
  download of cluster mode.
* Scaling: K node processes (each 4 sources x concurrency 4) and this
  process as a client node with no sources; the client submits N
  downloads and the clock stops when it has seen every one end (through
  the cross-node events). Reported: median downloads per second per K.

The machine has 2 cores: more node processes than cores share them, so
the scaling figure says what coordination costs, not what more machines
would give.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.actors.downloads import DownloadSource
from regisseur.messages import DownloadStateChanged

SOURCES = 4
CONCURRENCY = 4


def noop(download_id: str, target_id: str, display_name: str) -> str:
    return f"/dev/null/{display_name}"


def sources() -> list[DownloadSource]:
    return [DownloadSource(f"s{i}", noop, concurrency=CONCURRENCY) for i in range(SOURCES)]


def drain(system: ActorSystem, n: int, timeout: float = 300.0) -> float:
    """Submit ``n`` downloads through ``system``; seconds until all have ended."""
    ended = threading.Event()
    count = [0]

    def on_change(event: object) -> None:
        if isinstance(event, DownloadStateChanged) and event.record.terminal:
            count[0] += 1
            if count[0] >= n:
                ended.set()

    with system.events.subscribe(on_change, DownloadStateChanged):
        start = time.perf_counter()
        for i in range(n):
            system.downloads.submit(f"s{i % SOURCES}", f"t{i}", f"f{i}")
        if not ended.wait(timeout):
            msg = f"only {count[0]} of {n} downloads ended within {timeout:g}s"
            raise TimeoutError(msg)
        return time.perf_counter() - start


def run_in_process(url: str, n: int, *, cluster: bool) -> float:
    options: dict[str, object] = {}
    if cluster:
        options["cluster"] = ClusterSettings("bench-single", lease_ttl=10.0)
    system = ActorSystem(
        database_url=url, download_sources=sources(), name="bench", **options
    ).start()
    try:
        return drain(system, n)
    finally:
        system.stop()


def node_main(url: str, node_id: str) -> None:
    """A node process: serve the sources until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    system = ActorSystem(
        database_url=url,
        download_sources=sources(),
        cluster=ClusterSettings(node_id, lease_ttl=10.0),
        name=node_id,
    ).start()
    print("READY", flush=True)
    stop.wait()
    system.stop()


def run_nodes(pg: object, k: int, n: int) -> float:
    url = pg.create_database()  # type: ignore[attr-defined]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--node", f"node{j}", "--url", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for j in range(k)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "READY":
                msg = f"a node process did not start (exit {proc.poll()})"
                raise RuntimeError(msg)
        client = ActorSystem(
            database_url=url, cluster=ClusterSettings("client", lease_ttl=10.0), name="client"
        ).start()
        try:
            return drain(client, n)
        finally:
            client.stop()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        pg.drop_database(url)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--downloads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", default="1,2,4")
    parser.add_argument("--node", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node:
        node_main(args.url, args.node)
        return

    from tests.cluster.pg import postgres_server

    n = args.downloads
    with postgres_server() as pg:
        single: list[float] = []
        clustered: list[float] = []
        for _ in range(args.rounds):
            for target, cluster in ((single, False), (clustered, True)):
                url = pg.create_database()
                try:
                    target.append(run_in_process(url, n, cluster=cluster))
                finally:
                    pg.drop_database(url)
        s, c = statistics.median(single), statistics.median(clustered)
        print(f"{n} no-op downloads, {SOURCES} sources x {CONCURRENCY}, one process, medians:")
        print(f"  single node (PostgreSQL)   {s:7.3f} s  {n / s:8.0f}/s")
        print(f"  cluster mode, one node     {c:7.3f} s  {n / c:8.0f}/s")
        print(f"  claim overhead per download: {(c - s) / n * 1e6:.0f} us ({c / s:.2f}x the time)")
        print(f"scaling: node processes + a client node, medians of {args.rounds}:")
        base = None
        for k in [int(x) for x in args.nodes.split(",")]:
            times = [run_nodes(pg, k, n) for _ in range(args.rounds)]
            rate = n / statistics.median(times)
            base = base or rate
            print(f"  {k} node(s): {rate:8.0f} downloads/s  ({rate / base:.2f}x one node)")


if __name__ == "__main__":
    main()
