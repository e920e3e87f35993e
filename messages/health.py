"""Health reports: an immutable tree describing a running system."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regisseur.messages.lifecycle import HEALTH_STATES, Lifecycle

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
        status = self.status
        if not isinstance(status, Lifecycle):
            status = Lifecycle.of(status, "HealthReport.status")
            object.__setattr__(self, "status", status)
        if status not in HEALTH_STATES:
            allowed = ", ".join(sorted(s.value for s in HEALTH_STATES))
            msg = f"HealthReport.status {status.value!r} is not a health state (one of: {allowed})"
            raise ValueError(msg)

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
