"""Commands understood by every ``ServiceActor``."""

from __future__ import annotations

from dataclasses import dataclass

from regisseur.messages.commands import Command

__all__ = ["Pause", "Resume", "RunNow"]


@dataclass(frozen=True, slots=True)
class Pause(Command):
    """Stop running ``update()`` on the interval until ``Resume``."""


@dataclass(frozen=True, slots=True)
class Resume(Command):
    """Run ``update()`` on the interval again (the next run is due at once)."""


@dataclass(frozen=True, slots=True)
class RunNow(Command):
    """Run ``update()`` now, even while paused; the interval restarts after it."""
