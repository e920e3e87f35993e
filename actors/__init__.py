"""The actor runtime: supervised Pykka actors, clocks, events and the system.

Import the public names from here::

    from regisseur.actors import ActorSystem, Actor
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from regisseur.actors.actor import Actor
from regisseur.actors.clock import Clock, ManualClock, RealClock, TimerHandle
from regisseur.actors.errors import UnknownActorError
from regisseur.actors.events import EventBus, Subscription
from regisseur.actors.log import JsonFormatter, configure_logging, get_logger
from regisseur.actors.resource import resource

if TYPE_CHECKING:
    from regisseur.actors.server import ServerActor
    from regisseur.actors.service import ServiceActor
    from regisseur.actors.system import ActorSystem

__all__ = [
    "Actor",
    "ActorSystem",
    "Clock",
    "EventBus",
    "JsonFormatter",
    "ManualClock",
    "RealClock",
    "ServerActor",
    "ServiceActor",
    "Subscription",
    "TimerHandle",
    "UnknownActorError",
    "configure_logging",
    "get_logger",
    "resource",
]


# Imported on first use (PEP 562). ActorSystem builds on ``supervision``,
# which itself builds on this package's runtime modules, so importing it
# eagerly here would make the import order matter; the server and service
# actors (asyncio) are not loaded by programs that never use them, such as
# the command line.
_LAZY = {"ActorSystem": "system", "ServerActor": "server", "ServiceActor": "service"}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        msg = f"module 'regisseur.actors' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
