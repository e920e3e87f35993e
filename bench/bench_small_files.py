"""Many small files at ``-j 8``: regisseur next to requests, curl, wget and aria2c.

Run: ``python bench/bench_small_files.py [--quick] [--files N] [--kib K]
[--rounds R] [--jobs J] [--view] [--sides a,b,...]``

A web server no one here wrote serves N files of K KiB (default 200 of
16 KiB): nginx with a config of this bench's own (127.0.0.1, a free port,
a temporary directory, started and stopped here). Without nginx
(``apt-get install nginx-light``) a Python HTTP/1.1 server in a process of
its own stands in, and the bench says so (its figures are then the
server's more than the clients').

Each round downloads all N files once per side into a fresh directory on
the same file system, in an order that rotates per round (interleaved:
the machine's noise hits every side), and checks the files afterwards:

* ``cli``: ``regisseur download -j J -q -i LIST -o DIR`` as a process
  (start-up, records database and fsync included: what a user runs);
* ``library``: an ``ActorSystem`` with an ``HttpSource(concurrency=J)``
  and SQLite records in this process, submit all, wait for the ends (the
  system already started: the steady-state cost per file);
* ``cli-nosync`` (only when asked for with ``--sides``): the same command
  with ``--no-fsync`` (each file left to the kernel, as the other tools do);
* ``library-nosync`` (only when asked for with ``--sides``): the same with
  ``HttpSource(fsync=False)``, to show what making each file durable costs
  (the records are still committed as always);
* ``impl``: the same ``HttpSource``'s impl (``fetch``) in a
  ``ThreadPoolExecutor(J)``, one session per thread, ``fsync=False``, no
  actors and no records: HttpSource's own cost, like for like with
  ``requests``;
* ``impl-session`` (only with ``--sides``): the impl sending each GET
  through ``requests``' own ``Session.prepare_request`` and
  ``Session.send`` instead of straight to the adapter (what HttpSource
  did before its direct path; see ``_http_session``), to show what that
  path saves;
* ``requests``: ``ThreadPoolExecutor(J)``, one ``requests.Session`` per
  thread, ``iter_content`` into plain files (no fsync, no records);
* ``requests-script``: the same pool as ``requests`` as a script run by
  a Python process of its own (its start-up and imports included): what a
  Python user would run instead of the ``cli`` side, like for like;
* ``curl``: ``curl --parallel --parallel-max J``; ``wget``: ``wget -i``
  (one at a time: wget has no parallel mode); ``aria2c -j J`` when
  installed (``apt-get install aria2``).
* with ``--view``: ``cli-bars``, the same command without ``-q`` under a
  pseudo-terminal (the live progress view), next to ``cli-plain`` (``--plain``).

Printed: files per second and client CPU milliseconds per file for each
side (median over rounds, with min-max; CPU of this process for the
in-process sides, of the child process for the others); with
``--per-thread``, the in-process sides' CPU per file split by thread: the
workers (the pool's threads for ``impl`` and ``requests``: this process
less its main thread), the download keeper, the event bus and the rest;
and the per-round ratios of regisseur's sides to requests (median and
min-max), and of the view to ``--plain``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.server
import multiprocessing
import os
import pty
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

# The repository's root: the nginx launcher the tests use (tests/nginx.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from regisseur.actors import ActorSystem
from regisseur.actors.clock import RealClock, Timers
from regisseur.actors.downloads import CancelToken, DownloadContext, HttpSource, _http_session
from regisseur.actors.log import get_logger
from regisseur.messages import DownloadState, DownloadStateChanged
from tests.nginx import Nginx

if TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK = 256 * 1024


# -- the server ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Nginx(Nginx):
    """nginx serving ``root`` on 127.0.0.1 (started and stopped by this bench;
    the launcher is the tests' own, ``tests/nginx.py``)."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return


def _serve_python(root: str, port: int) -> None:
    handler = lambda *a: _Handler(*a, directory=root)  # noqa: E731
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.daemon_threads = True
        server.serve_forever()


class _PythonServer:
    """The stand-in: http.server in a process of its own."""

    name = "python http.server (nginx not installed)"

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=_serve_python, args=(str(root), self.port), daemon=True
        )
        self.process.start()
        _wait_listening(self.port, None)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            msg = f"the server exited with {process.returncode}"
            raise RuntimeError(msg)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    msg = f"nothing listens on 127.0.0.1:{port}"
    raise RuntimeError(msg)


