"""What a supervisor does about a failure: strategies, restart types, directives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, TypeAlias

from regisseur.actors.clock import check_duration
from regisseur.supervision.errors import FatalError

__all__ = ["AutoShutdown", "Decider", "Directive", "Restart", "Strategy", "default_decider"]


class Strategy(str, Enum):
    """Which children restart when one fails.

    * ``ONE_FOR_ONE``: only the failed child.
    * ``ONE_FOR_ALL``: every child (stopped in reverse start order, started
      again in start order).
    * ``REST_FOR_ONE``: the failed child and every child that depends on it,
      transitively (by ``ChildSpec.depends_on``).
    """

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(str, Enum):
    """When a child is restarted.

    * ``PERMANENT``: always, after a failure and after it stopped itself
      (``self.stop()``).
    * ``TRANSIENT``: only after a failure.
    * ``TEMPORARY``: never; a failed temporary child is stopped, and one
      stopped by a sibling's ONE_FOR_ALL / REST_FOR_ONE restart stays
      stopped (a dynamic one is removed).

    Whatever the type, ``ref.stop()`` stops a child for good (as in Pykka);
    ``system.restart_child(name)`` starts a stopped one again.
    """

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class AutoShutdown(str, Enum):
    """When a supervisor ends itself because significant children ended.

    A significant child (``ChildSpec(significant=True)``, TRANSIENT or
    TEMPORARY) ends *by itself* when it stops itself (``self.stop()``) or
    gives up (STOP, ``max_failures``); being stopped by ``ref.stop()``,
    ``stop_child`` or its supervisor does not count.

    * ``NEVER``: never (the default); significant children are refused.
    * ``ANY_SIGNIFICANT``: as soon as one significant child ended.
    * ``ALL_SIGNIFICANT``: once no significant child is left running.
    """

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


class _Kind(str, Enum):
    RESUME = "resume"
    RESTART = "restart"
    STOP = "stop"
    ESCALATE = "escalate"


@dataclass(frozen=True, slots=True)
class Directive:
    """A supervisor's answer to a failure.

    ``RESUME`` keeps the instance and its state and goes on with the next
    message; ``RESTART`` builds a fresh instance after the child's backoff
    delay; ``Directive.restart_after(s)`` restarts after exactly ``s`` seconds;
    ``STOP`` stops the child for good (reported failed); ``ESCALATE`` fails
    the supervisor itself, handing the decision to its parent.
    """

    kind: _Kind
    delay: float | None = None

    RESUME: ClassVar[Directive]
    RESTART: ClassVar[Directive]
    STOP: ClassVar[Directive]
    ESCALATE: ClassVar[Directive]

    @classmethod
    def restart_after(cls, seconds: float) -> Directive:
        """Restart after ``seconds`` (instead of the backoff delay)."""
        return cls(_Kind.RESTART, check_duration(seconds, "restart_after(seconds)"))

    def __repr__(self) -> str:
        if self.delay is not None:
            return f"Directive.restart_after({self.delay})"
        return f"Directive.{self.kind.name}"


Directive.RESUME = Directive(_Kind.RESUME)
Directive.RESTART = Directive(_Kind.RESTART)
Directive.STOP = Directive(_Kind.STOP)
Directive.ESCALATE = Directive(_Kind.ESCALATE)

Decider: TypeAlias = Callable[[Exception], "Directive | None"]


def default_decider(exc: BaseException | None) -> Directive:
    """``FatalError`` (and subclasses) → ``STOP``; anything else → ``RESTART``."""
    if isinstance(exc, FatalError):
        return Directive.STOP
    return Directive.RESTART
