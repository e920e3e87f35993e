"""A test's own HTTP server, served on a thread of the test for as long as a block runs.

The tests that need a server no one else wrote use nginx; these are the
ones that need a server whose every answer the test decides (held bodies,
gates, counted requests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from typing import TYPE_CHECKING

import pytest

from tests.polling import wait_until

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


_NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} {listen};
        root {root};
        {server}
    }}
}}
"""


@contextlib.contextmanager
def nginx(prefix: Path, root: Path, *, listen: str = "", server: str = "") -> Iterator[int]:
    """nginx serving ``root`` on 127.0.0.1 while the block runs; yields its port.

    ``listen`` is added to the ``listen`` directive (``ssl``), ``server`` to the
    server block (certificates, locations). Skips the test without nginx.
    """
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )
    if binary is None:
        pytest.skip("nginx is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    conf = prefix / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        _NGINX_CONF.format(
            user=user, prefix=prefix, port=port, root=root, listen=listen, server=server
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            if process.poll() is not None:
                msg = f"nginx exited with {process.returncode}: see {prefix}/error.log"
                raise RuntimeError(msg)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            return False

        wait_until(listening, 20, f"nginx listening on 127.0.0.1:{port}")
        yield port
    finally:
        process.terminate()
        process.wait(10)
