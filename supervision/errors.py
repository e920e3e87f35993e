"""Exceptions that steer supervision."""

from __future__ import annotations

from regisseur.actors.errors import RegisseurError

__all__ = ["EscalatedError", "FatalError", "StartupError"]


class FatalError(RegisseurError):
    """Raise (or subclass) for a failure that restarting cannot fix.

    The default decider answers ``Directive.STOP``: the actor is stopped for
    good and reported failed, the rest of the system keeps running.
    """


class StartupError(RegisseurError, RuntimeError):
    """A child failed to start; everything started before it was stopped.

    ``child`` is the name of the child that failed (the innermost one for
    nested supervisors), ``cause`` the exception, ``rolled_back`` the names
    stopped in reverse start order.
    """

    def __init__(
        self, child: str, cause: BaseException | str, rolled_back: tuple[str, ...] = ()
    ) -> None:
        self.child = child
        self.cause = cause
        self.rolled_back = rolled_back
        from regisseur.actors.errors import describe_error  # here: actors builds on this package
        from regisseur.actors.log import redact_text

        # The text reaches the application (and its logs): credentials redacted.
        reason = redact_text(cause) if isinstance(cause, str) else describe_error(cause)
        text = f"child {child!r} failed to start: {reason}"
        if rolled_back:
            text += f" (rolled back: {', '.join(rolled_back)})"
        super().__init__(text)


class EscalatedError(RegisseurError, RuntimeError):
    """A supervisor gave up (intensity exceeded or ESCALATE) and fails upward."""

    def __init__(self, supervisor: str, reason: str) -> None:
        self.supervisor = supervisor
        self.reason = reason
        super().__init__(f"supervisor {supervisor!r} escalated: {reason}")
