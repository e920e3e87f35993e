"""The one planned next run of a periodic actor (servers and services).

A periodic actor runs its work on a message it sends itself, now or after
a timer. At most one run may be planned: planning again, or cancelling,
voids the one before, also when its message is already in the mailbox (a
timer that fired just before it was cancelled). Each plan carries a ticket
and the actor's incarnation; only the message of the current plan of the
current incarnation is ``due``.

Threads: used only on its actor's thread (``schedule`` and ``tell`` are
safe from there). Failures: none of its own; a run that fails is the
actor's failure, and the actor plans again on resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regisseur.actors.actor import Actor
    from regisseur.actors.clock import TimerHandle

__all__ = ["PlannedRun", "RunTick"]


@dataclass(frozen=True, slots=True)
class RunTick:
    """The message of a planned run (ignored unless it is the current plan)."""

    incarnation: int
    ticket: int


class PlannedRun:
    """At most one planned run of ``actor``; see the module docstring."""

    __slots__ = ("_actor", "_ticket", "_timer")

    def __init__(self, actor: Actor) -> None:
        self._actor = actor
        self._ticket = 0
        self._timer: TimerHandle | None = None

    def cancel(self) -> None:
        """Drop the planned run: cancel its timer and void a tick already queued."""
        self._ticket += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def soon(self) -> None:
        """Plan the next run for now (replacing any planned before)."""
        self.cancel()
        self._actor.actor_ref.tell(RunTick(self._actor.actor_incarnation, self._ticket))

    def after(self, delay: float) -> None:
        """Plan the next run ``delay`` seconds from now (replacing any planned before)."""
        self.cancel()
        self._timer = self._actor.schedule(
            delay, RunTick(self._actor.actor_incarnation, self._ticket)
        )

    def due(self, tick: RunTick) -> bool:
        """True if ``tick`` is the current plan (which it then uses up)."""
        if tick.incarnation != self._actor.actor_incarnation or tick.ticket != self._ticket:
            return False
        self._timer = None
        return True
