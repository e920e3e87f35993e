"""What the cluster tests share: a bounded wait, node processes and table reads.

* ``wait_until(condition, timeout, what)`` (from ``tests.polling``, the
  suite's one bounded poll): for state outside this process.
* ``NodeProcess``: one ``tests.cluster.node_child`` process; ``start()``
  returns once it printed ``READY`` (bounded), ``terminate()`` stops it
  cleanly (SIGTERM, bounded), ``kill()`` SIGKILLs it; ``close()`` makes sure
  it is gone (SIGTERM, then SIGKILL) and is safe to call twice.
* ``nodes(...)``: a context manager starting several in parallel and
  closing every one of them on exit, whatever happened.
* ``client(url, ...)``: an in-process cluster node without sources.
* ``runs(out)``, ``downloads_table(url)``: what the nodes did.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, text

from regisseur.actors import ActorSystem
from regisseur.actors.cluster import ClusterSettings
from regisseur.messages import Event
from tests.polling import wait_until as wait_until  # the cluster tests import it here

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def wait_for_events(
    systems: Iterable[ActorSystem], condition: Callable[[], T], timeout: float, what: str
) -> T:
    """Re-check ``condition`` at every event of ``systems`` until it is truthy.

    For state in this process that changes together with an event (children
    started or stopped, nodes joined or left): no polling, no sleeping.
    """
    changed = threading.Condition()
    seen = [0]

    def on_event(_event: object) -> None:
        with changed:
            seen[0] += 1
            changed.notify_all()

    subscriptions = [s.events.subscribe(on_event, Event) for s in systems]
    try:
        deadline = time.monotonic() + timeout
        while True:
            with changed:
                before = seen[0]
            value = condition()
            if value:
                return value
            with changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
                changed.wait_for(lambda before=before: seen[0] != before, remaining)
    finally:
        for subscription in subscriptions:
            subscription.cancel()


class NodeProcess:
    """One cluster node in a child process (see ``tests/cluster/node_child.py``)."""

    def __init__(
        self,
        url: str,
        node: str,
        out: Path,
        *,
        concurrency: int = 4,
        lease_ttl: float = 1.5,
        poll_interval: float = 0.5,
        work_ms: float = 20.0,
        singleton: bool = False,
        cluster_limit: int | None = None,
        source: str = "noop",
        http_dir: Path | None = None,
        shards: int = 0,
        freeze_after_publish: bool = False,
    ) -> None:
        self.node = node
        self.out = out
        self._term_sent = False
        self.command = [
            sys.executable,
            "-m",
            "tests.cluster.node_child",
            "--url",
            url,
            "--node",
            node,
            "--source",
            source,
            "--concurrency",
            str(concurrency),
            "--out",
            str(out),
            "--lease-ttl",
            str(lease_ttl),
            "--poll-interval",
            str(poll_interval),
            "--work-ms",
            str(work_ms),
        ]
        if singleton:
            self.command.append("--singleton")
        if cluster_limit is not None:
            self.command += ["--cluster-limit", str(cluster_limit)]
        if http_dir is not None:
            self.command += ["--http-dir", str(http_dir)]
        if shards:
            self.command += ["--shards", str(shards)]
        if freeze_after_publish:
            self.command.append("--freeze-after-publish")
        self.stderr_path = out / f"node-{node}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process (without waiting for it to be ready)."""
        self._term_sent = False
        self.out.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                stdin=subprocess.PIPE,  # closed by close(): the child stops on EOF too
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once the node printed READY; fail with its stderr otherwise."""
        proc = self._proc()
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen = b""
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while b"READY\n" not in seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail(f"did not print READY within {timeout:g}s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    proc.wait(STOP_TIMEOUT)
                    self._fail(f"exited with {proc.returncode} before READY")
                seen += chunk

    def start(self) -> NodeProcess:
        self.launch()
        self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        return self._proc().pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the node (as a crash) and reap it."""
        proc = self._proc()
        proc.kill()
        proc.wait(STOP_TIMEOUT)

    def send_term(self) -> None:
        """SIGTERM without waiting (the node starts its clean stop)."""
        self._proc().send_signal(signal.SIGTERM)
        self._term_sent = True

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM: a clean stop; returns the exit code (fails if it overruns)."""
        proc = self._proc()
        # Once: a second SIGTERM can land while the interpreter finalises,
        # after Python has put the default disposition back, and kill the
        # process (-15) although its clean stop had already succeeded.
        if proc.poll() is None and not self._term_sent:
            proc.send_signal(signal.SIGTERM)
            self._term_sent = True
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
            self._fail(f"did not stop within {timeout:g}s of SIGTERM")
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Make sure the process is gone (SIGTERM, bounded, then SIGKILL)."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
        finally:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError(f"node {self.node} was not started")
        return self.proc

    def _fail(self, why: str) -> None:
        tail = "\n".join(self.stderr().splitlines()[-40:])
        raise AssertionError(f"node {self.node} {why}; its stderr ends with:\n{tail}")


@contextlib.contextmanager
def nodes(
    url: str, out: Path, names: Sequence[str], **options: Any
) -> Iterator[dict[str, NodeProcess]]:
    """Start nodes ``names`` in parallel; every one is closed on exit."""
    started = {name: NodeProcess(url, name, out, **options) for name in names}
    try:
        for node in started.values():
            node.launch()
        for node in started.values():
            node.wait_ready()
        yield started
    finally:
        close_all(started.values())


def http_pair(
    url: str, out: Path, shared: Path, *, lease_ttl: float, freeze_a: bool = False
) -> tuple[NodeProcess, NodeProcess]:
    """Nodes ``a`` and ``b`` (not launched), each with an HttpSource ``http`` of
    concurrency 1 writing to the directory ``shared``: one takes over from the
    other. ``freeze_a``: ``a`` stops itself right after its first publish."""
    options = {"lease_ttl": lease_ttl, "poll_interval": 0.3, "concurrency": 1, "http_dir": shared}
    return (
        NodeProcess(url, "a", out / "a", source="http", freeze_after_publish=freeze_a, **options),
        NodeProcess(url, "b", out / "b", source="http", **options),
    )


def close_all(processes: Iterable[NodeProcess]) -> None:
    """SIGTERM every live one first (they stop in parallel), then close each."""
    processes = list(processes)
    for node in processes:
        if node.alive():
            with contextlib.suppress(OSError):
                node._proc().send_signal(signal.SIGTERM)
    for node in processes:
        node.close()


@contextlib.contextmanager
def client(url: str, node: str = "client", lease_ttl: float = 1.5) -> Iterator[ActorSystem]:
    """An in-process cluster node with no sources of its own (stopped on exit)."""
    system = ActorSystem(
        [],
        database_url=url,
        cluster=ClusterSettings(node, lease_ttl=lease_ttl, poll_interval=0.5),
        name=f"test-{node}",
    )
    with system:
        yield system


def runs(out: Path) -> list[tuple[str, str]]:
    """``(download_id, node)`` for every run started, in order."""
    try:
        lines = (out / "runs.log").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [(parts[0], parts[1]) for parts in (line.split() for line in lines)]


def run_counts(out: Path) -> Counter[str]:
    return Counter(download_id for download_id, _node in runs(out))


def spans(out: Path) -> list[tuple[str, str, float, float]]:
    """``(download_id, node, start, end)`` of every successful run."""
    try:
        lines = (out / "spans.log").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        download_id, node, start, end = line.split()
        found.append((download_id, node, float(start), float(end)))
    return found


def intervals(out: Path) -> list[tuple[str, str, float, float, str]]:
    """``(download_id, node, start, end, how)`` of every run that ended."""
    try:
        lines = (out / "intervals.log").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        download_id, node, start, end, how = line.split()
        found.append((download_id, node, float(start), float(end), how))
    return found


def concurrent_runs(
    out: Path, frozen: Sequence[tuple[str, float, float]] = ()
) -> list[tuple[str, str, str]]:
    """Pairs of runs of one download on two nodes that overlapped in time.

    ``frozen``: ``(node, from, to)`` windows (``time.monotonic()``) in which
    that node's process was stopped (SIGSTOP): it ran nothing then, so that
    part of its runs does not count. Returns ``(download_id, node, node)``.
    """
    by_id: dict[str, list[tuple[str, float, float]]] = {}
    for download_id, node, start, end, _how in intervals(out):
        for piece in _unfrozen(node, start, end, frozen):
            by_id.setdefault(download_id, []).append((node, *piece))
    found = []
    for download_id, runs_ in by_id.items():
        for i, (node_a, start_a, end_a) in enumerate(runs_):
            for node_b, start_b, end_b in runs_[i + 1 :]:
                if node_a != node_b and start_a < end_b and start_b < end_a:
                    found.append((download_id, node_a, node_b))
    return found


def _unfrozen(
    node: str, start: float, end: float, frozen: Sequence[tuple[str, float, float]]
) -> list[tuple[float, float]]:
    pieces = [(start, end)]
    for which, stop, cont in frozen:
        if which != node:
            continue
        pieces = [
            part
            for a, b in pieces
            for part in ((a, min(b, stop)), (max(a, cont), b))
            if part[0] < part[1]
        ]
    return pieces


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at a tie)."""
    points = sorted([(s, 1) for s, _e in intervals] + [(e, -1) for _s, e in intervals])
    current = peak = 0
    for _time, step in points:
        current += step
        peak = max(peak, current)
    return peak


