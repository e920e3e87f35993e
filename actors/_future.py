"""The future behind every ``ask`` and proxy call of a regisseur actor.

A Pykka ``ThreadingFuture`` whose ``get(timeout=...)`` raises the library's
:class:`~regisseur.actors.errors.WaitTimeoutError` when the wait runs out,
so ``ref.ask``, proxy futures and ``system.ask`` raise one timeout class
(still a ``pykka.Timeout`` and a ``TimeoutError``). A ``pykka.Timeout``
raised by the handler itself is passed on unchanged.

Threads: ``set`` on the actor's thread, ``get`` on any caller's thread.
"""

from __future__ import annotations

from typing import Any

import pykka

from regisseur.actors.errors import WaitTimeoutError

__all__ = ["ReplyFuture"]


class ReplyFuture(pykka.ThreadingFuture[Any]):
    """A ``ThreadingFuture`` that times out with ``WaitTimeoutError``."""

    def get(self, *, timeout: float | None = None) -> Any:
        try:
            return super().get(timeout=timeout)
        except pykka.Timeout as exc:
            if isinstance(exc, WaitTimeoutError) or self._result is not None:
                raise  # the handler's own exception, or already ours
            msg = f"no reply within {timeout:g}s" if timeout is not None else "no reply"
            raise WaitTimeoutError(msg) from None
