"""No-op downloads: regisseur's sources against the legacy dispatchers.

Run: ``python bench/bench_downloads.py [--downloads N] [--rounds R] [--only NAME,...]``

N no-op downloads over 4 sources with concurrency 4, timed from the first
submit until every record is terminal. Side by side in the same process,
interleaved round by round:

* ``threads``: the legacy pattern, a thread per download with a semaphore
  per source and the records in a dict under a lock;
* ``pool``: a ``ThreadPoolExecutor`` (4 workers) per source;
* ``regisseur``: ``system.downloads`` without a database (records in the
  keeper's memory, as the legacy dict was);
* ``regisseur+sqlite``: the same, every transition written to SQLite.

Reported: median seconds per round with the spread (min-max), the cost per
download, and the ratio of each to ``threads`` and to ``pool`` (above 1 is
faster).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import DownloadSource
from regisseur.messages import DownloadStateChanged

SOURCES = 4
CONCURRENCY = 4


def noop(download_id: str, target_id: str, display_name: str) -> str:
    return f"/dev/null/{display_name}"


def run_threads(n: int) -> float:
    """Thread per download, a semaphore per source, records under a lock."""
    semaphores = [threading.Semaphore(CONCURRENCY) for _ in range(SOURCES)]
    records: dict[int, str] = {}
    lock = threading.Lock()

    def download(i: int) -> None:
        with lock:
            records[i] = "Initializing"
        with semaphores[i % SOURCES]:
            with lock:
                records[i] = "InProgress, Downloading"
            noop(str(i), "t", f"f{i}")
            with lock:
                if records[i] != "Cancelled":
                    records[i] = "Completed, Succeeded"

    start = time.perf_counter()
    threads = [threading.Thread(target=download, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def run_pool(n: int) -> float:
    """A ThreadPoolExecutor per source."""
    pools = [ThreadPoolExecutor(max_workers=CONCURRENCY) for _ in range(SOURCES)]
    records: dict[int, str] = {}
    lock = threading.Lock()

    def download(i: int) -> None:
        with lock:
            records[i] = "InProgress, Downloading"
        noop(str(i), "t", f"f{i}")
        with lock:
            records[i] = "Completed, Succeeded"

    start = time.perf_counter()
    futures = []
    for i in range(n):
        with lock:
            records[i] = "Initializing"
        futures.append(pools[i % SOURCES].submit(download, i))
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - start
    for pool in pools:
        pool.shutdown()
    return elapsed


def run_regisseur(n: int, database_url: str | None) -> float:
    sources = [DownloadSource(f"s{i}", noop, concurrency=CONCURRENCY) for i in range(SOURCES)]
    with ActorSystem(database_url=database_url, download_sources=sources) as system:
        done = threading.Event()
        ended = 0

        def count(event: object) -> None:
            nonlocal ended
            if isinstance(event, DownloadStateChanged) and event.record.terminal:
                ended += 1  # the bus calls back on one thread
                if ended == n:
                    done.set()

        system.events.subscribe(count, DownloadStateChanged)
        start = time.perf_counter()
        for i in range(n):
            system.downloads.submit(f"s{i % SOURCES}", "t", f"f{i}")
        if not done.wait(120):
            msg = f"only {ended} of {n} downloads ended"
            raise RuntimeError(msg)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downloads", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated dispatchers to run")
    args = parser.parse_args()
    n = args.downloads
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "threads": lambda: run_threads(n),
            "pool": lambda: run_pool(n),
            "regisseur": lambda: run_regisseur(n, None),
            "regisseur+sqlite": lambda: run_regisseur(
                n, f"sqlite:///{Path(tmp) / f'bench-{time.monotonic_ns()}.db'}"
            ),
        }
        if args.only:
            wanted = set(args.only.split(",")) | {"threads", "pool"}
            runs = {name: run for name, run in runs.items() if name in wanted}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                times[name].append(run())
    threads = statistics.median(times["threads"])
    pool = statistics.median(times["pool"])
    print(
        f"{n} no-op downloads, {SOURCES} sources x concurrency {CONCURRENCY}, {args.rounds} rounds"
    )
    print(
        f"{'dispatcher':<18}{'median s':>10}{'min-max s':>14}{'us/download':>13}"
        f"{'vs threads':>12}{'vs pool':>9}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        spread = f"{min(values):.3f}-{max(values):.3f}"
        print(
            f"{name:<18}{median:>10.3f}{spread:>14}{median / n * 1e6:>13.1f}"
            f"{threads / median:>11.2f}x{pool / median:>8.2f}x"
        )


if __name__ == "__main__":
    main()
