"""Events published on a system's event bus.

Every event is a frozen, slotted dataclass: it is created once by the actor
that observed what happened and then shared, read-only, by every subscriber
on any thread. Names are in the past tense; ``error`` fields are short texts
(``"ValueError: bad row"``), never exception objects, so events can be logged,
stored and compared safely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChildFailed",
    "ChildGaveUp",
    "ChildRestarted",
    "ChildRestarting",
    "ChildStarted",
    "ChildStopTimedOut",
    "ChildStopped",
    "DeadLetter",
    "Event",
    "StartupFailed",
    "SupervisorEscalated",
    "SupervisorShutDown",
    "SystemFailed",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event, so subscribers can ask for all of them."""


@dataclass(frozen=True, slots=True)
class DeadLetter(Event):
    """A message that no actor handled.

    ``reason`` says why: ``"stopped"`` (the recipient was not running),
    ``"unhandled"`` (its ``on_receive`` did not handle the message) or
    ``"failed: <error>"`` (handling it raised, so it was dropped).
    """

    recipient: str
    message: Any
    reason: str


@dataclass(frozen=True, slots=True)
class ChildStarted(Event):
    """A child finished ``on_start`` (and passed its health check)."""

    name: str


@dataclass(frozen=True, slots=True)
class ChildFailed(Event):
    """A child raised out of ``on_start``, ``on_receive`` or a proxy call."""

    name: str
    error: str


@dataclass(frozen=True, slots=True)
class ChildRestarting(Event):
    """The supervisor will restart ``name`` after ``delay`` seconds."""

    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class ChildRestarted(Event):
    """A child was restarted and its ``on_start`` ran again."""

    name: str


@dataclass(frozen=True, slots=True)
class ChildStopped(Event):
    """A child stopped and will not be restarted."""

    name: str


@dataclass(frozen=True, slots=True)
class ChildStopTimedOut(Event):
    """A child did not stop within its ``shutdown_timeout`` and was abandoned."""

    name: str
    timeout: float


@dataclass(frozen=True, slots=True)
class ChildGaveUp(Event):
    """The supervisor stopped restarting ``name`` (``max_failures`` or STOP)."""

    name: str
    error: str


@dataclass(frozen=True, slots=True)
class SupervisorEscalated(Event):
    """Supervisor ``name`` exceeded its restart intensity and failed upward."""

    name: str
    error: str


@dataclass(frozen=True, slots=True)
class SupervisorShutDown(Event):
    """Supervisor ``name`` ended itself: a significant child ``child`` ended
    (``auto_shutdown``). Its children were stopped; its parent applies its
    restart type (for the root: the system's work is done)."""

    name: str
    child: str


@dataclass(frozen=True, slots=True)
class StartupFailed(Event):
    """Child ``name`` failed to start; ``rolled_back`` lists what was stopped."""

    name: str
    error: str
    rolled_back: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SystemFailed(Event):
    """The root supervisor failed: every actor of the system was stopped."""

    error: str
