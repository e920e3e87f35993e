"""Typed handles at run time: ``ref(name, Class)``, ``proxy(name, Proxy)``, spec arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka
import pytest
from pykka.typing import ActorMemberMixin, proxy_field, proxy_method

from regisseur.actors import Actor, ServerActor
from regisseur.messages import ChildFailed, ChildRestarted, Event
from regisseur.supervision import ChildSpec, Supervisor

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem

pytestmark = pytest.mark.timeout(30)


class Counter(Actor):
    total: int = 0

    def __init__(self, start: int = 0, *, step: int = 1) -> None:
        super().__init__()
        self.total = start
        self.step = step

    def add(self, n: int) -> int:
        self.total += n * self.step
        return self.total


class SpecialCounter(Counter):
    pass


class CounterProxy(ActorMemberMixin, pykka.ActorProxy[Counter]):
    add = proxy_method(Counter.add)
    total = proxy_field(Counter.total)


class Other(Actor):
    pass


class OtherProxy(pykka.ActorProxy[Other]):
    pass


class Poller(ServerActor):
    def run_loop(self) -> None:
        pass


def test_ref_with_the_actor_class_checks_what_runs_under_the_name(
    actor_system: ActorSystem,
) -> None:
    actor_system.spawn(ChildSpec("counter", SpecialCounter, args=(5,)))
    ref = actor_system.ref("counter", Counter)  # a subclass is a Counter
    assert ref.proxy().add(2).get() == 7
    with pytest.raises(TypeError, match="actor 'counter' is a SpecialCounter, not a Other"):
        actor_system.ref("counter", Other)
    with pytest.raises(TypeError, match="ref\\(actor_type\\) must be an actor class"):
        actor_system.ref("counter", "Counter")  # type: ignore[call-overload]


def test_proxy_is_typed_by_a_pykka_proxy_class(actor_system: ActorSystem) -> None:
    actor_system.spawn(ChildSpec("counter", Counter, kwargs={"step": 10}))
    proxy = actor_system.proxy("counter", CounterProxy)
    assert proxy.add(2).get() == 20
    assert proxy.total.get() == 20
    with pytest.raises(TypeError, match="is a Counter, not a Other"):
        actor_system.proxy("counter", OtherProxy)
    with pytest.raises(TypeError, match="based on pykka.ActorProxy"):
        actor_system.proxy("counter", Counter)  # type: ignore[type-var]


def test_typed_subscriptions_deliver_as_before(actor_system: ActorSystem) -> None:
    seen: list[Event] = []

    def on_either(event: ChildFailed | ChildRestarted) -> None:
        seen.append(event)

    with actor_system.events.subscribe(on_either, ChildFailed, ChildRestarted):
        actor_system.events.publish(ChildFailed("x", "E: e"))
        actor_system.events.publish(ChildRestarted("x"))
        actor_system.settle()
    assert seen == [ChildFailed("x", "E: e"), ChildRestarted("x")]


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((), {"stepp": 2}, "unexpected keyword argument 'stepp'"),
        ((1, 2), {}, "too many positional arguments"),
        ((1,), {"start": 2}, "multiple values for argument 'start'"),
    ],
)
def test_child_spec_checks_its_arguments_when_made(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(TypeError, match=rf"ChildSpec 'c'.*Counter\(start=0, \*, step=1\).*{error}"):
        ChildSpec("c", Counter, args=args, kwargs=kwargs)


def test_child_spec_names_a_missing_argument_and_accepts_what_fits() -> None:
    with pytest.raises(TypeError, match="missing a required argument: 'server_id'"):
        ChildSpec("p", Poller)
    with pytest.raises(TypeError, match="unexpected keyword argument 'intervall'"):
        ChildSpec("p", Poller, args=(1,), kwargs={"intervall": 5})
    ChildSpec("p", Poller, args=(1,), kwargs={"interval": 5})
    ChildSpec("c", Counter, args=(1,), kwargs={"step": 2})
    ChildSpec("s", Supervisor([ChildSpec("c", Counter)]))