def shard_owners(out: Path) -> dict[str, str]:
    """Key -> the node running it now, from ``shards.log`` (start/stop lines)."""
    owners: dict[str, str] = {}
    path = out / "shards.log"
    if not path.exists():
        return owners
    for line in path.read_text(encoding="utf-8").splitlines():
        key, node, what = line.split()
        if what == "start":
            owners[key] = node
        elif owners.get(key) == node:
            del owners[key]
    return owners


def singleton_lines(out: Path) -> list[str]:
    try:
        return (out / "singleton.log").read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return []


class Table:
    """Direct reads of the shared downloads table (its own small engine)."""

    def __init__(self, url: str) -> None:
        # pre_ping: the tests that take the server down read on after it is back.
        self.engine = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)

    def rows(self) -> list[Any]:
        with self.engine.connect() as connection:
            if not _has_table(connection):
                return []
            return list(
                connection.execute(
                    text("SELECT id, state, owner, file_path FROM regisseur_downloads")
                )
            )

    def count(self, where: str = "TRUE") -> int:
        with self.engine.connect() as connection:
            if not _has_table(connection):
                return 0
            return int(
                connection.execute(
                    text(f"SELECT count(*) FROM regisseur_downloads WHERE {where}")
                ).scalar_one()
            )

    def close(self) -> None:
        self.engine.dispose()


def _has_table(connection: Any) -> bool:
    return bool(
        connection.execute(
            text("SELECT to_regclass('public.regisseur_downloads') IS NOT NULL")
        ).scalar_one()
    )


@contextlib.contextmanager
def table(url: str) -> Iterator[Table]:
    reader = Table(url)
    try:
        yield reader
    finally:
        reader.close()
