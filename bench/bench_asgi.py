"""An asking FastAPI endpoint against the same endpoint without actors.

Run: ``python bench/bench_asgi.py [--requests N] [--concurrency C] [--rounds R]
[--slices S] [--server]``

Four endpoints of one FastAPI app count visits per name and answer
``{"name": ..., "visits": ...}``; only where the count lives differs:

- ``plain``: in a dict of the endpoint's own (no actors): the baseline;
- ``yield``: the same after ``await asyncio.sleep(0)``: what any endpoint
  that awaits something pays for one suspension, for reference;
- ``ask_async``: in a regisseur actor, ``await system.ask_async(...)``;
- ``to_thread``: in the same actor, ``await asyncio.to_thread(system.ask, ...)``
  (what users wrote before ``ask_async``).

By default the app is driven in-process (no server, no socket): ``C``
concurrent clients call the ASGI app directly. With HTTP parsing and a
socket left out, the endpoint's own cost is a larger share of each request
than behind a real server, so the ratio is a lower bound. ``--server``
serves the app with uvicorn (a dev extra) in a child process on 127.0.0.1
and loads it from this process over ``C`` keep-alive connections (opened
once); CPU is then the server process's.

How a noisy, shared machine is kept out of the ratio: after a warm-up of
every endpoint, each round runs ``--slices`` short slices of every
endpoint, in the order A B C D, then D C B A, and so on (so a change of
the machine's load during the round falls on all endpoints alike), and
pools per endpoint the requests, the time and the latencies of its slices.
Per round and endpoint that gives requests/s, p99 latency and CPU per
request; the ratio to ``plain`` is taken per round, then the report gives
the median and min-max over rounds of each, and the machine's load
average before and after.
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


Slice = tuple[float, list[float], float]  # seconds, latencies (s), CPU seconds


async def load_in_process(app: FastAPI, mode: str, requests: int, concurrency: int) -> Slice:
    """``requests`` GETs by ``concurrency`` clients; CPU of the whole process (all threads)."""

    async def one(path: str) -> int:
        return await call(app, path)

    began_cpu = time.process_time()
    elapsed, latencies = await _clients(one, mode, requests, concurrency)
    return elapsed, latencies, time.process_time() - began_cpu


async def _clients(
    get: Callable[[str], Awaitable[int]], mode: str, requests: int, concurrency: int
) -> tuple[float, list[float]]:
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
    return time.perf_counter() - began, latencies


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
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None

    def cpu(self) -> float:
        """CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def load(self, mode: str, requests: int, concurrency: int) -> Slice:
        """As ``load_in_process``, over keep-alive HTTP/1.1 connections; CPU is the server's."""
        if self.free is None:  # opened once: a slice measures requests, not connects
            self.free = asyncio.Queue()
            for _ in range(concurrency):
                self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        free = self.free

        async def get(path: str) -> int:
            reader, writer = await free.get()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            free.put_nowait((reader, writer))
            return int(head.split(b" ", 2)[1])

        began_cpu = self.cpu()
        elapsed, latencies = await _clients(get, mode, requests, concurrency)
        return elapsed, latencies, self.cpu() - began_cpu

    def stop(self) -> None:
        while self.free is not None and not self.free.empty():
            self.free.get_nowait()[1].close()
        self.process.terminate()
        self.process.wait(30)


# -- the report ----------------------------------------------------------------------
async def bench(requests: int, concurrency: int, rounds: int, slices: int, server: bool) -> None:
    load_before = os.getloadavg()
    if server:
        running = Server()
        try:
            results = await _rounds(running.load, requests, concurrency, rounds, slices)
        finally:
            running.stop()
        how = "uvicorn (h11, asyncio loop) in its own process, keep-alive client in this one"
    else:
        system = ActorSystem([ChildSpec("counter", Counter)], database_url=None)
        async with system:
            app = make_app(system)
            results = await _rounds(
                lambda *a: load_in_process(app, *a), requests, concurrency, rounds, slices
            )
        how = "in-process ASGI (no server)"
    load = " ".join(f"{x:.1f}" for x in (*load_before, *os.getloadavg()))
    report(
        results,
        f"{requests} requests per endpoint and round in {slices} interleaved slices, "
        f"{concurrency} concurrent clients, {rounds} rounds, {how}; "
        f"load average before and after (1, 5, 15 min): {load}",
    )


Round = tuple[float, float, float]  # requests/s, p99 latency (s), CPU seconds per request


async def _rounds(
    load: Callable[[str, int, int], Awaitable[Slice]],
    requests: int,
    concurrency: int,
    rounds: int,
    slices: int,
) -> dict[str, list[Round]]:
    """Per endpoint, one ``Round`` per round, pooled over its slices."""
    per_slice = max(concurrency, requests // slices)
    for mode in MODES:  # warm-up: imports, routes, the thread pool, connections
        await load(mode, max(per_slice, 500), concurrency)
    results: dict[str, list[Round]] = {m: [] for m in MODES}
    for _ in range(rounds):
        pooled: dict[str, Slice] = {m: (0.0, [], 0.0) for m in MODES}
        for number in range(slices):
            for mode in MODES if number % 2 == 0 else MODES[::-1]:
                elapsed, latencies, cpu = await load(mode, per_slice, concurrency)
                total, all_latencies, all_cpu = pooled[mode]
                pooled[mode] = (total + elapsed, all_latencies + latencies, all_cpu + cpu)
        for mode, (elapsed, latencies, cpu) in pooled.items():
            latencies.sort()
            p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
            results[mode].append((len(latencies) / elapsed, p99, cpu / len(latencies)))
    return results


def _spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(results: dict[str, list[Round]], title: str) -> None:
    print(title)
    print("per round: median (min-max) over rounds; ratios are taken per round against plain")
    print(
        f"{'endpoint':<10}{'req/s':>24}{'p99 ms':>26}{'CPU us/req':>20}"
        f"{'req/s vs plain':>24}{'CPU plain/this':>24}"
    )
    plain = results["plain"]
    for mode in MODES:
        rounds = results[mode]
        rates = [rate for rate, _, _ in rounds]
        p99s = [p99 * 1e3 for _, p99, _ in rounds]
        cpus = [cpu * 1e6 for _, _, cpu in rounds]
        ratios = [a[0] / b[0] for a, b in zip(rounds, plain, strict=True)]
        cpu_ratios = [b[2] / a[2] for a, b in zip(rounds, plain, strict=True)]
        print(
            f"{mode:<10}{_spread(rates, ',.0f'):>24}{_spread(p99s, '.2f'):>26}"
            f"{_spread(cpus, '.0f'):>20}{_spread(ratios, '.2f'):>24}"
            f"{_spread(cpu_ratios, '.2f'):>24}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--slices", type=int, default=10, help="interleaved slices per endpoint and round"
    )
    parser.add_argument(
        "--server", action="store_true", help="behind uvicorn (pip install uvicorn) over loopback"
    )
    args = parser.parse_args()
    asyncio.run(bench(args.requests, args.concurrency, args.rounds, args.slices, args.server))


if __name__ == "__main__":
    main()
