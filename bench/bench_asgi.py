"""An asking FastAPI endpoint against the same endpoint without actors.

Run: ``python bench/bench_asgi.py [--requests N] [--concurrency C] [--rounds R]``

Four endpoints of one FastAPI app count visits per name and answer
``{"name": ..., "visits": ...}``; only where the count lives differs:

- ``plain``: in a dict of the endpoint's own (no actors): the baseline;
- ``yield``: the same after ``await asyncio.sleep(0)``: what any endpoint
  that awaits something pays for one suspension, for reference;
- ``ask_async``: in a regisseur actor, ``await system.ask_async(...)``;
- ``to_thread``: in the same actor, ``await asyncio.to_thread(system.ask, ...)``
  (what users wrote before ``ask_async``).

The app is driven in-process (no server, no socket: uvicorn is not a
dependency): ``C`` concurrent clients call the ASGI app directly until ``N``
requests are answered. With HTTP parsing and a socket left out, the
endpoint's own cost is a larger share of each request than behind a real
server, so the ratio here is a lower bound. Rounds interleave the four
(in a rotating order); the report gives per endpoint the median
requests/s and p99 latency with their spread (min-max over rounds), and the
ratio to ``plain`` per round (median, min-max), and the CPU time per
request of the whole process (loop and actor threads).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from fastapi import FastAPI

from regisseur.actors import Actor, ActorSystem
from regisseur.supervision import ChildSpec

MODES = ("plain", "yield", "ask_async", "to_thread")


class Counter(Actor):
    def on_start(self) -> None:
        self.counts: dict[str, int] = {}

    def on_receive(self, message: Any) -> Any:
        self.counts[message] = self.counts.get(message, 0) + 1
        return self.counts[message]


def make_app(system: ActorSystem) -> FastAPI:
    app = FastAPI()
    counts: dict[str, int] = {}

    @app.get("/plain/{name}")
    async def plain(name: str) -> dict[str, Any]:
        counts[name] = counts.get(name, 0) + 1
        return {"name": name, "visits": counts[name]}

    @app.get("/yield/{name}")
    async def one_turn(name: str) -> dict[str, Any]:
        await asyncio.sleep(0)  # one turn of the loop, as any awaited I/O costs
        counts[name] = counts.get(name, 0) + 1
        return {"name": name, "visits": counts[name]}

    @app.get("/ask_async/{name}")
    async def ask_async(name: str) -> dict[str, Any]:
        return {"name": name, "visits": await system.ask_async("counter", name)}

    @app.get("/to_thread/{name}")
    async def to_thread(name: str) -> dict[str, Any]:
        return {"name": name, "visits": await asyncio.to_thread(system.ask, "counter", name)}

    return app


async def call(app: FastAPI, path: str) -> int:
    """One GET through the ASGI interface; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def load(
    app: FastAPI, mode: str, requests: int, concurrency: int
) -> tuple[float, float, float]:
    """Requests/s, p99 latency and CPU seconds per request (all threads) for ``requests`` GETs."""
    latencies: list[float] = []
    left = [requests]

    async def client(number: int) -> None:
        path = f"/{mode}/user{number % 8}"
        while left[0] > 0:
            left[0] -= 1
            began = time.perf_counter()
            status = await call(app, path)
            latencies.append(time.perf_counter() - began)
            assert status == 200, status

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    latencies.sort()
    return requests / elapsed, latencies[int(len(latencies) * 0.99) - 1], cpu / requests


async def bench(requests: int, concurrency: int, rounds: int) -> None:
    system = ActorSystem([ChildSpec("counter", Counter)], database_url=None)
    async with system:
        app = make_app(system)
        for mode in MODES:  # warm-up: imports, routes, the thread pool
            await load(app, mode, min(requests, 500), concurrency)
        rates: dict[str, list[float]] = {m: [] for m in MODES}
        p99s: dict[str, list[float]] = {m: [] for m in MODES}
        cpus: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(rounds):
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            for mode in order:
                rate, p99, cpu = await load(app, mode, requests, concurrency)
                rates[mode].append(rate)
                p99s[mode].append(p99)
                cpus[mode].append(cpu)
    print(
        f"{requests} requests per round, {concurrency} concurrent clients, {rounds} rounds, "
        "in-process ASGI (no server)"
    )
    print(
        f"{'endpoint':<11}{'req/s median (min-max)':>28}{'p99 ms median (min-max)':>28}"
        f"{'vs plain median (min-max)':>30}{'CPU us/req':>12}"
    )
    for mode in MODES:
        ratios = [a / b for a, b in zip(rates[mode], rates["plain"], strict=True)]
        print(
            f"{mode:<11}"
            f"{statistics.median(rates[mode]):>10,.0f} "
            f"({min(rates[mode]):,.0f}-{max(rates[mode]):,.0f})"
            f"{statistics.median(p99s[mode]) * 1e3:>13.2f} "
            f"({min(p99s[mode]) * 1e3:.2f}-{max(p99s[mode]) * 1e3:.2f})"
            f"{statistics.median(ratios):>15.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            f"{statistics.median(cpus[mode]) * 1e6:>12.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(bench(args.requests, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
