"""Pykka proxies bound to a cell, so that they outlive restarts.

Pykka's ``ActorProxy`` keeps the one actor instance it was made for and
discovers attributes on it. A regisseur actor's ref outlives its instances
(a restart builds a new one), so a proxy made before a restart would list
the dead instance's attributes. :class:`CellProxy` reads the cell's current
incarnation instead, and forgets what it learnt when that changes; calls
and attribute reads always go through the mailbox to the live instance.

Threads: any caller's thread. Attribute discovery reads the instance from
that thread, as Pykka's does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka

if TYPE_CHECKING:
    from regisseur.actors._cell import Ref

__all__ = ["CellProxy"]


class CellProxy(pykka.ActorProxy[Any]):
    """An ``ActorProxy`` that follows its actor across restarts."""

    actor_ref: Ref

    @property
    def _actor(self) -> Any:
        """The current incarnation (the last one while a restart runs)."""
        instance = self.actor_ref.current_instance()
        known = self.__dict__.get("_seen")
        if instance is None:
            return known
        if instance is not known:
            # A new incarnation: what was learnt about the old one is stale.
            self.__dict__["_seen"] = instance
            if known is not None:
                self.__dict__["_known_attrs"] = {}
                self.__dict__["_actor_proxies"] = {}
                self.__dict__["_callable_proxies"] = {}
        return instance

    @_actor.setter
    def _actor(self, value: Any) -> None:  # Pykka's __init__ sets it once
        self.__dict__["_seen"] = value

    def __getattr__(self, name: str) -> Any:
        self._actor  # noqa: B018 - notice a new incarnation before the lookup
        return super().__getattr__(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellProxy):
            return False
        return self.actor_ref.actor_urn == other.actor_ref.actor_urn and (
            self._attr_path == other._attr_path
        )

    def __hash__(self) -> int:
        return hash((self.actor_ref.actor_urn, self._attr_path))
