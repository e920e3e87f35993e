"""One cluster node in a child process, for the multi-process cluster tests.

Usage::

    python -m tests.cluster.node_child --url URL --node ID --source noop \
        --concurrency N --out DIR [--lease-ttl 1.5] [--poll-interval 0.5] \
        [--cluster-limit K] [--singleton] [--work-ms 20] [--log-level INFO]

It starts an ``ActorSystem`` in cluster mode with one download source whose
impl, for a download of ``target_id``:

* appends ``"<download_id> <node>\\n"`` to ``DIR/runs.log`` (``O_APPEND``, one
  ``write``) when the run STARTS, so a test can count executions;
* for a target starting with ``hold-``: waits (bounded, ``HOLD_LIMIT``) until
  the file ``DIR/open-<target_id>`` exists or the download is cancelled; on
  a cancel it writes ``DIR/cancelled-<target_id>`` and returns ``None``;
* otherwise works ``--work-ms`` milliseconds (``context.sleep``: a cancel or
  a stop ends it early, and then nothing is written);
* for a target starting with ``pub-``: once the work is done, writes
  ``DIR/body-<target_id>-<node>`` and waits (bounded, ``HOLD_LIMIT``) until
  ``DIR/publish-<target_id>`` exists (the moment between the end of the
  body and the publish);
* asks ``context.ensure_owner()`` (a run that lost its claim raises
  ``StaleClaimError`` and publishes nothing), then writes its result
  atomically (a temporary file, then ``os.replace``) to ``DIR/<target_id>``
  with the content ``target_id`` and returns that path;
* appends ``"<download_id> <node> <start> <end>\\n"`` (``time.monotonic()``,
  comparable across processes on Linux) to ``DIR/spans.log`` after a
  successful run (a publish), so a test can compute how many ran at once;
* appends ``"<download_id> <node> <start> <end> <how>\\n"`` to
  ``DIR/intervals.log`` when ANY run ends (``how``: published, cancelled,
  stale, failed), so a test can check that two runs never overlapped.

With ``--http-dir DIR`` the source is instead an ``HttpSource`` downloading
the URL given as ``target_id`` into ``DIR`` (shared by the nodes of a test).
With ``--freeze-after-publish`` as well, the node stops itself (SIGSTOP)
right after its first download is published, before the run returns and
its record is written: the window a crash or a freeze can fall into.

With ``--shards N`` it also runs ``sharded("servers", ...)`` over the keys
``server-0`` .. ``server-<N-1>`` (interval 0.3 s); the actor of each key
appends ``"<key> <node> start"`` to ``DIR/shards.log`` when it starts and
``"<key> <node> stop"`` when it stops.

With ``--singleton`` the system also runs ``ChildSpec("solo", ...,
singleton=True)`` whose actor appends ``"<node>\\n"`` to
``DIR/singleton.log`` in ``on_start``.

It prints ``READY`` on stdout once the system has started, and stops
cleanly (``system.stop()``) on SIGTERM or SIGINT, or when its stdin
reaches end of file (the test process went away), then exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from regisseur.actors import Actor, ActorSystem, configure_logging
from regisseur.actors.cluster import ClusterSettings, sharded
from regisseur.actors.downloads import DownloadSource, HttpSource, StaleClaimError
from regisseur.supervision import ChildSpec

SINGLETON = "solo"
HOLD_LIMIT = 30.0  # seconds a hold- download waits at most
HOLD_POLL = 0.01


def append_line(path: Path, line: str) -> None:
    """Append ``line`` with one ``write`` on an ``O_APPEND`` descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def write_atomically(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def wait_for_gate(gate: Path, context: Any, start: float) -> bool:
    """Wait until ``gate`` exists (True) or the run is cancelled (False)."""
    deadline = start + HOLD_LIMIT
    while not gate.exists():
        if context.cancelled:
            return False
        if time.monotonic() > deadline:
            msg = f"{gate.name}: never opened nor cancelled within {HOLD_LIMIT:g}s"
            raise RuntimeError(msg)
        context.sleep(HOLD_POLL)
    return True


def make_impl(out: Path, node: str, work: float) -> Any:
    def run(download_id: str, target_id: str, context: Any, start: float) -> str | None:
        if target_id.startswith("hold-"):
            if not wait_for_gate(out / f"open-{target_id}", context, start):
                write_atomically(out / f"cancelled-{target_id}", f"{node}\n")
                return None
        elif work > 0 and not context.sleep(work):
            return None  # cancelled or stopping: no result
        if target_id.startswith("pub-"):
            write_atomically(out / f"body-{target_id}-{node}", f"{node}\n")
            if not wait_for_gate(out / f"publish-{target_id}", context, start):
                return None
        context.ensure_owner()  # a stale run publishes nothing
        result = out / target_id
        write_atomically(result, target_id)
        append_line(out / "spans.log", f"{download_id} {node} {start:.6f} {time.monotonic():.6f}\n")
        return str(result)

    def impl(download_id: str, target_id: str, display_name: str, context: Any) -> str | None:
        start = time.monotonic()
        append_line(out / "runs.log", f"{download_id} {node}\n")
        how = "failed"
        try:
            path = run(download_id, target_id, context, start)
            how = "published" if path is not None else "cancelled"
            return path
        except StaleClaimError:
            how = "stale"
            raise
        finally:
            line = f"{download_id} {node} {start:.6f} {time.monotonic():.6f} {how}\n"
            append_line(out / "intervals.log", line)

    return impl


class ShardProbe(Actor):
    """Stands for a per-server loop: logs its key's start and stop on this node."""

    def __init__(self, out: str, node: str, key: str) -> None:
        super().__init__()
        self._log = Path(out) / "shards.log"
        self._node = node
        self._key = key

    def on_start(self) -> None:
        append_line(self._log, f"{self._key} {self._node} start\n")

    def on_stop(self) -> None:
        append_line(self._log, f"{self._key} {self._node} stop\n")


class SingletonProbe(Actor):
    """Appends this node's id to ``singleton.log`` when it starts."""

    def __init__(self, out: str, node: str) -> None:
        super().__init__()
        self._out = Path(out)
        self._node = node

    def on_start(self) -> None:
        append_line(self._out / "singleton.log", f"{self._node}\n")


class FreezingHttpSource(HttpSource):
    """An HttpSource whose process stops itself after its first publish."""

    frozen = False

    def fetch(self, download_id: str, target_id: str, display_name: str, context: Any) -> str:
        path = super().fetch(download_id, target_id, display_name, context)
        if not self.frozen:
            self.frozen = True
            os.kill(os.getpid(), signal.SIGSTOP)  # the test sends SIGCONT
        return path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="node_child")
    parser.add_argument("--url", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--source", default="noop")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--cluster-limit", type=int, default=None)
    parser.add_argument("--singleton", action="store_true")
    parser.add_argument("--work-ms", type=float, default=20.0)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--http-dir", default=None)
    parser.add_argument("--shards", type=int, default=0)
    parser.add_argument("--freeze-after-publish", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    configure_logging(args.log_level)  # to stderr: the test keeps it in a file
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:
        # os.read, not sys.stdin: a buffered read blocked at interpreter exit aborts it.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    children = []
    if args.singleton:
        children.append(
            ChildSpec(SINGLETON, SingletonProbe, args=(str(out), args.node), singleton=True)
        )
    if args.shards:
        keys = [f"server-{i}" for i in range(args.shards)]
        children.append(
            sharded(
                "servers",
                keys,
                lambda key: ChildSpec(f"poll-{key}", ShardProbe, args=(str(out), args.node, key)),
                interval=0.3,
            )
        )
    source: DownloadSource
    if args.http_dir is not None:
        source = (FreezingHttpSource if args.freeze_after_publish else HttpSource)(
            args.source,
            directory=args.http_dir,
            concurrency=args.concurrency,
            chunk_size=16 * 1024,
            read_timeout=10.0,
            cluster_limit=args.cluster_limit,
        )
    else:
        source = DownloadSource(
            args.source,
            make_impl(out, args.node, args.work_ms / 1000.0),
            concurrency=args.concurrency,
            cluster_limit=args.cluster_limit,
        )
    system = ActorSystem(
        children,
        database_url=args.url,
        cluster=ClusterSettings(
            args.node, lease_ttl=args.lease_ttl, poll_interval=args.poll_interval
        ),
        name=f"node-{args.node}",
        download_sources=[source],
    )
    system.start()
    try:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        while not stop.wait(0.5):  # the main thread must wake to run signal handlers
            pass
    finally:
        system.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
