"""gunicorn settings: each worker starts its own system after the fork.

A system's threads do not survive ``fork()``: start it in the worker
(``post_fork``), never in the master, and stop it when the worker exits
(``worker_exit``), so its actors finish and its database lease and
connections are released. With ``--preload`` the app module (and the
system object, not started) is made once in the master; the hooks work
the same.
"""

from __future__ import annotations

from typing import Any

workers = 2
bind = "127.0.0.1:8000"


def post_fork(server: Any, worker: Any) -> None:
    from app import system  # made at import, not started

    system.start()


def worker_exit(server: Any, worker: Any) -> None:
    from app import system

    system.stop()
