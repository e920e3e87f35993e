"""The protected Actor API subclasses use instead of the runtime's cell.

``kept_state`` (survives restarts), ``on_mailbox_drained`` (group commit),
``actor_incarnation`` and ``wake_on_stop``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from regisseur.actors import Actor
from regisseur.messages import ChildRestarted, DeadLetter
from regisseur.supervision import Backoff, ChildSpec, Directive, StartupError
from regisseur.supervision.testing import Probe

pytestmark = pytest.mark.timeout(30)


class Counter(Actor):
    """Counts messages in ``kept_state``; records each incarnation number."""

    def __init__(self, seen: list[tuple[int, int]]) -> None:
        super().__init__()
        self.seen = seen
        self.kept_state.setdefault("count", 0)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        self.kept_state["count"] += 1
        self.seen.append((self.actor_incarnation, self.kept_state["count"]))
        return self.kept_state["count"]


def test_kept_state_survives_restarts_and_incarnation_grows(system_factory: Any) -> None:
    seen: list[tuple[int, int]] = []
    system = system_factory([ChildSpec("c", Counter, args=(seen,), backoff=Backoff(0))])
    probe = Probe(system, ChildRestarted)
    assert system.ask("c", "add") == 1
    for restarts in (1, 2):
        system.tell("c", "crash")
        probe.expect(ChildRestarted, name="c")
        assert system.ask("c", "add") == restarts + 1
    # One instance per incarnation, numbered 1, 2, 3; the count went on.
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_kept_state_starts_empty_after_a_stop(system_factory: Any) -> None:
    seen: list[tuple[int, int]] = []
    system = system_factory([])
    system.spawn(ChildSpec("c", Counter, args=(seen,)))
    assert system.ask("c", "add") == 1
    system.stop_child("c")
    system.spawn(ChildSpec("c", Counter, args=(seen,)))
    assert system.ask("c", "add") == 1


class Batcher(Actor):
    """Stages what it receives; commits the batch when the mailbox runs dry."""

    def __init__(self, log: list[Any], gate: threading.Event) -> None:
        super().__init__()
        self.log = log
        self.gate = gate
        self.staged: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "wait":
            assert self.gate.wait(10), "the test never opened the gate"
        if message == "fail":
            raise RuntimeError("fail")
        self.staged.append(message)
        return len(self.staged)

    def on_mailbox_drained(self) -> None:
        if self.staged == ["boom"]:
            raise RuntimeError("drained failed")
        batch, self.staged = self.staged, []
        self.log.append((threading.current_thread(), self.actor_incarnation, batch))


def test_drained_runs_once_per_burst_on_the_actors_thread(system_factory: Any) -> None:
    log: list[Any] = []
    gate = threading.Event()
    system = system_factory([ChildSpec("b", Batcher, args=(log, gate))])
    system.settle()
    assert log == []  # a start with nothing handled is no burst
    system.tell("b", "wait")
    for n in range(5):
        system.tell("b", n)  # queued behind the blocked first message: one burst
    gate.set()
    system.settle()
    assert [batch for _, _, batch in log] == [["wait", 0, 1, 2, 3, 4]]
    assert system.ask("b", "solo") == 1  # answered before the drain clears it
    system.settle()
    assert [batch for _, _, batch in log] == [["wait", 0, 1, 2, 3, 4], ["solo"]]
    threads = {thread for thread, _, _ in log}
    assert len(threads) == 1
    (thread,) = threads
    cell = system.registry.find("b")
    assert cell is not None
    assert thread is cell.thread  # the actor's own thread


class Resuming(Batcher):
    def decide(self, exc: Exception) -> Any:
        return Directive.RESUME


def test_drained_waits_for_a_resume_after_a_failure(system_factory: Any) -> None:
    log: list[Any] = []
    gate = threading.Event()
    system = system_factory([ChildSpec("b", Resuming, args=(log, gate))])
    for message in ("wait", 1, "fail", 2):
        system.tell("b", message)  # one burst, broken by the failure
    gate.set()
    system.settle()
    # No drain when "fail" failed; the resumed instance drains once, after 2.
    assert [(inc, batch) for _, inc, batch in log] == [(1, ["wait", 1, 2])]


def test_drained_is_not_called_for_an_incarnation_a_restart_ended(system_factory: Any) -> None:
    log: list[Any] = []
    gate = threading.Event()
    system = system_factory([ChildSpec("b", Batcher, args=(log, gate), backoff=Backoff(0))])
    probe = Probe(system, ChildRestarted)
    for message in ("wait", "x", "fail"):
        system.tell("b", message)
    gate.set()
    probe.expect(ChildRestarted, name="b")
    system.settle()
    assert log == []  # the failed burst went with its instance; the new one handled nothing
    assert system.ask("b", "y") == 1
    system.settle()
    assert [(inc, batch) for _, inc, batch in log] == [(2, ["y"])]


def test_a_failing_drain_is_a_failure_the_supervisor_handles(system_factory: Any) -> None:
    log: list[Any] = []
    gate = threading.Event()
    system = system_factory([ChildSpec("b", Batcher, args=(log, gate), backoff=Backoff(0))])
    probe = Probe(system, ChildRestarted, DeadLetter)
    system.tell("b", "boom")
    letter = probe.expect(DeadLetter, recipient="b")
    assert letter.message == "<mailbox drained>"
    assert "drained failed" in letter.reason
    probe.expect(ChildRestarted, name="b")
    assert system.ask("b", "after") == 1  # the new incarnation works


class Blocker(Actor):
    """Blocks in a handler until a stop request wakes it."""

    def __init__(self, woken: list[bool], entered: threading.Event) -> None:
        super().__init__()
        self.woken = woken
        self.entered = entered

    def on_receive(self, message: Any) -> Any:
        event = threading.Event()
        with self.wake_on_stop(event):
            self.entered.set()
            self.woken.append(event.wait(10))
        return None


def test_wake_on_stop_wakes_a_blocked_handler(system_factory: Any) -> None:
    woken: list[bool] = []
    entered = threading.Event()
    system = system_factory([])
    system.spawn(ChildSpec("k", Blocker, args=(woken, entered)))
    system.tell("k", "block")
    assert entered.wait(10)
    system.stop_child("k")  # returns once the handler returned and the actor stopped
    assert woken == [True]


def test_wake_on_stop_after_the_stop_request_wakes_at_once(system_factory: Any) -> None:
    class Late(Actor):
        def __init__(self, woken: list[bool]) -> None:
            super().__init__()
            self.woken = woken

        def on_stop(self) -> None:
            event = threading.Event()
            with self.wake_on_stop(event):  # the stop was already requested
                self.woken.append(event.is_set())

    woken: list[bool] = []
    system = system_factory([])
    system.spawn(ChildSpec("l", Late, args=(woken,)))
    system.stop_child("l")
    assert woken == [True]


class Ending(Actor):
    """Records its teardowns: (incarnation, final, on_stop ran first)."""

    def __init__(self, ends: list[tuple[int, bool, bool]], fail_start: bool = False) -> None:
        super().__init__()
        self.ends = ends
        self.fail_start = fail_start
        self.stopped = False

    def on_start(self) -> None:
        if self.fail_start and self.actor_incarnation == 1:
            raise RuntimeError("no start")

    def on_receive(self, message: Any) -> Any:
        raise RuntimeError("crash")

    def on_stop(self) -> None:
        self.stopped = True

    def on_incarnation_end(self, *, final: bool) -> None:
        self.ends.append((self.actor_incarnation, final, self.stopped))


def test_incarnation_end_follows_on_stop_and_says_when_it_is_final(
    system_factory: Any,
) -> None:
    ends: list[tuple[int, bool, bool]] = []
    system = system_factory([ChildSpec("e", Ending, args=(ends,), backoff=Backoff(0))])
    probe = Probe(system, ChildRestarted)
    system.tell("e", "crash")
    probe.expect(ChildRestarted, name="e")
    system.stop_child("e")
    assert ends == [(1, False, True), (2, True, True)]


def test_incarnation_end_runs_when_on_start_failed(system_factory: Any) -> None:
    ends: list[tuple[int, bool, bool]] = []
    system = system_factory([])
    with pytest.raises(StartupError):
        system.spawn(ChildSpec("e", Ending, args=(ends, True)))
    # No on_stop for an instance whose on_start failed; the hook still runs,
    # not final: it is torn down before its supervisor decides what next.
    assert ends == [(1, False, False)]
