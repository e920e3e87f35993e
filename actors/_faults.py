"""Per-actor fault plans, consulted by the runtime before a handler runs.

The testing kit's ``FaultInjector`` fills these in; a cell without a plan
pays one ``is None`` check per message. Plans belong to one cell of one
system, so two systems never see each other's faults.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regisseur.actors.errors import RegisseurError

if TYPE_CHECKING:
    from regisseur.actors._cell import Cell

__all__ = ["CellFaults", "InjectedFault"]


class InjectedFault(RegisseurError, RuntimeError):
    """The default exception raised by an injected crash or failed start."""


def _make(exc: Any, default_text: str) -> BaseException:
    if exc is None:
        return InjectedFault(default_text)
    if isinstance(exc, type) and issubclass(exc, BaseException):
        return exc(default_text)
    if isinstance(exc, BaseException):
        return exc
    msg = f"exc must be an exception class or instance, got {exc!r}"
    raise TypeError(msg)


@dataclass(slots=True)
class _Rule:
    times: int
    exc: Any
    message_type: type | None


class CellFaults:
    """Crash, hang and start-failure rules for one cell (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crashes: list[_Rule] = []
        self._start_failures: list[_Rule] = []
        self._hangs: list[tuple[float, type | None]] = []

    def add_crash(self, times: int, exc: Any, message_type: type | None) -> None:
        """Crash the next ``times`` messages (of ``message_type``, if given)."""
        with self._lock:
            self._crashes.append(_Rule(times, exc, message_type))

    def add_start_failure(self, times: int, exc: Any) -> None:
        """Fail the next ``times`` starts."""
        with self._lock:
            self._start_failures.append(_Rule(times, exc, None))

    def add_hang(self, seconds: float, message_type: type | None) -> None:
        """Make the next handler wait ``seconds`` on the system clock first."""
        with self._lock:
            self._hangs.append((seconds, message_type))

    def pending(self) -> int:
        """How many injected faults have not fired yet."""
        with self._lock:
            crashes = sum(r.times for r in self._crashes)
            starts = sum(r.times for r in self._start_failures)
            return crashes + starts + len(self._hangs)

    def clear(self) -> None:
        """Forget every rule that has not fired."""
        with self._lock:
            self._crashes.clear()
            self._start_failures.clear()
            self._hangs.clear()

    # -- called on the actor's thread --------------------------------------
    def before_message(self, cell: Cell, message: Any) -> None:
        """Apply a hang, then a crash, that matches ``message`` (if any)."""
        hang = None
        crash = None
        with self._lock:
            for index, (seconds, kind) in enumerate(self._hangs):
                if kind is None or isinstance(message, kind):
                    hang = seconds
                    del self._hangs[index]
                    break
            for rule in self._crashes:
                if rule.message_type is None or isinstance(message, rule.message_type):
                    rule.times -= 1
                    crash = rule.exc
                    if rule.times <= 0:
                        self._crashes.remove(rule)
                    break
            else:
                rule = None
        if hang is not None:
            cell.sleep(hang)
        if rule is not None:
            raise _make(crash, f"injected crash in {cell.name!r}")

    def before_start(self, cell: Cell) -> None:
        """Raise if a start failure is planned."""
        with self._lock:
            if not self._start_failures:
                return
            rule = self._start_failures[0]
            rule.times -= 1
            if rule.times <= 0:
                self._start_failures.pop(0)
        raise _make(rule.exc, f"injected start failure in {cell.name!r}")
