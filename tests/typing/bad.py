"""Mistakes ``mypy --strict`` must report (test_mypy.py checks each ``# E:``).

Each marked line holds one mistake; the comment names mypy's error code.
"""

from __future__ import annotations

import pykka

from regisseur.actors import Actor, ActorSystem
from regisseur.messages import ChildFailed, ChildRestarted
from tests.typing.good import Counter, CounterProxy, on_failed


class Other(Actor):
    pass


def use(system: ActorSystem) -> None:
    proxy = system.proxy("counter", CounterProxy)
    proxy.add("two")  # E: arg-type
    name: str = proxy.total.get()  # E: assignment
    wrong: pykka.ActorRef[Other] = system.ref("counter", Counter)  # E: arg-type
    system.events.subscribe(on_failed, ChildRestarted)  # E: arg-type
    system.events.subscribe(on_failed, ChildFailed, ChildRestarted)  # E: arg-type
    system.events.subscribe(on_failed)  # E: arg-type
    system.events.subscribe(lambda event: event.delay, ChildFailed)  # E: attr-defined
    system.proxy("counter", Counter)  # E: type-var
    print(name, wrong)