# -- the sides -----------------------------------------------------------------


def _regisseur_command() -> list[str]:
    script = Path(sys.executable).with_name("regisseur")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from regisseur.cli import main; main()"]


def run_cli(urls_file: Path, directory: Path, jobs: int, *more: str) -> None:
    command = [*_regisseur_command(), "download", "-j", str(jobs), "-q", *more]
    command += ["-i", str(urls_file), "-o", str(directory)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=600)


def run_cli_terminal(urls_file: Path, directory: Path, jobs: int, *, plain: bool) -> None:
    """The command under a pseudo-terminal (the live view unless ``plain``)."""
    command = [*_regisseur_command(), "download", "-j", str(jobs)]
    command += ["-i", str(urls_file), "-o", str(directory)]
    if plain:
        command.append("--plain")
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm-256color")
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    try:
        while True:  # the terminal must be read, or the command blocks on a full pty
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    if not os.read(leader, 65536):
                        break
                except OSError:  # EIO: the command closed its end
                    break
            elif process.poll() is not None:
                break
    finally:
        os.close(leader)
    if process.wait(600) != 0:
        msg = f"regisseur download exited with {process.returncode}"
        raise RuntimeError(msg)


class Library:
    """An ActorSystem with an HttpSource, started once, reused by every round."""

    def __init__(self, root: Path, jobs: int, *, fsync: bool = True, name: str = "library") -> None:
        self.directory = root / f"{name}-out"
        self.source = HttpSource("http", directory=self.directory, concurrency=jobs, fsync=fsync)
        self.system = ActorSystem(
            download_sources=[self.source], database_url=f"sqlite:///{root / f'{name}.db'}"
        )
        self.system.start()

    def run(self, urls: list[str], directory: Path) -> None:
        # One source, one directory: the round's directory is swapped in by rename.
        ended: list[DownloadStateChanged] = []
        done = threading.Event()

        def watch(event: object) -> None:
            if isinstance(event, DownloadStateChanged) and event.record.terminal:
                ended.append(event)
                if len(ended) == len(urls):
                    done.set()

        self.directory.mkdir(parents=True, exist_ok=True)
        subscription = self.system.downloads.subscribe(watch, progress=False)
        try:
            for url in urls:
                self.system.downloads.submit("http", url, url.rsplit("/", 1)[-1])
            if not done.wait(600):
                msg = f"only {len(ended)} of {len(urls)} downloads ended"
                raise RuntimeError(msg)
        finally:
            subscription.cancel()
        failed = [e.record for e in ended if e.record.state is not DownloadState.SUCCEEDED]
        if failed:
            msg = f"download failed: {failed[0].error}"
            raise RuntimeError(msg)
        self.directory.rename(directory)

    def close(self) -> None:
        self.system.stop()


