"""The testing kit: manual clock, event probe, fault injection, pytest fixtures.

The fixtures (``manual_clock``, ``actor_system``, ``system_factory``,
``faults``, ``probe``) come from :mod:`regisseur.supervision.testing.plugin`,
which pytest loads automatically once regisseur is installed. The names below
are imported on first use, so that loading the plugin does not load the
actor runtime into test sessions that never use it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regisseur.actors.clock import ManualClock
    from regisseur.supervision.testing.faults import FaultInjector, InjectedFault
    from regisseur.supervision.testing.probe import Probe

_HOMES = {
    "FaultInjector": "regisseur.supervision.testing.faults",
    "InjectedFault": "regisseur.supervision.testing.faults",
    "ManualClock": "regisseur.actors.clock",
    "Probe": "regisseur.supervision.testing.probe",
}

__all__ = ["FaultInjector", "InjectedFault", "ManualClock", "Probe"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module 'regisseur.supervision.testing' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
