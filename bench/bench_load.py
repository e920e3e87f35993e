"""Load and soak: memory per queued download, threads, and 1,000 ticking servers.

Run: ``python bench/bench_load.py [--downloads N] [--servers N] [--seconds S]``

1. ``--downloads`` (10,000) no-op downloads queued over 10 sources
   (concurrency 2 each) whose workers are held until everything is queued:
   the process's memory (``tracemalloc``: bytes allocated by Python, and
   the resident set size) before and after, as bytes per queued record; the
   thread count against the sum of concurrencies. Then they are released
   and the time until every record is terminal is reported, and the
   memory once they are all terminal and only ``history`` stay in memory.
2. ``--servers`` (1,000) ``ServerActor``s ticking every second on the real
   clock for ``--seconds`` (60): tick lateness (how long after its due time
   each run started: median, p99, max) and the CPU time of the timer thread
   and of the whole process.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import threading
import time
import tracemalloc
from typing import Any

from regisseur.actors import ActorSystem, ServerActor
from regisseur.actors.downloads import DownloadSettings, DownloadSource
from regisseur.messages import DownloadStateChanged
from regisseur.supervision import ChildSpec

SOURCES = 10
CONCURRENCY = 2


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def thread_cpu(name_prefix: str) -> float:
    """CPU seconds of the threads whose name starts with ``name_prefix`` (Linux)."""
    wanted = {t.native_id for t in threading.enumerate() if t.name.startswith(name_prefix)}
    total = 0.0
    for tid in wanted:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = os.sysconf("SC_CLK_TCK")
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def queued_downloads(n: int) -> None:
    gate = threading.Event()

    def held(download_id: str, target_id: str, name: str) -> str:
        gate.wait(600)
        return f"/dev/null/{name}"

    sources = [DownloadSource(f"s{i}", held, concurrency=CONCURRENCY) for i in range(SOURCES)]
    done = threading.Event()
    ended = 0

    def count(event: object) -> None:
        nonlocal ended
        if isinstance(event, DownloadStateChanged) and event.record.terminal:
            ended += 1
            if ended == n:
                done.set()

    with ActorSystem(
        database_url=None, download_sources=sources, downloads=DownloadSettings(history=1000)
    ) as system:
        system.events.subscribe(count, DownloadStateChanged)
        threads_before = threading.active_count()
        gc.collect()
        tracemalloc.start()
        python_before = tracemalloc.get_traced_memory()[0]
        rss_before = rss()
        for i in range(n):
            system.downloads.submit(f"s{i % SOURCES}", f"target-{i}", f"file-{i}.bin")
        system.downloads.status(f"{'0' * 32}")  # answered after every submit is handled
        gc.collect()
        python_after = tracemalloc.get_traced_memory()[0]
        rss_after = rss()
        threads_after = threading.active_count()
        started = time.perf_counter()
        gate.set()
        if not done.wait(600):
            msg = f"only {ended} of {n} downloads ended"
            raise RuntimeError(msg)
        drained = time.perf_counter() - started
        gc.collect()
        python_end = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        health = system.health().find("download-keeper")
        in_memory = health.details.get("in_memory") if health and health.details else None
    per_record = (python_after - python_before) / n
    print(f"{n:,} downloads queued over {SOURCES} sources x concurrency {CONCURRENCY}")
    print(
        f"  Python memory while queued: +{(python_after - python_before) / 1e6:.1f} MB "
        f"= {per_record:,.0f} bytes per queued download (record, messages, queue entry)"
    )
    print(f"  resident set while queued: +{(rss_after - rss_before) / 1e6:.1f} MB")
    print(
        f"  threads: {threads_before} before, {threads_after} with everything queued "
        f"(sum of concurrencies {SOURCES * CONCURRENCY}; none per download)"
    )
    print(f"  all terminal after {drained:.2f} s ({n / drained:,.0f}/s)")
    print(
        f"  Python memory once all terminal: +{(python_end - python_before) / 1e6:.1f} MB; "
        f"records in the keeper's memory: {in_memory} (history 1000)"
    )


class Ticker(ServerActor):
    def __init__(self, server_id: int, lateness: list[float], due: dict[int, float]) -> None:
        super().__init__(server_id, interval=1.0)
        self.lateness = lateness
        self.due = due

    def run_loop(self) -> None:
        now = time.monotonic()
        expected = self.due.get(self.server_id)
        if expected is not None:
            self.lateness.append(now - expected)
        self.due[self.server_id] = now + 1.0


def ticking_servers(n: int, seconds: float) -> None:
    lateness: list[float] = []
    due: dict[int, float] = {}
    specs: list[Any] = [ChildSpec(f"server-{i}", Ticker, args=(i, lateness, due)) for i in range(n)]
    with ActorSystem(specs, database_url=None, name="soak"):
        lateness.clear()
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        timer_start = thread_cpu("regisseur:soak/timers")
        started = time.monotonic()
        threading.Event().wait(seconds)
        elapsed = time.monotonic() - started
        timer_cpu = thread_cpu("regisseur:soak/timers") - timer_start
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        threads = threading.active_count()
        samples = sorted(lateness)
    process_cpu = (cpu_end.ru_utime + cpu_end.ru_stime) - (cpu_start.ru_utime + cpu_start.ru_stime)
    print(f"{n:,} server actors ticking every 1 s for {elapsed:.0f} s ({threads} threads)")
    if samples:
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(
            f"  ticks: {len(samples):,}; lateness median "
            f"{statistics.median(samples) * 1e3:.2f} ms, "
            f"p99 {p99 * 1e3:.2f} ms, max {samples[-1] * 1e3:.1f} ms"
        )
    print(
        f"  CPU: timer thread {timer_cpu:.2f} s ({100 * timer_cpu / elapsed:.1f}% of one core), "
        f"whole process {process_cpu:.2f} s ({100 * process_cpu / elapsed:.1f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downloads", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    queued_downloads(args.downloads)
    print()
    ticking_servers(args.servers, args.seconds)


if __name__ == "__main__":
    main()
