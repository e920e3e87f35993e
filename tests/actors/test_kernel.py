"""The system's own actors: supervised like a user's, and judged by health()."""

from __future__ import annotations

import threading

import pytest

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.supervision import ChildSpec


class Gate(Actor):
    """Its ``on_start`` blocks (its supervisor with it) until ``release`` is set."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self._entered = entered
        self._release = release

    def on_start(self) -> None:
        self._entered.set()
        self._release.wait(10)


@pytest.mark.timeout(20)
def test_a_root_supervisor_that_does_not_answer_is_reported_unhealthy() -> None:
    entered, release = threading.Event(), threading.Event()
    with ActorSystem(clock=ManualClock(), database_url=None) as system:
        assert system.healthy
        spawner = threading.Thread(
            target=system.spawn, args=(ChildSpec("gate", Gate, args=(entered, release)),)
        )
        spawner.start()
        try:
            assert entered.wait(5)  # the root is busy starting "gate"
            report = system.health()
            assert not report.healthy
            (root,) = [r for r in report.children if r.name == "root"]
            assert root.status == "unresponsive"
            assert not root.healthy
        finally:
            release.set()
            spawner.join(10)
        assert system.healthy
