"""Resources as children: an engine, an HTTP session or a cache as a stage.

``resource(name, open, close=None, check=None, ...)`` returns a
``ChildSpec`` whose actor calls ``open()`` on start (its value becomes the
resource), ``check(value)`` as its health, and ``close(value)`` on stop and
before a restart. Resource stages take part in the start order, health
checks and rollback like any child, and dependents reach the value with
``self.resource(name)`` (or ``system.resource(name)``) while it is running.

The value is shared with other threads: it should be thread-safe (an
engine, a connection pool, a ``requests.Session`` used read-mostly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors.actor import Actor

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.supervision.spec import ChildSpec

__all__ = ["ResourceActor", "resource"]


class ResourceActor(Actor):
    """Opens, checks and closes one resource; see the module docstring."""

    def __init__(
        self,
        opener: Callable[[], Any],
        closer: Callable[[Any], object] | None = None,
        checker: Callable[[Any], object] | None = None,
    ) -> None:
        super().__init__()
        self._open = opener
        self._close = closer
        self._check = checker
        self.value: Any = None

    def on_start(self) -> None:
        self.value = self._open()
        self.system._resources.publish(self.name, self.value)

    def health(self) -> bool:
        if self._check is None:
            return True
        return bool(self._check(self.value))

    def on_stop(self) -> None:
        self.system._resources.withdraw(self.name)
        if self._close is not None:
            self._close(self.value)


def resource(
    name: str,
    open: Callable[[], Any],
    close: Callable[[Any], object] | None = None,
    check: Callable[[Any], object] | None = None,
    **spec: Any,
) -> ChildSpec:
    """A ``ChildSpec`` for a resource stage (other ``ChildSpec`` fields as kwargs)."""
    from regisseur.supervision.spec import ChildSpec

    for label, func in (("open", open), ("close", close), ("check", check)):
        if func is not None and not callable(func):
            msg = f"resource {name!r}: {label} must be callable, got {func!r}"
            raise TypeError(msg)
    if open is None:
        msg = f"resource {name!r}: open is required"
        raise TypeError(msg)
    return ChildSpec(name, ResourceActor, args=(open, close, check), **spec)
