"""LISTEN/NOTIFY: one connection per node that hears the other nodes.

PostgreSQL delivers a ``pg_notify`` to every listening connection when the
sending transaction commits. The listener runs on its own thread (it
blocks on the socket, which no actor's mailbox may do) and hands each
notice to ``dispatch(channel, payload)``, which must only tell actors.

Failures: a lost connection is logged and reopened with a capped backoff;
after every (re)connect ``dispatch(channel, None)`` is called for each
channel, because notices sent while disconnected are gone: receivers then
look at the tables instead. ``stop()`` ends the thread within a fraction
of a second and joins it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from regisseur.actors.errors import describe_error

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from regisseur.actors.log import Logger

__all__ = ["Listener"]

_POLL = 0.2  # how often the thread looks at its stop flag
_MAX_BACKOFF = 5.0


class Listener:
    """Listens on ``channels`` of the database at ``conninfo`` (a libpq URI)."""

    def __init__(
        self,
        conninfo: str,
        channels: Sequence[str],
        dispatch: Callable[[str, str | None], None],
        log: Logger,
        *,
        name: str,
    ) -> None:
        self._conninfo = conninfo
        self._channels = tuple(channels)
        self._dispatch = dispatch
        self._log = log
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start listening; raise if the first connection fails within ``timeout``."""
        self._thread.start()
        if not self._connected.wait(timeout):
            self.stop()
            msg = f"cluster listener could not connect within {timeout:g}s"
            raise TimeoutError(msg)

    def stop(self) -> None:
        """End the thread (bounded) and close the connection."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    @property
    def alive(self) -> bool:
        """True while the thread runs and holds a connection."""
        return self._thread.is_alive() and self._connected.is_set()

    def _run(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    for channel in self._channels:
                        connection.execute(f'LISTEN "{channel}"')
                    self._connected.set()
                    backoff = 0.1
                    for channel in self._channels:
                        self._dispatch(channel, None)
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=_POLL):
                            self._dispatch(notice.channel, notice.payload)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                self._connected.clear()
                if self._stop.is_set():
                    break
                self._log.warning(
                    "cluster_listener_disconnected", error=describe_error(exc), retry_in=backoff
                )
                self._stop.wait(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)
        self._connected.clear()