class Impl:
    """``HttpSource.fetch`` driven by a thread pool (no system, no records)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.timers = Timers(RealClock(), name="bench-timers")
        self.timers.start()
        self.log = get_logger("bench")
        self.rounds = 0

    def run(self, urls: list[str], directory: Path) -> None:
        source = HttpSource(directory=directory, concurrency=self.jobs, fsync=False)
        local = threading.local()
        sessions: list[requests.Session] = []
        self.rounds += 1

        def one(index: int, url: str) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = source.open_session()
                sessions.append(session)
            context = DownloadContext(
                download_id=f"r{self.rounds}-{index}",
                target_id=url,
                display_name=url.rsplit("/", 1)[-1],
                original_filename=None,
                extra={},
                destination=directory,
                worker_state=session,
                token=CancelToken(),
                timers=self.timers,
                send=lambda progress: None,
                log=self.log,
            )
            source.fetch(context.download_id, url, context.display_name, context)

        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            for future in [pool.submit(one, i, url) for i, url in enumerate(urls)]:
                future.result()
        for session in sessions:
            source.close_session(session)

    def close(self) -> None:
        self.timers.close()


@contextlib.contextmanager
def _through_session() -> Iterator[None]:
    """Within the block, HttpSource sends each GET through requests' Session."""
    saved = _http_session._direct
    _http_session._direct = lambda session: False
    try:
        yield
    finally:
        _http_session._direct = saved


def run_requests(urls: list[str], directory: Path, jobs: int) -> None:
    local = threading.local()
    sessions: list[requests.Session] = []

    def one(url: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)
        with session.get(url, stream=True, timeout=(10, 30)) as response:
            response.raise_for_status()
            with (directory / url.rsplit("/", 1)[-1]).open("wb") as file:
                for chunk in response.iter_content(CHUNK):
                    file.write(chunk)

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for future in [pool.submit(one, url) for url in urls]:
            future.result()
    for session in sessions:
        session.close()


# The script a Python user would write instead of a downloader: the same
# pool as ``run_requests``, as a process of its own (start-up included, like
# the cli side).
_REQUESTS_SCRIPT = """\
import concurrent.futures, pathlib, sys, threading
import requests
urls = pathlib.Path(sys.argv[1]).read_text().split()
directory, jobs = pathlib.Path(sys.argv[2]), int(sys.argv[3])
local = threading.local()
def one(url):
    session = getattr(local, "session", None)
    if session is None:
        session = local.session = requests.Session()
    with session.get(url, stream=True, timeout=(10, 30)) as response:
        response.raise_for_status()
        with (directory / url.rsplit("/", 1)[-1]).open("wb") as file:
            for chunk in response.iter_content(256 * 1024):
                file.write(chunk)
with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    for future in [pool.submit(one, url) for url in urls]:
        future.result()
"""


def run_requests_script(urls_file: Path, directory: Path, jobs: int) -> None:
    command = [sys.executable, "-c", _REQUESTS_SCRIPT, str(urls_file), str(directory), str(jobs)]
    subprocess.run(command, check=True, timeout=600)


def run_curl(urls: list[str], directory: Path, jobs: int) -> None:
    config = directory.parent / f"{directory.name}.curl"
    config.write_text(
        "".join(f'url = "{url}"\noutput = "{url.rsplit("/", 1)[-1]}"\n' for url in urls),
        encoding="utf-8",
    )
    subprocess.run(
        [
            "curl",
            "-sSf",
            "--no-progress-meter",
            "--parallel",
            "--parallel-max",
            str(jobs),
            "-K",
            str(config),
        ],
        cwd=directory,
        check=True,
        timeout=600,
    )
    config.unlink()


def run_wget(urls_file: Path, directory: Path) -> None:
    subprocess.run(
        ["wget", "-q", "-i", str(urls_file), "-P", str(directory)], check=True, timeout=600
    )


def run_aria2(urls_file: Path, directory: Path, jobs: int) -> None:
    subprocess.run(
        [
            *("aria2c", "-q", "-j", str(jobs), "-i", str(urls_file), "-d", str(directory)),
            *("--allow-overwrite=false", "--auto-file-renaming=false", "--file-allocation=none"),
            "--console-log-level=error",
        ],
        check=True,
        timeout=600,
    )


# -- the bench -----------------------------------------------------------------


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its waited-for children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


