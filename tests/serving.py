"""A test's own HTTP server, served on a thread of the test for as long as a block runs.

The tests that need a server no one else wrote use nginx; these are the
ones that need a server whose every answer the test decides (held bodies,
gates, counted requests).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

import pytest

from tests.nginx import Nginx, nginx_binary

if TYPE_CHECKING:
    import http.server
    import socketserver
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

__all__ = ["answer_empty", "answer_held", "answer_in_stages", "nginx", "serving"]


@contextlib.contextmanager
def serving(
    server: socketserver.BaseServer,
    *,
    release: Callable[[], None] | None = None,
    wait: float = 10.0,
) -> Iterator[None]:
    """Serve ``server`` on a thread while the block runs, then shut it down.

    ``release`` runs first at the end (open the gates a handler may still
    wait on, so the shutdown does not wait for them); the thread is joined
    within ``wait`` seconds, so none outlives the test.
    """
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http"
    )
    thread.start()
    try:
        yield
    finally:
        if release is not None:
            release()
        server.shutdown()
        server.server_close()
        thread.join(wait)


def answer_empty(handler: http.server.BaseHTTPRequestHandler, status: int) -> None:
    """Answer ``status`` with no body (a 404, a 503)."""
    handler.send_response(status)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def answer_held(
    handler: http.server.BaseHTTPRequestHandler,
    body: bytes,
    *,
    gate: threading.Event,
    first: threading.Event,
    chunk: int,
    wait: float,
) -> None:
    """Answer a GET with ``body`` (206 from a ``Range: bytes=N-``, ETag ``"v1"``).

    From byte 0 while ``gate`` is not set: the first ``chunk`` bytes, then
    ``first`` is set and the rest waits for ``gate`` (at most ``wait``
    seconds). A client that goes away ends the answer quietly.
    """
    answer_in_stages(handler, body, [(chunk, first, gate)], wait=wait)


def answer_in_stages(
    handler: http.server.BaseHTTPRequestHandler,
    body: bytes,
    stages: Sequence[tuple[int, threading.Event, threading.Event]],
    *,
    wait: float,
) -> None:
    """:func:`answer_held` with several holds: from byte 0, while the last
    stage's gate is not set, each ``(end, sent, gate)`` in turn sends the
    body up to byte ``end``, sets ``sent`` and waits for ``gate`` (at most
    ``wait`` seconds); then the rest. A ranged request gets the rest at once.
    """
    ranged = handler.headers.get("Range")
    start = int(ranged.removeprefix("bytes=").split("-")[0]) if ranged else 0
    handler.send_response(206 if ranged else 200)
    if ranged:
        handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    handler.send_header("Content-Length", str(len(body) - start))
    handler.send_header("ETag", '"v1"')
    handler.end_headers()
    try:
        if start == 0 and stages and not stages[-1][2].is_set():
            for end, sent, gate in stages:
                handler.wfile.write(body[start:end])
                handler.wfile.flush()
                sent.set()
                gate.wait(wait)
                start = end
        handler.wfile.write(body[start:])
    except OSError:  # the client went away (stopped, interrupted)
        handler.close_connection = True


@contextlib.contextmanager
def nginx(prefix: Path, root: Path, *, listen: str = "", server: str = "") -> Iterator[int]:
    """nginx serving ``root`` on 127.0.0.1 while the block runs; yields its port.

    ``listen`` is added to the ``listen`` directive (``ssl``), ``server`` to the
    server block (certificates, locations); requests are logged in
    ``prefix/access.log``. Skips the test without nginx (see ``tests.nginx``).
    """
    if nginx_binary() is None:
        pytest.skip("nginx is not installed")
    server_process = Nginx(
        prefix, root, http=f"access_log {prefix}/access.log;", listen=listen, server=server
    )
    try:
        yield server_process.port
    finally:
        server_process.stop()
