"""A service with an ``async def update()``, metrics, pause/resume/run-now.

The service polls a fake async feed; its ``update`` runs on an event loop
the actor owns (one loop, reused across runs, closed on stop). Each step
prints ``system.health().find("reader")``: its status and details (the
built-in metrics and the service's own). A ``ManualClock`` drives the
interval and ``system.settle()`` waits for the actor, so the output is
always the same.

Run: ``.venv/bin/python examples/async_service.py``
"""

from __future__ import annotations

import asyncio

from regisseur.actors import ActorSystem, ManualClock, ServiceActor
from regisseur.messages import Pause, Resume, RunNow
from regisseur.supervision import ChildSpec


async def fetch_feed(feed: str, page: int) -> list[str]:
    """Stands in for an HTTP client call (aiohttp, httpx ...)."""
    await asyncio.sleep(0)
    return [f"{feed}-{page}-{n}" for n in range(3)]


class FeedReader(ServiceActor):
    def configure(self, *, feed: str = "news") -> None:  # the service's **options
        self.feed = feed
        self.page = 0

    async def update(self) -> int:
        self.page += 1
        items = await fetch_feed(self.feed, self.page)
        self.metrics["last_item"] = items[-1]  # your own metric, next to the built-in ones
        return len(items)  # adds to the "processed" metric

    def cleanup(self) -> None:  # on stop and before a restart
        print(f"cleanup after page {self.page}")


def show(system: ActorSystem, when: str) -> None:
    report = system.health().find("reader")
    assert report is not None and isinstance(report.details, dict)
    d = report.details
    print(
        f"{when:<22} status={report.status:<8} runs={d['runs']} "
        f"processed={d['processed']:<3} last_item={d['last_item']}"
    )


def main() -> None:
    clock = ManualClock()
    spec = ChildSpec(
        "reader", FeedReader, args=("reader",), kwargs={"interval": 60, "feed": "news"}
    )
    with ActorSystem([spec], clock=clock, database_url=None) as system:
        system.settle()
        show(system, "after start")
        clock.advance(60)
        system.settle()
        show(system, "after 60 s")
        system.tell("reader", Pause())
        system.settle()
        clock.advance(120)  # paused: no runs
        system.settle()
        show(system, "paused, 120 s later")
        system.tell("reader", RunNow())  # runs once even while paused
        system.settle()
        show(system, "after RunNow")
        system.tell("reader", Resume())  # a run is due at once, the next 60 s later
        system.settle()  # the tell is handled before the clock moves on
        clock.advance(60)
        system.settle()
        show(system, "resumed, 60 s later")
    print("system stopped")


if __name__ == "__main__":
    main()
