"""The demo's actors, sources and the supervision tree they form."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.actor import Actor
from actors.downloads import DownloadSource
from actors.downloads.http import HttpSource
from actors.resource import resource
from actors.server import ServerActor
from actors.service import ServiceActor
from supervision import Backoff, ChildSpec, FatalError, Supervisor

if TYPE_CHECKING:
    from actors.downloads import DownloadContext

__all__ = ["FLAKY_RUNS", "cast", "sources"]

#: How many runs of the flaky server fail before it recovers.
FLAKY_RUNS = 3


class Tally:
    """The demo's shared resource: thread-safe counters (like a cache client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, key: str) -> int:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def total(self, prefix: str) -> int:
        with self._lock:
            return sum(v for k, v in self._counts.items() if k.startswith(prefix))


class Poller(ServerActor):
    """A well-behaved per-server loop: counts its polls in the shared tally."""

    def run_loop(self) -> None:
        self.resource("cache").add(str(self.server_id))


class FlakyPoller(ServerActor):
    """Fails its first runs (a server that is down), then recovers.

    The attempt count lives in the shared tally, not in the actor: every
    restart is a fresh instance.
    """

    def run_loop(self) -> None:
        attempt = self.resource("cache").add("flaky-attempts")
        if attempt <= FLAKY_RUNS:
            msg = f"{self.server_id} is not answering (attempt {attempt})"
            raise ConnectionError(msg)


class Reporter(ServiceActor):
    """A periodic service: reports how many polls the cache has seen."""

    def update(self) -> int:
        self.metrics["polls_seen"] = self.resource("cache").total("poller")
        return 1


class Doomed(Actor):
    """Raises ``FatalError`` when told to: it is stopped for good."""

    def on_receive(self, message: Any) -> Any:
        if message == "self-destruct":
            msg = "the licence expired"
            raise FatalError(msg)
        return super().on_receive(message)


def cast() -> list[ChildSpec]:
    """The tree: a cache resource, then pollers, a reporter and a doomed actor."""
    quick = Backoff(initial=0.5, multiplier=2.0, maximum=4.0)
    pollers = Supervisor(
        [
            ChildSpec("poller-1", Poller, args=("poller-1",), kwargs={"interval": 0.5}),
            ChildSpec("poller-2", Poller, args=("poller-2",), kwargs={"interval": 0.5}),
            ChildSpec(
                "flaky-server",
                FlakyPoller,
                args=("flaky-server",),
                kwargs={"interval": 0.5},
                backoff=quick,
            ),
        ],
        max_restarts=10,
        within=10.0,
    )
    return [
        resource("cache", open=Tally, description="shared counters (a resource stage)"),
        ChildSpec("pollers", pollers, depends_on=("cache",), description="per-server loops"),
        ChildSpec(
            "reporter",
            Reporter,
            args=("reporter",),
            kwargs={"interval": 0.5, "retry_delay": 0.5},
            depends_on=("cache",),
            description="periodic service",
        ),
        ChildSpec("doomed", Doomed, description="stops for good on a FatalError"),
    ]


def _archive(download_id: str, target_id: str, name: str, ctx: DownloadContext) -> str:
    """The plugin source: 'fetches' from an archive in ten small steps."""
    assert ctx.destination is not None
    path = Path(ctx.destination) / f"{name}"
    data = (target_id.encode() + b"\n") * 2000
    for step in range(1, 11):
        if not ctx.sleep(0.05):
            return ""  # cancelled or stopping: the keeper already knows
        ctx.report(len(data) * step // 10, len(data))
    path.write_bytes(data)
    return str(path)


def sources(directory: Path) -> list[DownloadSource]:
    """The HTTP source (concurrency 3) and a slower plugin source with a delay."""
    (directory / "archive").mkdir(parents=True, exist_ok=True)
    return [
        HttpSource(
            "http",
            directory=directory / "http",
            concurrency=3,
            retries=2,
            backoff=Backoff(initial=0.3, multiplier=2.0, maximum=2.0),
            fsync=False,
        ),
        DownloadSource(
            "archive", _archive, concurrency=1, delay=0.4, directory=directory / "archive"
        ),
    ]
