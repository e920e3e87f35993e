"""Errors raised by the actor runtime, and how failures are described."""

from __future__ import annotations

__all__ = ["UnknownActorError", "describe_error"]

_MAX_ERROR_TEXT = 500


class UnknownActorError(LookupError):
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
