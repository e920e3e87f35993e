"""Recorders shared by the server and service actor tests.

The actors under test write to these from their own threads while the test
reads them, so both are thread-safe.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine

from regisseur.actors import ManualClock

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Engine

    from regisseur.actors import ActorSystem
    from regisseur.actors.clock import Clock
    from regisseur.supervision import ChildSpec

__all__ = ["Record", "Script", "apply", "outside_engine", "start"]


class Record:
    """An append-only record of what the actors did, in order.

    Entries are tuples ``(kind, who, *data)``: e.g. ``("run", 7, 10.0)``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[Any, ...]] = []

    def add(self, kind: str, who: Any, *data: Any) -> None:
        with self._lock:
            self._items.append((kind, who, *data))

    def of(self, kind: str, who: Any = None) -> list[tuple[Any, ...]]:
        """Entries of ``kind`` (of ``who`` if given), oldest first."""
        with self._lock:
            return [e for e in self._items if e[0] == kind and (who is None or e[1] == who)]

    def times(self, kind: str, who: Any) -> list[float]:
        """The clock times recorded with ``kind`` entries of ``who``."""
        return [e[2] for e in self.of(kind, who)]

    def kinds(self, who: Any) -> list[str]:
        """What ``who`` did, in order (``["configure", "start", "run", ...]``)."""
        with self._lock:
            return [e[0] for e in self._items if e[1] == who]


class Script:
    """What the next runs do, one item per run: consumed in order, then "succeed".

    ``None`` succeeds, an exception is raised, a float makes the run take that
    many seconds on the system's ``ManualClock`` (the run advances it).
    """

    def __init__(self, *outcomes: BaseException | float | None) -> None:
        self._lock = threading.Lock()
        self._outcomes: deque[BaseException | float | None] = deque(outcomes)

    def extend(self, outcomes: Iterable[BaseException | float | None]) -> None:
        with self._lock:
            self._outcomes.extend(outcomes)

    def next(self) -> BaseException | float | None:
        with self._lock:
            return self._outcomes.popleft() if self._outcomes else None


def apply(outcome: BaseException | float | None, clock: Clock) -> None:
    """Carry out one scripted outcome on the calling (actor) thread."""
    if isinstance(outcome, BaseException):
        raise outcome
    if isinstance(outcome, float):
        assert isinstance(clock, ManualClock)
        clock.advance(outcome)


def outside_engine(system: ActorSystem, engines: list[Engine]) -> Engine:
    """A separate engine on the system's SQLite file (disposed by the caller).

    Its busy timeout is short: a lock left behind by an actor shows up as an
    error within two seconds instead of a hang.
    """
    assert system.database is not None
    engine = create_engine(system.database.url, connect_args={"timeout": 2.0})
    engines.append(engine)
    return engine


def start(system: ActorSystem, *specs: ChildSpec) -> None:
    """Spawn ``specs``, then wait until their first runs (at the current time) are done."""
    for spec in specs:
        system.spawn(spec)
    system.settle()
