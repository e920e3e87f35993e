"""The event bus is a child of the system supervisor: restarted, drained, reported."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting, Event
from regisseur.supervision import ChildSpec
from regisseur.supervision.testing import FaultInjector

BUS = "regisseur.events"


@dataclass(frozen=True, slots=True)
class Tick(Event):
    n: int


class Echo(Actor):
    def on_receive(self, message: Any) -> Any:
        return message


def _bus_report(system: ActorSystem) -> Any:
    (report,) = [r for r in system.health().children if r.name == "event bus"]
    return report


def _ticks(seen: list[Any]) -> list[int]:
    return [e.n for e in seen if isinstance(e, Tick)]


@pytest.mark.timeout(20)
def test_a_crashed_bus_is_restarted_with_backoff_and_keeps_its_subscribers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    with ActorSystem([ChildSpec("e", Echo)], clock=clock, database_url=None) as system:
        seen: list[Any] = []
        system.events.subscribe(seen.append)
        system.events.flush()
        assert _bus_report(system).healthy

        FaultInjector(system).crash(BUS)
        with caplog.at_level(logging.ERROR, logger="regisseur.actors.events"):
            system.events.publish(Tick(1))  # in hand when it crashes: dropped, and said so
            system.settle()
        assert any(r.getMessage().startswith("events_dropped") for r in caplog.records)
        assert system.events.dropped == 1
        system.events.publish(Tick(2))  # while it waits for its restart: kept
        system.settle()
        report = _bus_report(system)
        assert report.status == "restarting"
        assert not report.healthy
        assert not system.healthy
        assert system.ask("e", "still answering") == "still answering"

        clock.advance(0.1)  # the bus's first backoff
        system.events.publish(Tick(3))
        system.events.flush()
        assert _ticks(seen) == [2, 3]
        assert [e.name for e in seen if isinstance(e, ChildFailed)] == [BUS]
        assert [e.name for e in seen if isinstance(e, ChildRestarting)] == [BUS]
        assert [e.name for e in seen if isinstance(e, ChildRestarted)] == [BUS]
        report = _bus_report(system)
        assert report.healthy
        assert report.restarts == 1
        assert report.details == {"subscribers": 1, "dropped": 1}
        assert system.healthy


@pytest.mark.timeout(20)
def test_a_subscription_the_bus_crashed_on_is_kept() -> None:
    clock = ManualClock()
    with ActorSystem(clock=clock, database_url=None) as system:
        system.events.flush()
        FaultInjector(system).crash(BUS)
        seen: list[Any] = []
        system.events.subscribe(seen.append, Tick)  # the message it crashes on
        system.settle()
        clock.advance(0.1)
        system.events.publish(Tick(1))
        system.events.flush()
        assert _ticks(seen) == [1]
        assert system.events.subscriber_count() == 1
        assert system.events.dropped == 0


@pytest.mark.timeout(20)
def test_a_killed_bus_thread_is_replaced_and_delivers_what_waited() -> None:
    clock = ManualClock()
    with ActorSystem(clock=clock, database_url=None) as system:
        seen: list[Any] = []
        system.events.subscribe(seen.append, Tick)
        system.events.flush()
        before = {t.name for t in system.threads()}
        FaultInjector(system).kill(BUS)
        system.events.publish(Tick(1))
        system.settle()
        assert not _bus_report(system).healthy
        clock.advance(0.1)
        system.events.flush()
        assert _ticks(seen) == [1]
        assert _bus_report(system).healthy
        assert {t.name for t in system.threads()} != before


@pytest.mark.timeout(20)
def test_stop_delivers_every_event_published_before_it() -> None:
    seen: list[int] = []
    system = ActorSystem([ChildSpec("e", Echo)], clock=ManualClock(), database_url=None)
    system.events.subscribe(lambda e: seen.append(e.n), Tick)
    system.start()
    for n in range(2000):
        system.events.publish(Tick(n))
    system.stop()
    assert seen == list(range(2000))
    assert system.threads() == []


@pytest.mark.timeout(20)
def test_events_published_before_start_are_delivered_after_it() -> None:
    seen: list[int] = []
    system = ActorSystem(clock=ManualClock(), database_url=None)
    system.events.subscribe(lambda e: seen.append(e.n), Tick)
    system.events.publish(Tick(1))
    with pytest.raises(RuntimeError, match="not running yet"):
        system.events.flush()
    with system:
        system.events.publish(Tick(2))
        system.events.flush()
        assert seen == [1, 2]


@pytest.mark.timeout(20)
def test_events_published_after_stop_are_counted_as_dropped() -> None:
    system = ActorSystem(clock=ManualClock(), database_url=None)
    seen: list[int] = []
    with system:
        system.events.subscribe(lambda e: seen.append(e.n), Tick)
    assert system.events.closed
    system.events.publish(Tick(1))
    assert system.events.dropped == 1
    assert seen == []
    system.events.flush()  # nothing left to wait for
