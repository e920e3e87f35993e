"""The actor runtime: supervised Pykka actors, clocks, events and the system.

Import the public names from here::

    from regisseur.actors import ActorSystem, Actor
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from regisseur.actors._cell import UnhealthyError
from regisseur.actors._fork import SystemForkedError
from regisseur.actors._version import __version__ as __version__
from regisseur.actors.actor import Actor
from regisseur.actors.clock import Clock, ManualClock, RealClock, TimerHandle
from regisseur.actors.errors import (
    ActorStoppedError,
    RegisseurError,
    UnknownActorError,
    WaitTimeoutError,
)
from regisseur.actors.events import EventBus, Subscription
from regisseur.actors.log import JsonFormatter, configure_logging, get_logger
from regisseur.actors.resource import resource

if TYPE_CHECKING:
    from regisseur.actors.database import DatabaseError
    from regisseur.actors.lease import InstanceHeldError
    from regisseur.actors.server import ServerActor
    from regisseur.actors.service import ServiceActor
    from regisseur.actors.system import ActorSystem

# Imported on first use (PEP 562). ActorSystem builds on ``supervision``,
# which itself builds on this package's runtime modules, so importing it
# eagerly here would make the import order matter; the database and lease
# modules load SQLAlchemy, and the server and service actors asyncio,
# which programs that never use them (the command line) should not pay for.
_LAZY = {
    "ActorSystem": "regisseur.actors.system",
    "DatabaseError": "regisseur.actors.database",
    "InstanceHeldError": "regisseur.actors.lease",
    "ServerActor": "regisseur.actors.server",
    "ServiceActor": "regisseur.actors.service",
}

__all__ = [
    "Actor",
    "ActorStoppedError",
    "ActorSystem",
    "Clock",
    "DatabaseError",
    "EventBus",
    "InstanceHeldError",
    "JsonFormatter",
    "ManualClock",
    "RealClock",
    "RegisseurError",
    "ServerActor",
    "ServiceActor",
    "Subscription",
    "SystemForkedError",
    "TimerHandle",
    "UnhealthyError",
    "UnknownActorError",
    "WaitTimeoutError",
    "configure_logging",
    "get_logger",
    "resource",
]


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        msg = f"module 'regisseur.actors' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
