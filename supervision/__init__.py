"""Supervision: child specs, supervisors, strategies, directives and backoff.

See :mod:`supervision.supervisor` for how failures are handled and
:mod:`supervision.testing` for the testing kit.
"""

from __future__ import annotations

from supervision.backoff import Backoff
from supervision.directive import Directive, Restart, Strategy, default_decider
from supervision.errors import EscalatedError, FatalError, StartupError
from supervision.spec import ChildSpec
from supervision.supervisor import ChildStatus, Supervisor

__all__ = [
    "Backoff",
    "ChildSpec",
    "ChildStatus",
    "Directive",
    "EscalatedError",
    "FatalError",
    "Restart",
    "StartupError",
    "Strategy",
    "Supervisor",
    "default_decider",
]
