"""The demo's event log: keeps every event, forwards it to the show, and lets
the script wait for the events it needs (each wait bounded by one deadline
for the whole demo).

Threads: ``__call__`` runs on the event bus's thread (and on download
worker threads for ``DownloadRetrying``); the ``wait_*`` methods on the
demo's main thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar

from regisseur.actors.clock import monotonic

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.cli.demo._show import Show

__all__ = ["Watcher"]

E = TypeVar("E")


class Watcher:
    """Every event seen since the start, in arrival order.

    ``deadline`` bounds every wait together (seconds from now): a wait that
    runs past it raises ``TimeoutError`` naming what it waited for. ``show``
    receives every event and note; it may be replaced before events flow.
    """

    def __init__(self, show: Show, deadline: float) -> None:
        self._cond = threading.Condition()
        self._events: list[Any] = []
        self.show = show
        self.started = monotonic()
        self._deadline = self.started + deadline

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return monotonic() - self.started

    def __call__(self, event: object) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
        self.show.event(self.elapsed(), event)

    def note(self, text: str) -> None:
        """Tell the audience what the script does next."""
        self.show.note(self.elapsed(), text)

    def matching(self, kind: type[E], **fields: Any) -> list[E]:
        """The events of ``kind`` seen so far whose attributes equal ``fields``."""
        with self._cond:
            return [
                e
                for e in self._events
                if isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())
            ]

    def wait_until(self, what: str, ready: Callable[[], bool]) -> None:
        """Block until ``ready()`` (checked after each event) is true.

        ``ready`` runs with the event lock held; it may call :meth:`matching`.
        """
        with self._cond:
            while not ready():
                remaining = self._deadline - monotonic()
                if remaining <= 0:
                    msg = f"the demo ran out of time waiting for {what}"
                    raise TimeoutError(msg)
                self._cond.wait(remaining)

    def wait_for(
        self,
        kind: type[E],
        *,
        count: int = 1,
        where: Callable[[E], bool] | None = None,
        **fields: Any,
    ) -> E:
        """Block until ``count`` events of ``kind`` match; return the last of them."""
        found: list[E] = []

        def ready() -> bool:
            nonlocal found
            found = [e for e in self.matching(kind, **fields) if where is None or where(e)]
            return len(found) >= count

        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        self.wait_until(f"{count} x {kind.__name__}({shown})", ready)
        return found[count - 1]
