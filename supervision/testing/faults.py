"""``FaultInjector``: simulate failures of named actors without touching them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors.clock import check_duration
from regisseur.actors.runtime import CellFaults, InjectedFault

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from regisseur.actors.runtime import ActorCell
    from regisseur.actors.system import ActorSystem

__all__ = ["FaultInjector", "InjectedFault"]


def _count(times: object) -> int:
    if isinstance(times, bool) or not isinstance(times, int):
        msg = f"times must be an int, got {times!r}"
        raise TypeError(msg)
    if times < 1:
        msg = f"times must be >= 1, got {times}"
        raise ValueError(msg)
    return times


def _exception(exc: object) -> BaseException | type[BaseException] | None:
    if exc is None or isinstance(exc, BaseException):
        return exc
    if isinstance(exc, type) and issubclass(exc, BaseException):
        return exc
    msg = f"exc must be an exception instance or class, got {exc!r}"
    raise TypeError(msg)


class FaultInjector:
    """Injects crashes, failed starts, hangs and thread deaths into a system.

    Faults attach to the actor's runtime (its cell), so they survive the
    actor's restarts until they have fired, and no change to the user's
    actor class is needed. Every method may be called from any thread.

    * ``crash(name, times=1, exc=None, message_type=None)``: the next
      ``times`` messages (of ``message_type`` if given) raise ``exc``
      (default ``InjectedFault``) before the handler runs.
    * ``fail_start(name, times=1, exc=None)``: the next ``times`` starts raise.
    * ``hang(name, seconds, message_type=None)``: the next handler first waits
      ``seconds`` on the system clock (a ``ManualClock`` must be advanced);
      a stop or kill cuts the wait short.
    * ``kill(name)``: the actor's thread ends at once, running no hook, as if
      killed; its supervisor notices and restarts it on a new thread.
    * ``close()``: cancel what this injector planned and has not fired.
    """

    def __init__(self, system: ActorSystem) -> None:
        from regisseur.supervision.testing.probe import _check_system

        _check_system(system, "FaultInjector")
        self._systems: Callable[[], Sequence[ActorSystem]] = lambda: (system,)
        self._planned: list[CellFaults] = []

    @classmethod
    def _over(cls, systems: Callable[[], Sequence[ActorSystem]]) -> FaultInjector:
        """An injector for whichever of ``systems()`` has the actor (the fixture's)."""
        injector = cls.__new__(cls)
        injector._systems = systems
        injector._planned = []
        return injector

    @property
    def system(self) -> ActorSystem:
        """The (first) system this injector works on."""
        systems = self._systems()
        if not systems:
            msg = "no system to inject faults into yet: make one with system_factory"
            raise RuntimeError(msg)
        return systems[0]

    def _find_cell(self, name: str) -> ActorCell | None:
        systems = self._systems()
        if len(systems) == 1:
            return systems[0].registry.lookup(name)
        found = [c for s in systems if (c := s.registry.find(name)) is not None]
        if len(found) > 1:
            msg = (
                f"{name!r} runs in {len(found)} systems of this test: "
                "use FaultInjector(system) for the one you mean"
            )
            raise ValueError(msg)
        if not found:
            msg = f"cannot inject a fault into {name!r}: no system of this test runs it"
            raise RuntimeError(msg)
        return found[0]

    def _faults(self, name: str) -> tuple[ActorCell, CellFaults]:
        cell = self._find_cell(name)
        if cell is None or cell.stopped.is_set():
            msg = f"cannot inject a fault into {name!r}: it is stopped"
            raise RuntimeError(msg)
        if cell.faults is None:
            cell.faults = CellFaults()
        if all(plan is not cell.faults for plan in self._planned):
            self._planned.append(cell.faults)
        return cell, cell.faults

    def crash(
        self,
        name: str,
        times: int = 1,
        exc: Any = None,
        message_type: type | None = None,
    ) -> None:
        """Make the next ``times`` matching messages of ``name`` raise."""
        times = _count(times)
        if message_type is not None and not isinstance(message_type, type):
            msg = f"message_type must be a class, got {message_type!r}"
            raise TypeError(msg)
        self._faults(name)[1].add_crash(times, _exception(exc), message_type)

    def fail_start(self, name: str, times: int = 1, exc: Any = None) -> None:
        """Make the next ``times`` starts (restarts) of ``name`` raise."""
        self._faults(name)[1].add_start_failure(_count(times), _exception(exc))

    def hang(self, name: str, seconds: float, message_type: type | None = None) -> None:
        """Make the next handler of ``name`` wait ``seconds`` (system clock) first."""
        seconds = check_duration(seconds, "hang(seconds)")
        if message_type is not None and not isinstance(message_type, type):
            msg = f"message_type must be a class, got {message_type!r}"
            raise TypeError(msg)
        self._faults(name)[1].add_hang(seconds, message_type)

    def kill(self, name: str) -> None:
        """End ``name``'s thread without any hook; its supervisor replaces it."""
        self._faults(name)[0].kill()

    def pending(self, name: str) -> int:
        """Faults planned for ``name`` that have not fired yet."""
        return self._faults(name)[1].pending()

    def clear(self, name: str) -> None:
        """Cancel every fault planned for ``name``."""
        self._faults(name)[1].clear()

    def close(self) -> None:
        """Cancel every fault this injector planned that has not fired yet.

        The pytest fixture calls it after the test, before the systems stop,
        so a leftover hang or crash cannot disturb the shutdown.
        """
        planned, self._planned = self._planned, []
        for plan in planned:
            plan.clear()
