"""A test's own HTTP server, served on a thread of the test for as long as a block runs.

The tests that need a server no one else wrote use nginx; these are the
ones that need a server whose every answer the test decides (held bodies,
gates, counted requests).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socketserver
    from collections.abc import Callable, Iterator

__all__ = ["serving"]


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
