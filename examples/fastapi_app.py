"""A FastAPI app with a system inside: nothing here blocks the event loop.

- The lifespan starts the system before the first request and stops it
  after the last (``async with system``: start and stop run on a thread of
  their own, awaited).
- ``GET /count/{name}`` asks an actor (``await system.ask_async``).
- ``POST /downloads?target=...`` submits a download; ``GET
  /downloads/{id}/events`` streams its progress as server-sent events
  (``system.events.stream``), ending with its final state.
- ``GET /health`` returns ``system.health()``: 200 when healthy, 503 if not.
  It is a plain ``def``: FastAPI runs it on its thread pool, since
  ``health()`` asks every actor (one second at most each).

Serve it with any ASGI server (``uvicorn --factory examples.fastapi_app:serve``). Run as
a script, it drives the app in-process through httpx's ASGI transport (no
socket) and prints what each endpoint answered.

Run: ``.venv/bin/python examples/fastapi_app.py``
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from regisseur.actors import Actor, ActorSystem
from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads.errors import UnknownSourceError
from regisseur.messages import DownloadProgressed, DownloadRecord, DownloadStateChanged
from regisseur.supervision import ChildSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from regisseur.actors.downloads.context import DownloadContext


class Counter(Actor):
    """Counts visits per name; only this actor's thread touches ``counts``."""

    def on_start(self) -> None:
        self.counts: dict[str, int] = {}

    def on_receive(self, message: Any) -> Any:
        self.counts[message] = self.counts.get(message, 0) + 1
        return self.counts[message]


def make_system(folder: Path) -> ActorSystem:
    """The app's system: a counter and a "files" source writing into ``folder``."""

    def fetch(download_id: str, target_id: str, name: str, context: DownloadContext) -> str:
        size = 4
        for done in range(size + 1):  # a stand-in for a real transfer
            if context.cancelled:
                raise RuntimeError("cancelled")
            context.report(done, size)
        path = folder / name
        path.write_text(f"contents of {target_id}\n")
        return str(path)

    return ActorSystem(
        [ChildSpec("counter", Counter)],
        database_url=f"sqlite:///{folder / 'app.db'}",
        download_sources=[DownloadSource("files", fetch, concurrency=2)],
    )


def _sse(record: DownloadRecord) -> str:
    data = {"state": record.state.value, "progress": record.progress}
    return f"event: download\ndata: {json.dumps(data)}\n\n"


def create_app(system: ActorSystem) -> FastAPI:
    """A FastAPI app serving ``system`` (started and stopped by its lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with system:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/count/{name}")
    async def count(name: str) -> dict[str, Any]:
        visits = await system.ask_async("counter", name, timeout=2)
        return {"name": name, "visits": visits}

    @app.post("/downloads")
    async def submit(target: str) -> dict[str, str]:
        try:  # submit() only queues: it does not wait for the download
            download_id = system.downloads.submit("files", target, f"{target}.txt")
        except (UnknownSourceError, ValueError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {"id": download_id}

    @app.get("/downloads/{download_id}/events")
    async def progress(download_id: str) -> StreamingResponse:
        if await system.downloads.status_async(download_id) is None:
            raise HTTPException(status_code=404, detail=f"no download {download_id!r}")

        async def events() -> AsyncIterator[str]:
            # Subscribe first, then read the state: no change falls in between.
            async with system.events.stream(DownloadStateChanged, DownloadProgressed) as stream:
                record = await system.downloads.status_async(download_id)
                assert record is not None
                yield _sse(record)
                if record.terminal:
                    return
                async for event in stream:
                    if event.record.id == download_id:
                        yield _sse(event.record)
                        if event.record.terminal:
                            return

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/health")
    def health() -> JSONResponse:  # a plain def: FastAPI runs it on its thread pool
        report = system.health()
        body = json.loads(json.dumps(dataclasses.asdict(report), default=str))
        return JSONResponse(body, status_code=200 if report.healthy else 503)

    return app


async def demo(folder: Path) -> None:
    """Drive the app in-process, as a test would (no server, no socket)."""
    import httpx

    system = make_system(folder)
    app = create_app(system)
    async with app.router.lifespan_context(app):  # what a server does at startup
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for name in ("ada", "ada", "bob"):
                answer = (await client.get(f"/count/{name}")).json()
                print(f"GET /count/{name} -> visits {answer['visits']}")
            download_id = (await client.post("/downloads", params={"target": "report"})).json()[
                "id"
            ]
            stream = await client.get(f"/downloads/{download_id}/events")
            states = [json.loads(line[6:])["state"] for line in stream.text.splitlines()[1::3]]
            print(f"GET /downloads/<id>/events -> last event {states[-1]}")
            health = await client.get("/health")
            print(f"GET /health -> {health.status_code} {health.json()['status']}")
    print(f"system stopped: {not system.running}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fastapi-") as tmp:
        asyncio.run(demo(Path(tmp)))


def serve() -> FastAPI:
    """For ``uvicorn --factory examples.fastapi_app:serve`` (files in a temporary folder)."""
    return create_app(make_system(Path(tempfile.mkdtemp(prefix="fastapi-"))))


if __name__ == "__main__":
    main()
