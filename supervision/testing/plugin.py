"""pytest plugin (entry point ``regisseur``): fixtures for testing actors.

* ``manual_clock``: a fresh ``ManualClock`` at 0.
* ``actor_system``: a started ``ActorSystem`` on that clock with no
  children (add them with ``actor_system.spawn``); stopped after the test,
  and the test fails if any of its actor threads is still alive.
* ``system_factory``: ``system_factory(children, **kwargs)`` starts more
  systems on the same clock, with the same teardown.
* ``faults``: a ``FaultInjector`` for ``actor_system``.
* ``probe``: a ``Probe`` recording every event of ``actor_system``.

Registering the plugin imports nothing of the runtime: pytest loads it into
every test session of a project that has regisseur installed, including
suites that never use it (and applications with modules of their own named
``actors`` or ``messages``). Each fixture imports what it needs when it is
first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from regisseur.actors.clock import ManualClock
    from regisseur.actors.system import ActorSystem
    from regisseur.supervision.testing.faults import FaultInjector
    from regisseur.supervision.testing.probe import Probe

__all__ = ["actor_system", "faults", "manual_clock", "probe", "system_factory"]

_JOIN_TIMEOUT = 5.0


def _stop_and_check(systems: list[ActorSystem]) -> None:
    leaked: list[str] = []
    for system in reversed(systems):
        system.stop()
        for thread in system.threads():
            thread.join(_JOIN_TIMEOUT)
            if thread.is_alive():
                leaked.append(thread.name)
    if leaked:
        pytest.fail(f"actor threads left running after the test: {', '.join(leaked)}")


@pytest.fixture
def manual_clock() -> ManualClock:
    """A ManualClock at time 0; advance it to fire timers."""
    from regisseur.actors.clock import ManualClock

    return ManualClock()


@pytest.fixture
def system_factory(
    manual_clock: ManualClock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ActorSystem]]:
    """Start systems on ``manual_clock``; all are stopped and leak-checked after.

    Each system gets its own SQLite file in a temporary directory unless
    ``database_url`` is given.
    """
    from regisseur.actors.system import ActorSystem

    systems: list[ActorSystem] = []

    def make(children: Any = (), **kwargs: Any) -> ActorSystem:
        kwargs.setdefault("clock", manual_clock)
        if "database_url" not in kwargs:
            folder = tmp_path_factory.mktemp("regisseur")
            kwargs["database_url"] = f"sqlite:///{folder / 'system.db'}"
        system = ActorSystem(children, **kwargs)
        systems.append(system)
        system.start()
        return system

    yield make
    _stop_and_check(systems)


@pytest.fixture
def actor_system(system_factory: Callable[..., ActorSystem]) -> ActorSystem:
    """A running system on the manual clock, stopped and leak-checked after."""
    return system_factory()


@pytest.fixture
def faults(actor_system: ActorSystem) -> FaultInjector:
    """A FaultInjector for ``actor_system``."""
    from regisseur.supervision.testing.faults import FaultInjector

    return FaultInjector(actor_system)


@pytest.fixture
def probe(actor_system: ActorSystem) -> Iterator[Probe]:
    """A Probe recording every event of ``actor_system``."""
    from regisseur.supervision.testing.probe import Probe

    recorder = Probe(actor_system)
    yield recorder
    recorder.close()
