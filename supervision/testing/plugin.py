"""pytest plugin (entry point ``regisseur``): fixtures for testing actors.

* ``manual_clock``: a fresh ``ManualClock`` at 0.
* ``actor_system``: a started ``ActorSystem`` on that clock with no
  children (add them with ``actor_system.spawn``); stopped after the test,
  and the test fails if any of its actor threads is still alive.
* ``system_factory``: ``system_factory(children, **kwargs)`` starts more
  systems on the same clock, with the same teardown.
* ``faults``: a ``FaultInjector`` for the test's systems (``actor_system``
  and those made by ``system_factory``; an actor name must then be in one
  of them). Faults that have not fired are cancelled after the test.
* ``probe``: a ``Probe`` recording every event of the test's systems,
  including those ``system_factory`` makes later (from before their start,
  so ``ChildStarted`` is recorded). Closed after the test.

Neither ``faults`` nor ``probe`` makes a system: a test that only uses
``system_factory`` gets no extra, empty ``actor_system``.

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


class _Systems:
    """The systems one test made, and the fixtures that follow them (test thread)."""

    def __init__(self) -> None:
        self.made: list[ActorSystem] = []
        self._followers: list[Callable[[ActorSystem], None]] = []

    def add(self, system: ActorSystem) -> None:
        self.made.append(system)
        for follower in self._followers:
            follower(system)

    def follow(self, follower: Callable[[ActorSystem], None]) -> None:
        """Call ``follower`` with every system made so far and every later one."""
        self._followers.append(follower)
        for system in self.made:
            follower(system)


@pytest.fixture
def _regisseur_systems() -> _Systems:
    return _Systems()


@pytest.fixture
def system_factory(
    manual_clock: ManualClock,
    tmp_path_factory: pytest.TempPathFactory,
    _regisseur_systems: _Systems,
) -> Iterator[Callable[..., ActorSystem]]:
    """Start systems on ``manual_clock``; all are stopped and leak-checked after.

    Each system gets its own SQLite file in a temporary directory unless
    ``database_url`` is given.
    """
    from regisseur.actors.system import ActorSystem

    systems = _regisseur_systems

    def make(children: Any = (), **kwargs: Any) -> ActorSystem:
        kwargs.setdefault("clock", manual_clock)
        if "database_url" not in kwargs:
            folder = tmp_path_factory.mktemp("regisseur")
            kwargs["database_url"] = f"sqlite:///{folder / 'system.db'}"
        system = ActorSystem(children, **kwargs)
        systems.add(system)  # before start: a probe sees the start's events
        system.start()
        return system

    yield make
    _stop_and_check(systems.made)


@pytest.fixture
def actor_system(system_factory: Callable[..., ActorSystem]) -> ActorSystem:
    """A running system on the manual clock, stopped and leak-checked after."""
    return system_factory()


@pytest.fixture
def faults(
    system_factory: Callable[..., ActorSystem], _regisseur_systems: _Systems
) -> Iterator[FaultInjector]:
    """A FaultInjector for the test's systems; unfired faults are cancelled after."""
    from regisseur.supervision.testing.faults import FaultInjector

    systems = _regisseur_systems
    injector = FaultInjector._over(lambda: [s for s in systems.made if s.running])
    yield injector
    injector.close()


@pytest.fixture
def probe(
    system_factory: Callable[..., ActorSystem], _regisseur_systems: _Systems
) -> Iterator[Probe]:
    """A Probe recording every event of the test's systems; closed after."""
    from regisseur.supervision.testing.probe import Probe

    recorder = Probe._unbound()
    _regisseur_systems.follow(recorder.watch)
    yield recorder
    recorder.close()
