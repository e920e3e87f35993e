"""Messages by name: ``ref``, ``ask`` and dead letters of a system.

``ActorSystem.ref/ask`` (and ``ask_async`` in ``actors.aio``) come here:
the name is looked up in the system's registry, a message for a stopped
actor becomes a dead letter. ``ActorSystem.tell``, the most frequent call
of all, does its lookup itself and comes here for the dead letter only.

Threads: any (usually the application's). ``tell`` never blocks; ``ask``
blocks until the reply, bounded by its timeout.

Failures: ``UnknownActorError`` for a name never registered,
``ActorStoppedError`` (a ``pykka.ActorDeadError``) for a stopped actor
(``tell`` publishes a dead letter instead), ``WaitTimeoutError`` when no
reply came in time, and the handler's own exception.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pykka

from regisseur.actors._typed import check_actor_type
from regisseur.actors.clock import bounded_wait, check_duration
from regisseur.actors.errors import ActorStoppedError, WaitTimeoutError
from regisseur.actors.events import BUS
from regisseur.actors.log import redact_text, safe_repr
from regisseur.actors.mailbox import NoDeadLetter
from regisseur.messages import DeadLetter

if TYPE_CHECKING:
    from regisseur.actors._cell import Cell
    from regisseur.actors.system import ActorSystem

__all__ = ["ask", "cell_to_ask", "dead_letter", "ref"]


def ref(system: ActorSystem, name: str, actor_type: type | None) -> pykka.ActorRef[Any]:
    """The ref of the live actor ``name`` (of ``actor_type``, if given)."""
    cell = system.registry.lookup(name, "ref(name)")
    if cell is None or cell.stopped.is_set():
        msg = f"actor {name!r} is stopped"
        raise ActorStoppedError(msg)
    if actor_type is not None:
        check_actor_type(name, cell.actor_class, actor_type, "ref(actor_type)")
    return cell.ref


def ask(system: ActorSystem, name: str, message: Any, timeout: float | None) -> Any:
    """Send ``message`` to ``name`` and wait up to ``timeout`` for the reply."""
    if timeout is not None:
        timeout = check_duration(timeout, "ask(timeout)")
    cell = cell_to_ask(system, name, message)
    try:
        return cell.ref.ask(message, timeout=bounded_wait(timeout))
    except pykka.Timeout:
        msg = f"no reply from {name!r} within {timeout:g}s"
        raise WaitTimeoutError(msg) from None


def cell_to_ask(system: ActorSystem, name: str, message: Any) -> Cell:
    """The live cell of ``name`` for an ask (sync or async), or the error.

    ``UnknownActorError`` for a name never registered; a stopped actor
    makes ``message`` a dead letter and raises ``ActorStoppedError``.
    """
    cell = system.registry.lookup(name, "ask(name)")
    if cell is None or cell.stopped.is_set():
        dead_letter(system, name, message, "stopped")
        msg = f"actor {name!r} is stopped"
        raise ActorStoppedError(msg)
    return cell


def dead_letter(system: ActorSystem, recipient: str, message: Any, reason: str) -> None:
    """Publish ``message`` as a ``DeadLetter`` and log a warning (any thread).

    The event bus's own messages (it failed with one in hand, or it had
    stopped) are not published again: the bus counts and logs them. A
    ``NoDeadLetter`` is dropped: its loss loses nothing.
    """
    if isinstance(message, NoDeadLetter):
        return
    if recipient == BUS and system.events.lost(message, reason):
        return
    if system.log.is_enabled_for(logging.WARNING):
        system.log.warning(
            "dead_letter",
            recipient=recipient,
            message_type=type(message).__name__,
            # Redact the whole text first: a cut inside a secret would hide
            # it from the redaction. repr() of a hostile message may raise.
            message=redact_text(safe_repr(message))[:200],
            reason=reason,
        )
    if not system.events.closed:
        system.events.publish(DeadLetter(recipient, message, reason))
