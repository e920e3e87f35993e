"""Runtime checks behind the typed ways to address an actor.

``system.ref(name, Counter)`` and ``system.proxy(name, CounterProxy)`` give
mypy the actor's type; these checks make sure, when they are called, that
the actor running under ``name`` really is of that type, so a typed handle
never lies. Pure functions, any thread.
"""

from __future__ import annotations

import typing
from typing import Any

import pykka

__all__ = ["check_actor_type", "proxy_actor_type"]


def check_actor_type(name: str, actual: type, wanted: object, what: str) -> None:
    """Raise ``TypeError`` unless the actor class ``actual`` is a ``wanted``."""
    if not isinstance(wanted, type):
        msg = f"{what} must be an actor class, got {wanted!r}"
        raise TypeError(msg)
    if not issubclass(actual, wanted):
        msg = f"actor {name!r} is a {actual.__qualname__}, not a {wanted.__qualname__}"
        raise TypeError(msg)


def proxy_actor_type(proxy_type: object) -> type[Any]:
    """The actor class ``A`` of a proxy class declared as ``pykka.ActorProxy[A]``.

    Such a class types a proxy with Pykka's ``proxy_method``/``proxy_field``
    (see ``pykka.typing``). Raises ``TypeError`` naming what is missing.
    """
    if not (isinstance(proxy_type, type) and issubclass(proxy_type, pykka.ActorProxy)):
        msg = (
            "proxy_type must be a class based on pykka.ActorProxy[YourActor] "
            f"(see pykka.typing), got {proxy_type!r}"
        )
        raise TypeError(msg)
    for klass in proxy_type.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is pykka.ActorProxy:
                (actor,) = typing.get_args(base)
                if isinstance(actor, type):
                    return actor
    msg = (
        f"{proxy_type.__qualname__} must name its actor class: "
        f"class {proxy_type.__qualname__}(pykka.ActorProxy[YourActor])"
    )
    raise TypeError(msg)
