"""Health reports: an immutable tree describing a running system."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regisseur.messages.lifecycle import Lifecycle

__all__ = ["HealthReport"]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One node of ``system.health()``.

    ``status`` is a :class:`Lifecycle` (a ``str`` enum: it compares equal to
    and serialises as ``"running"`` etc.): starting, running, restarting,
    paused, stopped, failed or unresponsive (``HEALTH_STATES``); a string
    is accepted and converted, anything else is a ``ValueError`` naming it.
    ``healthy`` combines the status with the actor's own
    ``health()`` answer (kept in ``details``). ``uptime`` counts seconds on
    the system clock since the current incarnation started.
    """

    name: str
    status: Lifecycle
    healthy: bool
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    uptime: float | None = None
    details: Any = None
    description: str = ""
    children: tuple[HealthReport, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.status, Lifecycle):
            object.__setattr__(self, "status", Lifecycle.of(self.status, "HealthReport.status"))

    def find(self, name: str) -> HealthReport | None:
        """The report named ``name`` in this subtree, or None."""
        if self.name == name:
            return self
        for child in self.children:
            found = child.find(name)
            if found is not None:
                return found
        return None

    def walk(self) -> list[HealthReport]:
        """This report and every descendant, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out
