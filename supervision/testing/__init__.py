"""The testing kit: manual clock, event probe, fault injection, pytest fixtures.

The fixtures (``manual_clock``, ``actor_system``, ``system_factory``,
``faults``, ``probe``) come from :mod:`supervision.testing.plugin`, which
pytest loads automatically once regisseur is installed.
"""

from __future__ import annotations

from actors.clock import ManualClock
from supervision.testing.faults import FaultInjector, InjectedFault
from supervision.testing.probe import Probe

__all__ = ["FaultInjector", "InjectedFault", "ManualClock", "Probe"]
