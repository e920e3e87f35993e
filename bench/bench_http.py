"""HttpSource throughput through the system against plain ``requests``.

Run: ``python bench/bench_http.py [--quick] [--downloads N] [--mib M] [--rounds R]
[--fsync] [--no-splice] [--tls] [--database-url scratch|none|URL]``

``--no-splice`` makes the HttpSource copy every body through user space, as
it does for HTTPS, chunked or checksummed downloads (plain-HTTP bodies of
1 MiB or more are otherwise moved with ``splice(2)``). ``--tls`` serves over
HTTPS with a throwaway self-signed certificate (all sides verify it).

A local HTTP/1.1 server in a process of its own (as a real server would be:
it must not share this process's GIL with the clients; keep-alive, the body
served from memory in large writes) offers N files of M MiB. Each round
downloads all of them once per side, at concurrency 4 each time, in an
order that rotates per round:

* ``regisseur``: ``system.downloads.submit`` to an ``HttpSource`` of an
  ``ActorSystem`` (real clock, SQLite records), then ``wait`` for each;
  that is streaming to ``.part`` files, progress reports, length checks and
  the atomic move into place; with ``fsync=False`` (and, with ``--fsync``,
  once more with the default ``fsync=True``: each file flushed to disk
  before it counts);
* ``impl``: the same ``HttpSource`` impl driven by 4 plain threads with
  hand-built contexts (no actors, no records), to tell the impl's own cost
  from the system's;
* ``requests``: 4 threads, one ``requests.Session`` each, streaming
  ``iter_content`` in chunks of the same size into plain files (with
  ``--fsync``, once more with an ``os.fsync`` per file).

All sides run in this process against the same server, one after the
other, so the machine's noise hits each of them; the ratios are taken per
round (neighbours in time) and their median is reported, with the client
process's CPU seconds and thread switches per download for each side (a
voluntary switch is a thread that blocked: on a socket with no data yet, or
waiting for the GIL another thread holds; the system's hand-offs show
there, see bench/RESULTS.md). Ratios to requests, like for like:
regisseur without fsync (the library's overhead; target >= 1.0 for the
copy path, ``--tls`` and ``--no-splice``: HTTPS and checksummed downloads), impl
without fsync, and regisseur with fsync against requests with fsync
(durable downloads next to durable plain code).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import multiprocessing
import os
import queue
import random
import resource
import shutil
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import requests

from regisseur.actors import ActorSystem
from regisseur.actors.clock import RealClock, Timers
from regisseur.actors.downloads import CancelToken, DownloadContext, HttpSource, _splice
from regisseur.actors.log import get_logger
from regisseur.messages import DownloadState, DownloadStateChanged

CONCURRENCY = 4
CHUNK = 256 * 1024
MIB = 1024 * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between writes
    server: _Server

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        view = memoryview(body)
        for start in range(0, len(body), 4 * MIB):
            self.wfile.write(view[start : start + 4 * MIB])

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        self.body = body
        super().__init__(("127.0.0.1", 0), _Handler)


def _body(mib: int) -> bytes:
    """The served file: ``mib`` MiB of seeded random bytes (no two blocks alike,
    so a lost, doubled or reordered block changes the hash)."""
    return random.Random(mib).randbytes(mib * MIB)


def _serve(mib: int, ports: multiprocessing.Queue[int], tls: tuple[str, str] | None) -> None:
    """The server process: serve ``mib`` MiB files until terminated (over TLS
    with ``tls = (cert, key)``)."""
    server = _Server(_body(mib))
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    ports.put(server.server_address[1])
    server.serve_forever()


def _certificate(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (needs the openssl command)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


class Usage(NamedTuple):
    """The client process's CPU seconds and thread switches (all its threads,
    ended ones included; not the server's process)."""

    cpu: float
    voluntary: int  # a thread blocked: a read with no data yet, a wait for the GIL or a lock
    involuntary: int  # a thread was preempted

    @classmethod
    def now(cls) -> Usage:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(usage.ru_utime + usage.ru_stime, usage.ru_nvcsw, usage.ru_nivcsw)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu - other.cpu,
            self.voluntary - other.voluntary,
            self.involuntary - other.involuntary,
        )


