"""A user's module that must pass ``mypy --strict`` (checked by test_mypy.py).

It uses the typed ways to address actors and subscribe to events; never
run, only type-checked.
"""

from __future__ import annotations

import pykka
from pykka.typing import ActorMemberMixin, proxy_field, proxy_method

from regisseur.actors import Actor, ActorSystem
from regisseur.messages import ChildFailed, ChildRestarted, Event
from regisseur.supervision import ChildSpec


class Counter(Actor):
    total: int = 0

    def __init__(self, start: int = 0) -> None:
        super().__init__()
        self.total = start

    def add(self, n: int) -> int:
        self.total += n
        return self.total


class CounterProxy(ActorMemberMixin, pykka.ActorProxy[Counter]):
    add = proxy_method(Counter.add)
    total = proxy_field(Counter.total)


def on_failed(event: ChildFailed) -> None:
    print(event.error)


def on_failed_or_restarted(event: ChildFailed | ChildRestarted) -> None:
    print(event.name)


def on_any(event: Event) -> None:
    print(event)


SPEC = ChildSpec("counter", Counter, kwargs={"start": 1})


def use(system: ActorSystem) -> int:
    ref: pykka.ActorRef[Counter] = system.ref("counter", Counter)
    proxy = system.proxy("counter", CounterProxy)
    added: int = proxy.add(2).get()
    total: int = proxy.total.get()
    system.events.subscribe(on_failed, ChildFailed)
    system.events.subscribe(on_failed_or_restarted, ChildFailed, ChildRestarted)
    system.events.subscribe(on_any)
    system.events.subscribe(on_any, ChildFailed, ChildRestarted)
    system.events.subscribe(lambda event: print(event.error), ChildFailed)
    system.events.subscribe(ref, ChildFailed)
    return added + total
