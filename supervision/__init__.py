"""Supervision: child specs, supervisors, strategies, directives and backoff.

See :mod:`regisseur.supervision.supervisor` for how failures are handled and
:mod:`regisseur.supervision.testing` for the testing kit.

The names below are imported on first use (PEP 562), so that importing a
submodule (the pytest plugin in :mod:`regisseur.supervision.testing.plugin`
above all) does not load the actor runtime.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regisseur.supervision.backoff import Backoff
    from regisseur.supervision.directive import (
        AutoShutdown,
        Directive,
        Restart,
        Strategy,
        default_decider,
    )
    from regisseur.supervision.errors import EscalatedError, FatalError, StartupError
    from regisseur.supervision.protocol import ChildCounts, ChildStatus
    from regisseur.supervision.spec import ChildSpec
    from regisseur.supervision.supervisor import Supervisor

_HOMES = {
    "AutoShutdown": "directive",
    "Backoff": "backoff",
    "ChildCounts": "protocol",
    "ChildSpec": "spec",
    "ChildStatus": "protocol",
    "Directive": "directive",
    "EscalatedError": "errors",
    "FatalError": "errors",
    "Restart": "directive",
    "StartupError": "errors",
    "Strategy": "directive",
    "Supervisor": "supervisor",
    "default_decider": "directive",
}

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildCounts",
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module 'regisseur.supervision' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
