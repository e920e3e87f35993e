"""The actor runtime: supervised Pykka actors, clocks, events and the system.

Import the public names from here::

    from regisseur.actors import ActorSystem, Actor
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors._fork import SystemForkedError
from regisseur.actors.actor import Actor
from regisseur.actors.clock import Clock, ManualClock, RealClock, TimerHandle
from regisseur.actors.errors import UnknownActorError
from regisseur.actors.events import EventBus, Subscription
from regisseur.actors.log import JsonFormatter, configure_logging, get_logger
from regisseur.actors.resource import resource
from regisseur.actors.server import ServerActor
from regisseur.actors.service import ServiceActor

if TYPE_CHECKING:
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
    "SystemForkedError",
    "TimerHandle",
    "UnknownActorError",
    "configure_logging",
    "get_logger",
    "resource",
]


def __getattr__(name: str) -> Any:
    # ActorSystem is imported on first use: it builds on ``supervision``,
    # which itself builds on this package's runtime modules, so importing it
    # eagerly here would make the import order matter.
    if name == "ActorSystem":
        from regisseur.actors.system import ActorSystem

        return ActorSystem
    msg = f"module 'regisseur.actors' has no attribute {name!r}"
    raise AttributeError(msg)
