"""The demo's own HTTP server on 127.0.0.1: generated files, a flaky one, a slow one.

Threads: ``serve_forever`` runs on one thread (``regisseur:demo-http``),
each request on a handler thread; ``close()`` stops and joins them.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any

__all__ = ["DemoServer"]

_CHUNK = 64 * 1024


def _body(name: str, size: int) -> bytes:
    seed = name.encode() * (1 + 256 // max(1, len(name)))
    return (seed[:256] * (size // 256 + 1))[:size]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        server = self.server
        if name == "missing.bin":
            self._answer(404, b"not here")
            return
        if name == "flaky.bin" and server.flaky_failures > 0:
            server.flaky_failures -= 1
            self._answer(500, b"try again")
            return
        size = server.sizes.get(name)
        if size is None:
            self._answer(404, b"unknown")
            return
        body = _body(name, size)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        slow = name.startswith("slow")
        for start in range(0, len(body), _CHUNK):
            if slow and server.closing.wait(0.05):  # pacing, so it can be cancelled
                return
            try:
                self.wfile.write(body[start : start + _CHUNK])
            except OSError:
                return

    def _answer(self, status: int, text: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.flaky_failures = 1
        self.closing = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


class DemoServer:
    """Serves ``sizes`` (name -> bytes), plus ``flaky.bin`` (500 once) and a 404."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self._server = _Server(sizes)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="regisseur:demo-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and join every thread (slow responses end at once)."""
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
