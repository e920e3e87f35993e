"""The demo's actors, download sources and the supervision tree they form.

Start order (``depends_on``)::

    cache (a resource stage)
      ├── pollers (a supervisor: poller-1, poller-2, flaky-server)
      ├── reporter (a periodic service)
      └── doomed (stopped for good by a FatalError)
    downloads (the system's own subtree: keeper, then one queue and workers per source)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regisseur.actors.actor import Actor
from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads.http import HttpSource
from regisseur.actors.resource import resource
from regisseur.actors.server import ServerActor
from regisseur.actors.service import ServiceActor
from regisseur.cli.demo._events import ServiceRan
from regisseur.supervision import Backoff, ChildSpec, FatalError, Supervisor

if TYPE_CHECKING:
    from regisseur.actors.downloads import DownloadContext

__all__ = ["ARCHIVE_STEP", "FLAKY_BACKOFF", "FLAKY_RUNS", "SELF_DESTRUCT", "cast", "sources"]

#: How many runs of the flaky server fail before it recovers.
FLAKY_RUNS = 3
#: The flaky server's restart delays: 0.5, 1, 2 s (the default would be 2, 4, 8 s).
FLAKY_BACKOFF = Backoff(initial=0.5, multiplier=2.0, maximum=4.0)
#: What makes ``doomed`` raise its FatalError.
SELF_DESTRUCT = "self-destruct"
#: Seconds per tenth of an archive "download" (the plugin source is slow on purpose).
ARCHIVE_STEP = 0.15


class Tally:
    """The shared resource: thread-safe counters (standing in for a cache client)."""

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
        self.resource("cache").add(f"poll:{self.server_id}")


class FlakyPoller(ServerActor):
    """Fails its first ``FLAKY_RUNS`` runs (a server that is down), then recovers.

    The attempt count lives in the shared tally, not in the actor: every
    restart is a fresh instance.
    """

    def run_loop(self) -> None:
        attempt = self.resource("cache").add("flaky-attempts")
        if attempt <= FLAKY_RUNS:
            msg = f"{self.server_id} is not answering (attempt {attempt})"
            raise ConnectionError(msg)
        self.resource("cache").add(f"poll:{self.server_id}")


class Reporter(ServiceActor):
    """A periodic service: reports how many polls the cache has seen."""

    def update(self) -> int:
        polls = self.resource("cache").total("poll:")
        self.metrics["polls_seen"] = polls
        runs = self.statistics()["runs"] + 1  # this run is counted when it returns
        self.system.events.publish(ServiceRan(self.name, runs, polls))
        return 1


class Doomed(Actor):
    """Raises ``FatalError`` when told to: the supervisor stops it for good."""

    def on_receive(self, message: Any) -> Any:
        if message == SELF_DESTRUCT:
            msg = "the licence expired"
            raise FatalError(msg)
        return super().on_receive(message)


def cast() -> list[ChildSpec]:
    """The root's children (the system adds the downloads subtree)."""
    pollers = Supervisor(
        [
            ChildSpec("poller-1", Poller, args=("poller-1",), kwargs={"interval": 0.5}),
            ChildSpec("poller-2", Poller, args=("poller-2",), kwargs={"interval": 0.5}),
            ChildSpec(
                "flaky-server",
                FlakyPoller,
                args=("flaky-server",),
                kwargs={"interval": 0.5},
                backoff=FLAKY_BACKOFF,
                description="fails its first runs",
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
        ChildSpec(
            "doomed", Doomed, depends_on=("cache",), description="stops for good on a FatalError"
        ),
    ]


def _archive(download_id: str, target_id: str, name: str, ctx: DownloadContext) -> str | None:
    """The plugin source: 'fetches' a volume from an archive in ten slow steps."""
    assert ctx.destination is not None
    data = (f"{target_id}\n" * 4000).encode()
    for step in range(1, 11):
        if not ctx.sleep(ARCHIVE_STEP):
            return None  # cancelled or stopping: the keeper knows already
        ctx.report(len(data) * step // 10, len(data))
    path = Path(ctx.destination) / name
    path.write_bytes(data)
    return str(path)


def sources(directory: Path) -> list[DownloadSource]:
    """HTTP (concurrency 3, quick retries) and a slower plugin source (one at a time)."""
    (directory / "archive").mkdir(parents=True, exist_ok=True)
    return [
        HttpSource(
            "http",
            directory=directory / "http",
            concurrency=3,
            retries=2,
            backoff=Backoff(initial=0.2, multiplier=2.0, maximum=1.0),
            chunk_size=64 * 1024,
            fsync=False,
        ),
        DownloadSource(
            "archive", _archive, concurrency=1, delay=0.4, directory=directory / "archive"
        ),
    ]
