"""examples/fastapi_app.py through ASGI clients, no server: lifespan, ask, SSE, health.

The app's lifespan runs through ``app.router.lifespan_context`` (what a
server does at startup and shutdown); requests go through httpx's
``ASGITransport``, and the event stream through a direct ASGI call whose
``send`` hands each chunk to the test as it is sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import DownloadSource
from regisseur.supervision import ChildSpec

if TYPE_CHECKING:
    from types import ModuleType

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


example = load_example()


def gated_system(folder: Path, gate: threading.Event) -> ActorSystem:
    def fetch(download_id: str, target_id: str, name: str) -> str:
        assert gate.wait(10), "the test never opened the gate"
        (folder / name).write_text(target_id)
        return str(folder / name)

    return ActorSystem(
        [ChildSpec("counter", example.Counter)],
        database_url=f"sqlite:///{folder / 'app.db'}",
        download_sources=[DownloadSource("files", fetch)],
    )


class AsgiStream:
    """One streaming GET driven by hand: chunks as they are sent, and a disconnect."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path
        self.chunks: asyncio.Queue[str | None] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.status: int | None = None

    async def run(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"app")],
            "server": ("app", 80),
            "client": ("127.0.0.1", 1234),
            "root_path": "",
        }
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await self.chunks.put(message["body"].decode())
                if not message.get("more_body", False):
                    await self.chunks.put(None)

        await self.app(scope, receive, send)


def states(chunk: str) -> list[str]:
    return [
        json.loads(line[len("data: ") :])["state"]
        for line in chunk.splitlines()
        if line.startswith("data: ")
    ]


def subscribers(system: ActorSystem) -> int:
    """The bus's subscriber count once it handled what it was sent (a worker may be busy)."""
    system.events.flush(timeout=5)
    return system.events.subscriber_count()


@pytest.mark.timeout(60)
def test_lifespan_asks_streams_progress_and_serves_health(tmp_path: Path) -> None:
    gate = threading.Event()
    system = gated_system(tmp_path, gate)
    app = example.create_app(system)

    async def main() -> None:
        assert not system.running
        async with app.router.lifespan_context(app):
            assert system.running
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                visits = [(await client.get("/count/ada")).json()["visits"] for _ in range(3)]
                assert visits == [1, 2, 3]

                bad = await client.post("/downloads", params={"target": ""})
                assert bad.status_code == 400 and "target_id" in bad.text
                answer = await client.post("/downloads", params={"target": "report"})
                download_id = answer.json()["id"]
                missing = await client.get("/downloads/nope/events")
                assert missing.status_code == 404

                before = subscribers(system)
                stream = AsgiStream(app, f"/downloads/{download_id}/events")
                task = asyncio.ensure_future(stream.run())
                first = await asyncio.wait_for(stream.chunks.get(), 10)
                assert stream.status == 200
                assert first is not None
                assert states(first)[0] in ("Initializing", "InProgress, Downloading")
                gate.set()  # the download ends while the client listens
                seen = states(first)
                while (chunk := await asyncio.wait_for(stream.chunks.get(), 10)) is not None:
                    seen += states(chunk)
                await task
                assert seen[-1] == "Completed, Succeeded"
                assert (tmp_path / "report.txt").read_text() == "report"
                assert subscribers(system) == before  # the stream closed with the response

                health = await client.get("/health")
                assert health.status_code == 200
                assert health.json()["status"] == "running" and health.json()["healthy"]
        assert not system.running  # the lifespan stopped it

    asyncio.run(main())
    assert system.threads() == []


@pytest.mark.timeout(60)
def test_a_client_that_goes_away_closes_its_event_stream(tmp_path: Path) -> None:
    gate = threading.Event()
    system = gated_system(tmp_path, gate)
    app = example.create_app(system)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            download_id = system.downloads.submit("files", "slow", "slow.txt")
            before = subscribers(system)
            stream = AsgiStream(app, f"/downloads/{download_id}/events")
            task = asyncio.ensure_future(stream.run())
            assert await asyncio.wait_for(stream.chunks.get(), 10) is not None
            assert subscribers(system) == before + 1
            stream.gone.set()  # the client disconnects mid-download
            await asyncio.wait_for(task, 10)
            assert subscribers(system) == before
            gate.set()
            record = await system.downloads.wait_async(download_id, timeout=10)
            assert record.terminal

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_health_says_503_when_the_system_is_not_running(tmp_path: Path) -> None:
    system = gated_system(tmp_path, threading.Event())
    app = example.create_app(system)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            await system.__aexit__(None, None, None)  # as if the system had failed
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                health = await client.get("/health")
        assert health.status_code == 503, health.text

    asyncio.run(main())
