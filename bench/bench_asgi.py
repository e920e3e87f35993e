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

By default the app is driven in-process (no server, no socket): ``C``
concurrent clients call the ASGI app directly until ``N`` requests are
answered. With HTTP parsing and a socket left out, the endpoint's own cost
is a larger share of each request than behind a real server, so the ratio
is a lower bound. ``--server`` serves the app with uvicorn (a dev extra) in
a child process on 127.0.0.1 and loads it from this process over ``C``
keep-alive connections; CPU is then the server process's. Rounds interleave the four
(in a rotating order); the report gives per endpoint the median
requests/s and p99 latency with their spread (min-max over rounds), and the
ratio to ``plain`` per round (median, min-max), and the CPU time per
request of the whole process (loop and actor threads).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from regisseur.actors import Actor, ActorSystem
from regisseur.supervision import ChildSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

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


async def load_in_process(
    app: FastAPI, mode: str, requests: int, concurrency: int
) -> tuple[float, float, float]:
    """Requests/s, p99 latency and CPU seconds per request (all threads) for ``requests`` GETs."""

    async def one(path: str) -> int:
        return await call(app, path)

    began_cpu = time.process_time()
    rate, p99 = await _clients(one, mode, requests, concurrency)
    return rate, p99, (time.process_time() - began_cpu) / requests


async def _clients(
    get: Callable[[str], Awaitable[int]], mode: str, requests: int, concurrency: int
) -> tuple[float, float]:
    latencies: list[float] = []
    left = [requests]

    async def client(number: int) -> None:
        path = f"/{mode}/user{number % 8}"
        while left[0] > 0:
            left[0] -= 1
            began = time.perf_counter()
            status = await get(path)
            latencies.append(time.perf_counter() - began)
            assert status == 200, status

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return requests / elapsed, latencies[int(len(latencies) * 0.99) - 1]


# -- behind uvicorn (--server) --------------------------------------------------------
def server_app() -> FastAPI:
    """The app for ``uvicorn --factory``: its lifespan starts and stops a system."""
    system = ActorSystem([ChildSpec("counter", Counter)], database_url=None)
    app = make_app(system)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with system:
            yield

    app.router.lifespan_context = lifespan
    return app


class Server:
    """uvicorn serving ``server_app`` in a child process on 127.0.0.1."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "--factory", "bench_asgi:server_app"),
                *("--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1"),
                *("--port", str(self.port), "--no-access-log", "--log-level", "warning"),
            ]
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.05)  # waiting for another process to listen, bounded

    def cpu(self) -> float:
        """CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def load(self, mode: str, requests: int, concurrency: int) -> tuple[float, float, float]:
        """As ``load_in_process``, over keep-alive HTTP/1.1 connections; CPU is the server's."""
        connections = [
            await asyncio.open_connection("127.0.0.1", self.port) for _ in range(concurrency)
        ]
        free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for connection in connections:
            free.put_nowait(connection)

        async def get(path: str) -> int:
            reader, writer = await free.get()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            free.put_nowait((reader, writer))
            return int(head.split(b" ", 2)[1])

        began_cpu = self.cpu()
        rate, p99 = await _clients(get, mode, requests, concurrency)
        cpu = (self.cpu() - began_cpu) / requests
        for _, writer in connections:
            writer.close()
        return rate, p99, cpu

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


# -- the report ----------------------------------------------------------------------
async def bench(requests: int, concurrency: int, rounds: int, server: bool) -> None:
    if server:
        running = Server()
        try:
            results = await _rounds(running.load, requests, concurrency, rounds)
        finally:
            running.stop()
        how = "uvicorn (h11, asyncio loop) in its own process, keep-alive client in this one"
    else:
        system = ActorSystem([ChildSpec("counter", Counter)], database_url=None)
        async with system:
            app = make_app(system)
            results = await _rounds(
                lambda *a: load_in_process(app, *a), requests, concurrency, rounds
            )
        how = "in-process ASGI (no server)"
    report(
        results,
        f"{requests} requests per round, {concurrency} concurrent clients, {rounds} rounds, {how}",
    )


async def _rounds(
    load: Callable[[str, int, int], Awaitable[tuple[float, float, float]]],
    requests: int,
    concurrency: int,
    rounds: int,
) -> dict[str, list[tuple[float, float, float]]]:
    for mode in MODES:  # warm-up: imports, routes, the thread pool
        await load(mode, min(requests, 500), concurrency)
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
            results[mode].append(await load(mode, requests, concurrency))
    return results


def report(results: dict[str, list[tuple[float, float, float]]], title: str) -> None:
    print(title)
    print(
        f"{'endpoint':<11}{'req/s median (min-max)':>28}{'p99 ms median (min-max)':>28}"
        f"{'vs plain median (min-max)':>30}{'CPU us/req':>12}"
    )
    plain = [rate for rate, _, _ in results["plain"]]
    for mode in MODES:
        rates = [rate for rate, _, _ in results[mode]]
        p99s = [p99 * 1e3 for _, p99, _ in results[mode]]
        cpus = [cpu * 1e6 for _, _, cpu in results[mode]]
        ratios = [a / b for a, b in zip(rates, plain, strict=True)]
        print(
            f"{mode:<11}"
            f"{statistics.median(rates):>10,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
            f"{statistics.median(p99s):>13.2f} ({min(p99s):.2f}-{max(p99s):.2f})"
            f"{statistics.median(ratios):>15.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            f"{statistics.median(cpus):>12.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--server", action="store_true", help="behind uvicorn (pip install uvicorn) over loopback"
    )
    args = parser.parse_args()
    asyncio.run(bench(args.requests, args.concurrency, args.rounds, args.server))


if __name__ == "__main__":
    main()