def run_regisseur(
    urls: list[str],
    directory: Path,
    database_url: str | None,
    *,
    fsync: bool,
    verify: bool | str = True,
) -> tuple[float, Usage]:
    """Seconds (and the client's usage) to download every URL through an ActorSystem's HttpSource.

    One subscription counts the terminal records (as an application would
    watch many downloads), instead of one ``wait()`` per download.
    """
    source = HttpSource(
        directory=directory, concurrency=CONCURRENCY, chunk_size=CHUNK, fsync=fsync, verify=verify
    )
    with ActorSystem(download_sources=[source], database_url=database_url) as system:
        ended: list[DownloadStateChanged] = []
        done = threading.Event()

        def watch(event: object) -> None:
            if isinstance(event, DownloadStateChanged) and event.record.terminal:
                ended.append(event)  # the bus calls back on one thread
                if len(ended) == len(urls):
                    done.set()

        system.downloads.subscribe(watch, progress=False)
        before = Usage.now()
        started = time.perf_counter()
        for url in urls:
            system.downloads.submit("http", url, url.rsplit("/", 1)[-1])
        if not done.wait(600):
            msg = f"only {len(ended)} of {len(urls)} downloads ended"
            raise RuntimeError(msg)
        seconds = time.perf_counter() - started
        used = Usage.now() - before
        failed = [e.record for e in ended if e.record.state is not DownloadState.SUCCEEDED]
        if failed:
            msg = f"download failed: {failed[0].error}"
            raise RuntimeError(msg)
        return seconds, used


def run_impl(urls: list[str], directory: Path, verify: bool | str = True) -> tuple[float, Usage]:
    """Seconds (and the client's usage) to download every URL with HttpSource.fetch in 4 threads."""
    source = HttpSource(
        directory=directory, concurrency=CONCURRENCY, chunk_size=CHUNK, fsync=False, verify=verify
    )
    timers = Timers(RealClock(), name="bench-timers")
    timers.start()
    work: queue.Queue[tuple[int, str]] = queue.Queue()
    for index, url in enumerate(urls):
        work.put((index, url))
    errors: list[BaseException] = []
    log = get_logger("bench")

    def worker() -> None:
        session = source.open_session()
        try:
            while True:
                try:
                    index, url = work.get_nowait()
                except queue.Empty:
                    return
                context = DownloadContext(
                    download_id=f"{index:032x}",
                    target_id=url,
                    display_name=url.rsplit("/", 1)[-1],
                    original_filename=None,
                    extra={},
                    destination=directory,
                    worker_state=session,
                    token=CancelToken(),
                    timers=timers,
                    send=lambda progress: None,
                    log=log,
                )
                source.fetch(context.download_id, url, context.display_name, context)
        except BaseException as exc:
            errors.append(exc)
        finally:
            source.close_session(session)

    before = Usage.now()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    used = Usage.now() - before
    timers.close()
    if errors:
        raise errors[0]
    return seconds, used


def run_requests(
    urls: list[str], directory: Path, *, fsync: bool, verify: bool | str = True
) -> tuple[float, Usage]:
    """Seconds (and the client's usage) to download every URL with plain requests in 4 threads."""
    work: queue.Queue[str] = queue.Queue()
    for url in urls:
        work.put(url)
    errors: list[BaseException] = []

    def worker() -> None:
        with requests.Session() as session:
            while True:
                try:
                    url = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    with session.get(url, stream=True, timeout=(10, 30), verify=verify) as response:
                        response.raise_for_status()
                        target = directory / url.rsplit("/", 1)[-1]
                        with target.open("wb") as file:
                            for chunk in response.iter_content(CHUNK):
                                file.write(chunk)
                            if fsync:
                                file.flush()
                                os.fsync(file.fileno())
                except BaseException as exc:
                    errors.append(exc)
                    return

    before = Usage.now()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    used = Usage.now() - before
    if errors:
        raise errors[0]
    return seconds, used


