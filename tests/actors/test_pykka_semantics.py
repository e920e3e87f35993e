"""Refs and proxies behave as Pykka documents them, also across restarts."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from regisseur.actors import Actor, ActorStoppedError, ActorSystem, RealClock, WaitTimeoutError
from regisseur.messages import ChildRestarted
from regisseur.supervision import Backoff, ChildSpec, Restart
from regisseur.supervision.testing import Probe


class SelfProxy(Actor):
    """Makes a proxy to itself in ``__init__``, as Pykka's docs show."""

    def __init__(self) -> None:
        super().__init__()
        self._in_future = self.actor_ref.proxy()
        self.answered = 0

    def on_receive(self, message: Any) -> Any:
        if message == "later":
            self._in_future.note.defer()
            return None
        return super().on_receive(message)

    def note(self) -> None:
        self.answered += 1


class Generations(Actor):
    """Each incarnation has an attribute of its own and a shared one."""

    incarnations = 0

    def on_start(self) -> None:
        type(self).incarnations += 1
        self.number = type(self).incarnations
        setattr(self, f"only_in_{self.number}", self.number)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        return super().on_receive(message)


class Slow(Actor):
    def on_receive(self, message: Any) -> Any:
        self.sleep(60)  # returns early when the test stops the system
        return message


@pytest.mark.timeout(10)
def test_an_actor_may_make_a_proxy_to_itself_in_init(actor_system: ActorSystem) -> None:
    ref = actor_system.spawn(ChildSpec("me", SelfProxy))
    actor_system.tell("me", "later")
    actor_system.settle()
    assert ref.proxy().answered.get(timeout=2) == 1


@pytest.mark.timeout(10)
def test_a_proxy_made_before_a_restart_reaches_the_new_instance(
    actor_system: ActorSystem, probe: Probe
) -> None:
    Generations.incarnations = 0
    ref = actor_system.spawn(ChildSpec("gen", Generations, backoff=Backoff(0)))
    proxy = ref.proxy()
    assert proxy.number.get(timeout=2) == 1
    assert proxy.only_in_1.get(timeout=2) == 1
    actor_system.tell("gen", "crash")
    probe.expect(ChildRestarted, name="gen")
    assert proxy.number.get(timeout=2) == 2
    assert proxy.only_in_2.get(timeout=2) == 2  # discovered on the new instance
    with pytest.raises(AttributeError):
        _ = proxy.only_in_1  # the dead instance's attribute is gone
    assert proxy == ref.proxy()
    assert hash(proxy) == hash(ref.proxy())


@pytest.mark.timeout(20)
@pytest.mark.parametrize("restart", list(Restart))
def test_a_blocking_stop_returns_once_the_actor_is_dead(
    actor_system: ActorSystem, restart: Restart
) -> None:
    for round_ in range(50):
        name = f"w{round_}"
        ref = actor_system.spawn(ChildSpec(name, SelfProxy, restart=restart))
        assert ref.stop() is True
        assert not ref.is_alive()
        assert ref.stop() is False
        with pytest.raises(ActorStoppedError):
            ref.tell("hello")
        with pytest.raises(pykka.ActorDeadError):  # ActorStoppedError is one
            ref.ask("hello", timeout=1)
        with pytest.raises(ActorStoppedError):
            ref.proxy()
    actor_system.settle()
    assert actor_system.names() == []


@pytest.mark.timeout(10)
def test_ref_ask_and_system_ask_time_out_with_one_error(actor_system: ActorSystem) -> None:
    ref = actor_system.spawn(ChildSpec("slow", Slow))
    with pytest.raises(WaitTimeoutError) as by_system:
        actor_system.ask("slow", "a", timeout=0.05)
    with pytest.raises(WaitTimeoutError) as by_ref:
        ref.ask("b", timeout=0.05)
    with pytest.raises(WaitTimeoutError):
        ref.ask("c", block=False).get(timeout=0.05)
    for caught in (by_system.value, by_ref.value):
        assert isinstance(caught, TimeoutError)
        assert isinstance(caught, pykka.Timeout)


class Where(Actor):
    def on_receive(self, message: Any) -> Any:
        return threading.current_thread().name


@pytest.mark.timeout(10)
def test_threads_are_named_after_the_system_and_the_actor(
    system_factory: Any, manual_clock: Any
) -> None:
    first = system_factory([ChildSpec("w", Where)], name="orders")
    second = system_factory([ChildSpec("w", Where)], name="billing")
    assert first.ask("w", "?").startswith("regisseur:orders/w#")
    assert second.ask("w", "?").startswith("regisseur:billing/w#")
    for system in (first, second):
        prefix = f"regisseur:{system.name}/"
        assert all(t.name.startswith(prefix) for t in system.threads())
    clocked = system_factory([], name="clocked", clock=RealClock())
    assert "regisseur:clocked/timers" in {t.name for t in threading.enumerate()}
    clocked.stop()
