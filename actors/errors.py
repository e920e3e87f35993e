"""The library's error hierarchy, the runtime's errors, and how failures are described.

Every exception regisseur raises is a :class:`RegisseurError`, so an
application can catch all of them in one place. Each one also keeps the
built-in (or Pykka) class users already catch: :class:`UnknownActorError`
is a ``LookupError``, :class:`WaitTimeoutError` a ``TimeoutError`` and a
``pykka.Timeout``, :class:`ActorStoppedError` a ``pykka.ActorDeadError``.

Threads: plain data; raised on whichever thread found the problem.
"""

from __future__ import annotations

import pykka

__all__ = [
    "ActorStoppedError",
    "RegisseurError",
    "UnknownActorError",
    "WaitTimeoutError",
    "describe_error",
]

_MAX_ERROR_TEXT = 500


class RegisseurError(Exception):
    """Base class of every exception the library raises."""


class WaitTimeoutError(RegisseurError, TimeoutError, pykka.Timeout):
    """A wait ran out of time: an ask's reply, ``settle()``, a download's end.

    One class for ``system.ask`` and ``ref.ask`` (and proxy futures), so
    code that catches ``TimeoutError`` or ``pykka.Timeout`` catches both.
    """


class ActorStoppedError(RegisseurError, pykka.ActorDeadError):
    """The actor is stopped for good: it takes no more messages.

    A ``pykka.ActorDeadError``, as Pykka raises for a dead actor.
    """


class UnknownActorError(RegisseurError, LookupError):
    """No actor of that name was ever registered in this system."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        hint = ""
        if known is not None:
            shown = ", ".join(repr(k) for k in sorted(known)[:10])
            hint = f"; known names: {shown}" if shown else "; the system has no actors"
        super().__init__(f"no actor named {name!r} in this system{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


def describe_error(exc: BaseException) -> str:
    """Short, log-safe text for an exception: ``"Type: message"``.

    Credentials in the message are redacted and the text is capped, so it can
    travel in events and health reports.
    """
    from regisseur.actors.log import redact_text

    text = str(exc)
    name = type(exc).__name__
    out = f"{name}: {text}" if text else name
    out = redact_text(out)
    if len(out) > _MAX_ERROR_TEXT:
        out = out[: _MAX_ERROR_TEXT - 1] + "…"
    return out