def check_files(directory: Path, count: int, size: int, digest: str) -> None:
    """Every file has the right size; a few (first, middle, last) the right bytes.

    Outside the timed part. Hashing a few catches a copy path that loses or
    reorders bytes without doubling the bench's length.
    """
    files = sorted(directory.iterdir())
    if len(files) != count or any(f.stat().st_size != size for f in files):
        msg = f"expected {count} files of {size} bytes in {directory}, found {len(files)}"
        raise RuntimeError(msg)
    for path in {files[0], files[len(files) // 2], files[-1]}:
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            msg = f"{path} does not hold the served bytes"
            raise RuntimeError(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 files of 2 MiB, 3 rounds")
    parser.add_argument("--downloads", type=int, default=None)
    parser.add_argument("--mib", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--fsync", action="store_true", help="also the two fsync sides")
    parser.add_argument(
        "--no-splice",
        action="store_true",
        help="copy every body through user space, as for HTTPS or checksummed downloads",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve over HTTPS (a self-signed certificate; needs the openssl command)",
    )
    parser.add_argument(
        "--database-url",
        default="scratch",
        help="the system's records: 'scratch' (SQLite file next to the downloads, "
        "the default), 'none', or an SQLAlchemy URL",
    )
    args = parser.parse_args()
    if args.no_splice:
        _splice.plain_socket = lambda reader: None
    count = args.downloads or (8 if args.quick else 32)
    mib = args.mib or (2 if args.quick else 20)
    rounds = args.rounds or (3 if args.quick else 11)

    # The server process is forked before this process starts any thread.
    certificates = tempfile.TemporaryDirectory(prefix="bench-http-tls-")
    tls = _certificate(Path(certificates.name)) if args.tls else None
    verify: bool | str = tls[0] if tls is not None else True
    context = multiprocessing.get_context("fork")
    ports: multiprocessing.Queue[int] = context.Queue()
    serving = context.Process(target=_serve, args=(mib, ports, tls), daemon=True)
    serving.start()
    port = ports.get(timeout=30)
    size = mib * MIB
    digest = hashlib.sha256(_body(mib)).hexdigest()
    scheme = "https" if tls is not None else "http"
    urls = [f"{scheme}://127.0.0.1:{port}/files/{index:03d}.bin" for index in range(count)]
    total_mib = count * size / MIB
    print(
        f"{count} downloads of {mib} MiB at concurrency {CONCURRENCY}, {rounds} rounds, "
        f"records: {args.database_url}{', no splice' if args.no_splice else ''}"
        f"{', over TLS' if tls is not None else ''}"
    )

    sides: tuple[str, ...] = ("regisseur", "impl", "requests")
    if args.fsync:
        sides += ("regisseur+fsync", "requests+fsync")
    rates: dict[str, list[float]] = {side: [] for side in sides}
    usage: dict[str, list[Usage]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        root = Path(scratch)
        database_url = {"scratch": f"sqlite:///{root / 'records.db'}", "none": None}.get(
            args.database_url, args.database_url
        )
        try:
            for round_number in range(rounds):
                shift = round_number % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    directory = root / side
                    directory.mkdir()
                    fsync = side.endswith("+fsync")
                    if side.startswith("regisseur"):
                        seconds, used = run_regisseur(
                            urls, directory, database_url, fsync=fsync, verify=verify
                        )
                    elif side == "impl":
                        seconds, used = run_impl(urls, directory, verify)
                    else:
                        seconds, used = run_requests(urls, directory, fsync=fsync, verify=verify)
                    usage[side].append(used)
                    check_files(directory, count, size, digest)
                    shutil.rmtree(directory)
                    rates[side].append(total_mib / seconds)
                print(
                    f"round {round_number + 1:2}: "
                    + "   ".join(f"{side} {rates[side][-1]:7.1f}" for side in sides)
                    + " MiB/s",
                    flush=True,
                )
        finally:
            serving.terminate()
            serving.join(10)
            certificates.cleanup()

    def ratio(ours: str, theirs: str) -> float:
        pairs = zip(rates[ours], rates[theirs], strict=True)
        return statistics.median(a / b for a, b in pairs)

    for side in sides:
        runs = usage[side]
        voluntary = statistics.median(u.voluntary for u in runs) / count
        involuntary = statistics.median(u.involuntary for u in runs) / count
        print(
            f"median {side:16} {statistics.median(rates[side]):7.1f} MiB/s, "
            f"client CPU {1000 * statistics.median(u.cpu for u in runs) / count:.1f} ms, "
            f"thread switches {voluntary:.0f} + {involuntary:.0f} preempted per download"
        )
    print(f"median ratio regisseur / requests:             {ratio('regisseur', 'requests'):.3f}")
    print(f"median ratio impl / requests:                  {ratio('impl', 'requests'):.3f}")
    print(f"median ratio regisseur / impl:                 {ratio('regisseur', 'impl'):.3f}")
    if args.fsync:
        print(
            "median ratio regisseur+fsync / requests+fsync: "
            f"{ratio('regisseur+fsync', 'requests+fsync'):.3f}"
        )
    print("target: regisseur / requests >= 1.0 (with --tls or --no-splice: the copy path)")


if __name__ == "__main__":
    main()
