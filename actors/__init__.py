"""The actor runtime: supervised Pykka actors, clocks, events and the system.

Import the public names from here::

    from actors import ActorSystem, Actor
"""

from __future__ import annotations

from actors.actor import Actor
from actors.clock import Clock, ManualClock, RealClock, TimerHandle
from actors.errors import UnknownActorError
from actors.events import EventBus, Subscription
from actors.log import JsonFormatter, configure_logging, get_logger
from actors.system import ActorSystem

__all__ = [
    "Actor",
    "ActorSystem",
    "Clock",
    "EventBus",
    "JsonFormatter",
    "ManualClock",
    "RealClock",
    "Subscription",
    "TimerHandle",
    "UnknownActorError",
    "configure_logging",
    "get_logger",
]
