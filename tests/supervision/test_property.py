"""Property tests: random crash schedules lose no message; backoff schedules.

Each hypothesis example builds, drives and stops its own system (hypothesis
does not reset function-scoped fixtures between examples) on a
``ManualClock``: restarts are immediate (zero backoff, ``restart_after(0)``)
or wait for the test to advance the clock, so nothing waits in real time.
``system.settle()`` is the only wait.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.messages import ChildRestarting, DeadLetter
from regisseur.supervision import Backoff, ChildSpec, Directive, Supervisor
from regisseur.supervision.testing import FaultInjector, InjectedFault, Probe

SYSTEM_EXAMPLES = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PURE_EXAMPLES = settings(max_examples=300, deadline=None)

WAIT = 10.0  # bound on every real wait (settle, joins, probes)

DIRECTIVES = {
    "restart": Directive.RESTART,  # with the supervisor's zero backoff
    "restart-after-0": Directive.restart_after(0),
    "restart-after-1": Directive.restart_after(1),  # the test advances the clock
    "resume": Directive.RESUME,
}


@dataclass(frozen=True)
class Msg:
    """One message of the schedule: ``crash`` names the directive to fail with."""

    sender: int
    seq: int
    crash: str | None = None


@dataclass(frozen=True)
class Marked:
    """A message of the type the fault injector is told to crash."""

    sender: int
    seq: int


class Boom(Exception):
    """The failure a planned crash raises; it carries the directive to apply."""

    def __init__(self, directive: Directive) -> None:
        super().__init__(f"planned crash ({directive!r})")
        self.directive = directive


class Recording(Actor):
    """Records ``(sender, seq)`` of every message it handles; raises for planned crashes."""

    def __init__(self, handled: list[tuple[int, int]], lock: threading.Lock) -> None:
        super().__init__()
        self.handled = handled
        self.lock = lock

    def on_receive(self, message: Any) -> Any:
        crash = getattr(message, "crash", None)
        if crash is not None:
            raise Boom(DIRECTIVES[crash])
        with self.lock:
            self.handled.append((message.sender, message.seq))
        return None


def _decide(exc: Exception) -> Directive | None:
    return exc.directive if isinstance(exc, Boom) else None


def _send_all(system: ActorSystem, plan: list[Any], senders: int) -> None:
    """Tell every message of ``plan`` to "crashy", each sender on its own thread."""

    def send(mine: list[Any]) -> None:
        for message in mine:
            system.tell("crashy", message)

    threads = [
        threading.Thread(
            target=send,
            args=([m for m in plan if m.sender == s],),
            name=f"property-sender-{s}",
        )
        for s in range(senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a sender blocked"


def _drive(system: ActorSystem, clock: ManualClock, done: Any, rounds: int) -> None:
    """Settle; while messages are outstanding, fire the pending restart timers."""
    for _ in range(rounds):
        system.settle(timeout=WAIT)
        if done():
            return
        clock.advance(1.0)
    system.settle(timeout=WAIT)


def _check_accounting(
    plan: list[Any],
    handled: list[tuple[int, int]],
    dead: list[Any],
    senders: int,
) -> None:
    """Every message handled exactly once or dead-lettered once, never both; order kept."""
    sent = {(m.sender, m.seq) for m in plan}
    dead_keys = [(m.sender, m.seq) for m in dead]
    assert len(handled) == len(set(handled)), "a message was handled twice"
    assert len(dead_keys) == len(set(dead_keys)), "a dead letter was published twice"
    assert not set(handled) & set(dead_keys), "a message was both handled and a dead letter"
    assert set(handled) | set(dead_keys) == sent, "a message was lost"
    for s in range(senders):  # each sender's messages are handled in its order
        mine = [seq for sender, seq in handled if sender == s]
        assert mine == sorted(mine), f"sender {s}'s messages were reordered"


def _crashy_system(handled: list[tuple[int, int]], clock: ManualClock) -> ActorSystem:
    group = Supervisor(
        [ChildSpec("crashy", Recording, args=(handled, threading.Lock()))],
        backoff=Backoff(initial=0),
        decider=_decide,
        max_restarts=100_000,
        within=1.0,
    )
    return ActorSystem([ChildSpec("group", group)], clock=clock, database_url=None)


@SYSTEM_EXAMPLES
@given(
    schedule=st.integers(min_value=1, max_value=200).flatmap(
        lambda n: st.lists(
            # Most messages are handled; two in five fail, each with a random directive.
            st.sampled_from([None, None, None, None, None, None, *sorted(DIRECTIVES)]),
            min_size=n,
            max_size=n,
        )
    ),
    senders=st.integers(min_value=1, max_value=3),
)
def test_a_random_crash_schedule_loses_no_message(schedule: list[str | None], senders: int) -> None:
    """Each message is handled exactly once, or it failed and is a dead letter."""
    handled: list[tuple[int, int]] = []
    letters: list[DeadLetter] = []
    clock = ManualClock()
    system = _crashy_system(handled, clock)
    # Every message of the schedule belongs to one sender (round robin).
    plan = [Msg(i % senders, i, crash) for i, crash in enumerate(schedule)]
    crashes = [m for m in plan if m.crash is not None]
    with system:
        system.events.subscribe(letters.append, DeadLetter)
        _send_all(system, plan, senders)
        _drive(system, clock, lambda: len(handled) + len(letters) == len(plan), len(crashes) + 1)
        assert len(handled) + len(letters) == len(plan), (
            "a message is neither handled nor a dead letter"
        )
    assert system.threads() == []

    dead = [letter.message for letter in letters if letter.recipient == "crashy"]
    _check_accounting(plan, handled, dead, senders)
    assert set(dead) == set(crashes), "exactly the failing messages become dead letters"
    assert all(letter.reason.startswith("failed: Boom") for letter in letters)


@SYSTEM_EXAMPLES
@given(
    marked=st.integers(min_value=1, max_value=200).flatmap(
        lambda n: st.lists(st.booleans(), min_size=n, max_size=n)
    ),
    senders=st.integers(min_value=1, max_value=3),
    directives=st.lists(st.sampled_from(sorted(DIRECTIVES)), min_size=1, max_size=5),
    data=st.data(),
)
def test_injected_crashes_by_message_type_lose_no_message(
    marked: list[bool], senders: int, directives: list[str], data: st.DataObject
) -> None:
    """``FaultInjector.crash(message_type=...)`` fails the first matching messages only."""
    plan: list[Any] = [
        (Marked if is_marked else Msg)(i % senders, i) for i, is_marked in enumerate(marked)
    ]
    targets = [m for m in plan if isinstance(m, Marked)]
    times = data.draw(st.integers(min_value=1, max_value=max(1, len(targets))), label="times")
    expected_crashes = min(times, len(targets))
    answers = itertools.cycle(DIRECTIVES[d] for d in directives)

    handled: list[tuple[int, int]] = []
    letters: list[DeadLetter] = []
    clock = ManualClock()
    group = Supervisor(
        [ChildSpec("crashy", Recording, args=(handled, threading.Lock()))],
        backoff=Backoff(initial=0),
        decider=lambda exc: next(answers) if isinstance(exc, InjectedFault) else None,
        max_restarts=100_000,
        within=1.0,
    )
    system = ActorSystem([ChildSpec("group", group)], clock=clock, database_url=None)
    with system:
        system.events.subscribe(letters.append, DeadLetter)
        faults = FaultInjector(system)
        faults.crash("crashy", times=times, message_type=Marked)
        _send_all(system, plan, senders)
        _drive(
            system, clock, lambda: len(handled) + len(letters) == len(plan), expected_crashes + 1
        )
        assert len(handled) + len(letters) == len(plan), (
            "a message is neither handled nor a dead letter"
        )
        assert faults.pending("crashy") == times - expected_crashes
    assert system.threads() == []

    dead = [letter.message for letter in letters if letter.recipient == "crashy"]
    _check_accounting(plan, handled, dead, senders)
    assert len(dead) == expected_crashes
    assert all(isinstance(m, Marked) for m in dead), "only the chosen type crashes"
    # The crashed ones are the first marked messages to arrive: for each
    # sender, a prefix of its own marked messages.
    for s in range(senders):
        mine = [m for m in targets if m.sender == s]
        crashed = [m for m in mine if m in dead]
        assert crashed == mine[: len(crashed)]
    if senders == 1:
        assert dead == targets[:expected_crashes]


@st.composite
def backoffs(draw: st.DrawFn, *, largest: float = 100.0) -> Backoff:
    """A valid ``Backoff`` without jitter (``maximum >= initial``)."""
    bound = st.floats(min_value=0.0, max_value=largest, allow_nan=False, allow_infinity=False)
    low, high = sorted((draw(bound), draw(bound)))
    multiplier = draw(st.floats(min_value=1.0, max_value=10.0, allow_nan=False))
    return Backoff(initial=low, multiplier=multiplier, maximum=high)


def _expected(backoff: Backoff, n: int) -> float:
    try:
        raw = backoff.initial * backoff.multiplier ** (n - 1)
    except OverflowError:
        raw = math.inf
    return min(raw, backoff.maximum)


@PURE_EXAMPLES
@given(backoff=backoffs(largest=3600.0), failures=st.integers(min_value=1, max_value=60))
def test_the_backoff_schedule_is_capped_exponential_and_never_shrinks(
    backoff: Backoff, failures: int
) -> None:
    delays = [backoff.delay(n) for n in range(1, failures + 1)]
    for n, delay in enumerate(delays, start=1):
        expected = _expected(backoff, n)
        assert math.isclose(delay, expected, rel_tol=1e-9, abs_tol=1e-12), (n, delay, expected)
        assert 0.0 <= delay <= backoff.maximum
    assert all(a <= b for a, b in itertools.pairwise(delays)), delays
    assert backoff.delay(0) == 0.0


@PURE_EXAMPLES
@given(
    backoff=backoffs(),
    jitter=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    failures=st.integers(min_value=1, max_value=20),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_jittered_delay_stays_within_its_fraction_of_the_schedule(
    backoff: Backoff, jitter: float, failures: int, seed: int
) -> None:
    jittered = Backoff(backoff.initial, backoff.multiplier, backoff.maximum, jitter)
    base = _expected(backoff, failures)
    delay = jittered.delay(failures, random.Random(seed))
    assert delay >= 0.0
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


class Echo(Actor):
    def on_receive(self, message: Any) -> Any:
        return message


@SYSTEM_EXAMPLES
@given(
    backoff=backoffs(largest=50.0),
    failures=st.integers(min_value=1, max_value=8),
)
def test_the_supervisor_waits_the_backoff_schedule_between_restarts(
    backoff: Backoff, failures: int
) -> None:
    """``failures`` crashes in a row are restarted after delay(1), delay(2), … ."""
    clock = ManualClock()
    group = Supervisor([ChildSpec("echo", Echo, backoff=backoff)], max_restarts=100, within=1.0)
    system = ActorSystem([ChildSpec("group", group)], clock=clock, database_url=None)
    with system:
        probe = Probe(system, ChildRestarting)
        FaultInjector(system).crash("echo", times=failures)
        for index in range(failures + 1):
            system.tell("echo", index)
        delays = []
        for _ in range(failures):
            event = probe.expect(ChildRestarting, timeout=WAIT, name="echo")
            delays.append(event.delay)
            if event.delay > 0:
                system.settle(timeout=WAIT)
                clock.advance(event.delay)
        # The message after the last crash is handled by the last incarnation.
        assert system.ask("echo", "last", timeout=WAIT) == "last"
        probe.expect_no(ChildRestarting, within=0.0)
    assert system.threads() == []
    for n, delay in enumerate(delays, start=1):
        assert math.isclose(delay, _expected(backoff, n), rel_tol=1e-9, abs_tol=1e-12)
