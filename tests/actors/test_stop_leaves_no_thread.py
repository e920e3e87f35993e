"""When ``stop()`` (of the system, or of a child) returns, the stopped actors'
threads have ended, not just finished their last message.

An actor's thread reports its final teardown done as its last act; before,
the supervisor returned on that report, so a thread the scheduler had not
run again yet was still alive after ``system.stop()`` (seen under load:
tests/downloads/test_sources.py::test_stopping_the_system_ends_running_
downloads_promptly, once in a full run on Python 3.13). Here each actor
thread (of those a test names) lingers a moment after that report, as a busy
machine makes it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from regisseur.actors import Actor, ActorSystem, _cell
from regisseur.actors.downloads import DownloadSource
from regisseur.supervision import ChildSpec

_LINGER = 0.6  # seconds an actor thread stays after its last act


class _LingeringLocal(threading.local):
    """The cells' thread-local slot; an actor thread whose name has ``marker``
    in it lingers when it leaves the slot."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    @property
    def cell(self) -> Any:
        return self.__dict__.get("cell")

    @cell.setter
    def cell(self, value: Any) -> None:
        self.__dict__["cell"] = value
        if value is None and self.marker in threading.current_thread().name:
            threading.Event().wait(_LINGER)  # the thread's very end (Cell._main's finally)


class Idle(Actor):
    def on_receive(self, message: Any) -> Any:
        return message


def _linger(monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
    monkeypatch.setattr(_cell, "_local", _LingeringLocal(marker))


@pytest.mark.timeout(30)
def test_no_thread_is_alive_when_the_systems_stop_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    # A download source's workers are the children of a supervisor that is
    # itself a child: the threads the system's own stop did not wait for.
    source = DownloadSource("s", lambda download_id, target_id, name: name, concurrency=2)
    system = ActorSystem([ChildSpec("idle", Idle)], download_sources=[source], database_url=None)
    _linger(monkeypatch, ".worker")  # only the workers: the rest of the stop is quick
    system.start()
    system.downloads.wait(system.downloads.submit("s", "t", "x"), timeout=10)
    ours = set(system.threads())
    assert any(".worker" in t.name for t in ours), [t.name for t in ours]
    system.stop()
    assert [t.name for t in ours if t.is_alive()] == []


@pytest.mark.timeout(30)
def test_no_thread_is_alive_when_stop_child_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    _linger(monkeypatch, "/idle#")
    with ActorSystem([ChildSpec("idle", Idle)], database_url=None) as system:
        (thread,) = [t for t in system.threads() if "/idle#" in t.name]
        system.stop_child("idle")
        assert not thread.is_alive()