_GROUPS = ("workers", "keeper", "events", "rest")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's live threads, by group (see ``--per-thread``)."""
    groups = dict.fromkeys((*_GROUPS, "main"), 0.0)
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # ended meanwhile
            continue
        name = thread.name
        if thread is threading.main_thread():
            group = "main"
        elif "worker" in name:
            group = "workers"
        elif "keeper" in name:
            group = "keeper"
        elif "events" in name:
            group = "events"
        else:
            group = "rest"
        groups[group] += used
    return groups


def _check(directory: Path, count: int, size: int) -> None:
    files = [p for p in directory.iterdir() if p.suffix == ".bin"]
    if len(files) != count or any(p.stat().st_size != size for p in files):
        msg = f"expected {count} files of {size} bytes in {directory}, found {len(files)}"
        raise RuntimeError(msg)


def _spread2(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"


_IN_PROCESS = ("library", "library-nosync", "impl", "impl-session", "requests")
_POOLS = ("impl", "impl-session", "requests")


def _split(
    side: str,
    into: dict[str, list[float]],
    before: dict[str, float],
    after: dict[str, float],
    *,
    used: float,
    files: int,
) -> None:
    """Add one round's CPU per file by thread group to ``into``.

    A pool's threads end with its round (``impl``, ``requests``): their
    share is the process's CPU less that of the threads still alive (the
    other sides' idle threads, the main thread: ``rest``).
    """
    alive = {group: after[group] - before.get(group, 0.0) for group in after}
    if side in _POOLS:
        alive = {"workers": used - sum(alive.values()), "rest": sum(alive.values())}
    else:
        alive["rest"] += alive.pop("main")
    for group in _GROUPS:
        into[group].append(1000 * alive.get(group, 0.0) / files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--kib", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--view", action="store_true", help="also the live view under a pty")
    parser.add_argument("--sides", default=None, help="a comma-separated subset of the sides")
    parser.add_argument(
        "--per-thread", action="store_true", help="split in-process CPU by thread (Linux)"
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)

    sides = ["cli", "library", "impl", "requests", "requests-script", "curl", "wget"]
    if shutil.which("aria2c"):
        sides.append("aria2c")
    else:
        print("aria2c not installed (apt-get install aria2): left out")
    if args.view:
        sides += ["cli-plain", "cli-bars"]
    if args.sides:
        sides = [side for side in args.sides.split(",") if side]
    for tool in ("curl", "wget"):
        if tool in sides and not shutil.which(tool):
            print(f"{tool} not installed: left out")
            sides.remove(tool)

    with tempfile.TemporaryDirectory(prefix="bench-small-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)  # nginx's worker may run as another user
        served = root / "www"
        (served / "files").mkdir(parents=True)
        size = args.kib * 1024
        for index in range(args.files):
            (served / "files" / f"{index:04d}.bin").write_bytes(os.urandom(size))
        server: _Nginx | _PythonServer
        if shutil.which("nginx"):
            (root / "nginx").mkdir()
            server = _Nginx(root / "nginx", served)
        else:
            server = _PythonServer(served)
        print(
            f"{args.files} files of {args.kib} KiB at -j {args.jobs}, {rounds} rounds, "
            f"server: {server.name}, sides: {', '.join(sides)}",
            flush=True,
        )
        urls = [
            f"http://127.0.0.1:{server.port}/files/{index:04d}.bin" for index in range(args.files)
        ]
        urls_file = root / "urls.txt"
        urls_file.write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
        library = Library(root, args.jobs) if "library" in sides else None
        nosync = (
            Library(root, args.jobs, fsync=False, name="library-nosync")
            if "library-nosync" in sides
            else None
        )
        impl = Impl(args.jobs)
        rates: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}  # ms per file
        # side -> group -> ms per file, with --per-thread
        threads: dict[str, dict[str, list[float]]] = {
            side: {group: [] for group in _GROUPS} for side in sides
        }
        try:
            for round_number in range(rounds):
                shift = round_number % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    directory = root / f"out-{side}"
                    if side not in ("library", "library-nosync"):
                        directory.mkdir()
                    threads_before = _thread_cpu() if args.per_thread else {}
                    cpu_before = _cpu()
                    started = time.perf_counter()
                    if side == "cli":
                        run_cli(urls_file, directory, args.jobs)
                    elif side == "cli-nosync":
                        run_cli(urls_file, directory, args.jobs, "--no-fsync")
                    elif side in ("cli-plain", "cli-bars"):
                        run_cli_terminal(urls_file, directory, args.jobs, plain=side == "cli-plain")
                    elif side == "library" and library is not None:
                        library.run(urls, directory)
                    elif side == "library-nosync" and nosync is not None:
                        nosync.run(urls, directory)
                    elif side == "impl":
                        impl.run(urls, directory)
                    elif side == "impl-session":
                        with _through_session():
                            impl.run(urls, directory)
                    elif side == "requests":
                        run_requests(urls, directory, args.jobs)
                    elif side == "requests-script":
                        run_requests_script(urls_file, directory, args.jobs)
                    elif side == "curl":
                        run_curl(urls, directory, args.jobs)
                    elif side == "wget":
                        run_wget(urls_file, directory)
                    elif side == "aria2c":
                        run_aria2(urls_file, directory, args.jobs)
                    else:
                        msg = f"unknown side {side!r}"
                        raise SystemExit(msg)
                    seconds = time.perf_counter() - started
                    cpu_after = _cpu()
                    # The client's CPU: this process for the in-process
                    # sides, the waited-for child for the others.
                    used = cpu_after[0] - cpu_before[0] + cpu_after[1] - cpu_before[1]
                    cpu[side].append(1000 * used / args.files)
                    if args.per_thread and side in _IN_PROCESS:
                        split_at = _thread_cpu()
                        _split(
                            side,
                            threads[side],
                            threads_before,
                            split_at,
                            used=used,
                            files=args.files,
                        )
                    _check(directory, args.files, size)
                    shutil.rmtree(directory)
                    rates[side].append(args.files / seconds)
                print(
                    f"round {round_number + 1:2}: "
                    + "  ".join(f"{side} {rates[side][-1]:.0f}" for side in sides)
                    + " files/s",
                    flush=True,
                )
        finally:
            if library is not None:
                library.close()
            if nosync is not None:
                nosync.close()
            impl.close()
            server.stop()

    print(
        f"server: {server.name}; files/s and client CPU ms per file, "
        f"median (min-max) of {rounds} interleaved rounds:"
    )
    for side in sides:
        print(f"  {side:10} {_spread(rates[side])} files/s   {_spread(cpu[side])} ms CPU")

    def ratio(ours: str, theirs: str) -> None:
        if ours in rates and theirs in rates:
            pairs = [a / b for a, b in zip(rates[ours], rates[theirs], strict=True)]
            low, high = min(pairs), max(pairs)
            print(f"  {ours} / {theirs}: {statistics.median(pairs):.2f} ({low:.2f}-{high:.2f})")

    if args.per_thread:
        print("CPU ms per file by thread, median (min-max):")
        for side in sides:
            if side in _IN_PROCESS:
                split = "  ".join(f"{g} {_spread2(threads[side][g])}" for g in _GROUPS)
                print(f"  {side:10} {split}")
    print("per-round ratios, median (min-max):")
    for ours in ("cli", "cli-nosync", "library", "library-nosync", "impl", "impl-session"):
        for theirs in ("requests", "aria2c"):
            ratio(ours, theirs)
    ratio("impl", "impl-session")  # what the direct path saves
    ratio("cli", "requests-script")  # both whole processes
    ratio("cli-nosync", "requests-script")
    ratio("cli-nosync", "cli")  # what --no-fsync saves
    ratio("cli-bars", "cli-plain")
    print("targets: cli / requests >= 1.0 (stretch: >= aria2c); cli-bars / cli-plain >= 0.91")


if __name__ == "__main__":
    main()
