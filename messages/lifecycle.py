"""One lifecycle vocabulary for cells, supervised children, the system and health.

``Lifecycle`` is a ``str`` enum: a member equals its string value
(``Lifecycle.RUNNING == "running"``), prints as it (``str()``, f-strings)
and serialises to it in JSON, so code and consumers that compare or store
the strings keep working.

Each place that has a lifecycle uses a subset, listed here as data (a test
checks each subset against what the code assigns, so a state declared but
never reached fails the build):

==============  =============================================================
place           states
==============  =============================================================
a cell          new, starting, running, failed (awaiting its supervisor's
                decision), idle (torn down, thread kept), dead (thread gone),
                stopped — :data:`CELL_STATES`
a child         starting, running, restarting, stopped, failed — as its
                supervisor records it (``ChildInfo.status``),
                :data:`CHILD_STATES`
the system      new, starting, running, stopping, stopped, failed —
                :data:`SYSTEM_STATES`
a health        a child's states, plus paused (a running service that is
report          paused) and unresponsive (a supervisor that did not answer
                in time) — :data:`HEALTH_STATES`
==============  =============================================================

Threads: plain immutable data, safe on any thread.
"""

from __future__ import annotations

import enum

__all__ = ["CELL_STATES", "CHILD_STATES", "HEALTH_STATES", "SYSTEM_STATES", "Lifecycle"]


class Lifecycle(str, enum.Enum):
    """Where something is in its life; the values are the wire/JSON strings."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    IDLE = "idle"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    DEAD = "dead"
    UNRESPONSIVE = "unresponsive"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def of(cls, value: object, what: str = "state") -> Lifecycle:
        """``value`` (a member or its string) as a member.

        Raises ``ValueError`` naming ``what`` and the allowed values for
        anything else.
        """
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            msg = f"{what} must be one of {allowed}; got {value!r}"
            raise ValueError(msg) from None


#: The states a cell (one actor's runtime) goes through.
CELL_STATES = frozenset(
    {
        Lifecycle.NEW,
        Lifecycle.STARTING,
        Lifecycle.RUNNING,
        Lifecycle.FAILED,
        Lifecycle.IDLE,
        Lifecycle.DEAD,
        Lifecycle.STOPPED,
    }
)

#: The states a supervisor records for each of its children.
CHILD_STATES = frozenset(
    {
        Lifecycle.STARTING,
        Lifecycle.RUNNING,
        Lifecycle.RESTARTING,
        Lifecycle.STOPPED,
        Lifecycle.FAILED,
    }
)

#: The states of an ``ActorSystem``.
SYSTEM_STATES = frozenset(
    {
        Lifecycle.NEW,
        Lifecycle.STARTING,
        Lifecycle.RUNNING,
        Lifecycle.STOPPING,
        Lifecycle.STOPPED,
        Lifecycle.FAILED,
    }
)

#: The statuses a ``HealthReport`` can carry.
HEALTH_STATES = CHILD_STATES | {Lifecycle.PAUSED, Lifecycle.UNRESPONSIVE}
