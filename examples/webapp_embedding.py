"""Embed a system in a web app: start it before serving, stop it after.

Standard library only (http.server on 127.0.0.1, a free port). Handlers
talk to the system from the server's threads: ``/greet`` tells an actor and
asks it, ``/fetch`` submits a download (and waits for it, to show the
result), ``/health`` returns ``system.health()`` as JSON. The script calls
itself with urllib, then shuts down: the server first, then the system (the
``with`` statement).

Run: ``.venv/bin/python examples/webapp_embedding.py``
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from regisseur.actors import Actor, ActorSystem
from regisseur.actors.downloads import DownloadSource
from regisseur.supervision import ChildSpec


class Greeter(Actor):
    def on_start(self) -> None:
        self.visits = 0

    def on_receive(self, message: Any) -> Any:
        if message == "visit":  # told: fire and forget
            self.visits += 1
            return None
        return f"hello, {message} (visit {self.visits})"  # asked: the reply


def handler_for(system: ActorSystem) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # runs on one of the server's threads
            path, _, query = self.path.partition("?")
            if path == "/greet":
                system.tell("greeter", "visit")
                body: Any = {"answer": system.ask("greeter", query or "world", timeout=2)}
            elif path == "/fetch":
                download_id = system.downloads.submit("files", query, f"{query}.txt")
                body = system.downloads.wait(download_id, timeout=5).as_dict()
            elif path == "/health":
                body = dataclasses.asdict(system.health())
            else:
                self.send_error(404)
                return
            data = json.dumps(body, default=str).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # no access log
            return

    return Handler


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="webapp-") as tmp:
        folder = Path(tmp)

        def fetch(download_id: str, target_id: str, name: str) -> str:  # a fake source
            (folder / name).write_text(f"contents of {target_id}\n")
            return str(folder / name)

        system = ActorSystem(
            [ChildSpec("greeter", Greeter)],
            database_url=f"sqlite:///{folder / 'app.db'}",
            download_sources=[DownloadSource("files", fetch, concurrency=2)],
        )
        with system:  # app startup: the system first, then the server
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(system))
            server.daemon_threads = False  # server_close() waits for running handlers
            serving = threading.Thread(target=server.serve_forever)
            serving.start()
            base = f"http://127.0.0.1:{server.server_address[1]}"
            try:
                for path in ("/greet?web", "/greet?app", "/fetch?report", "/health"):
                    with urllib.request.urlopen(base + path, timeout=5) as response:
                        answer = json.load(response)
                    shown = answer.get("answer") or answer.get("state") or answer["status"]
                    print(f"GET {path} -> {shown}")
            finally:  # app shutdown: the server first, then the system
                server.shutdown()
                server.server_close()
                serving.join()
        print("server and system stopped")


if __name__ == "__main__":
    main()
