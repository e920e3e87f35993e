"""Property tests: random crash schedules lose no message; backoff schedules.

Each hypothesis example builds and stops its own system (function-scoped
fixtures are not reset between examples), on a ``ManualClock`` with zero
backoff so nothing waits in real time.
"""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import Actor, ActorSystem, ManualClock
from messages import DeadLetter
from supervision import Backoff, ChildSpec, Directive, Supervisor

EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Boom(Exception):
    """The failure the crash schedule injects."""


class Crashy(Actor):
    """Records ``(sender, seq)`` of each message; raises for the planned ones."""

    def __init__(self, handled: list[tuple[int, int]], lock: threading.Lock) -> None:
        super().__init__()
        self.handled = handled
        self.lock = lock

    def on_receive(self, message: Any) -> Any:
        sender, seq, crash = message
        if crash:
            raise Boom(f"planned crash of {sender}/{seq}")
        with self.lock:
            self.handled.append((sender, seq))
        return None


_DIRECTIVES = {
    "restart": Directive.RESTART,
    "restart-after-0": Directive.restart_after(0),
    "resume": Directive.RESUME,
}


@EXAMPLES
@given(
    crashes=st.lists(st.booleans(), min_size=1, max_size=200),
    senders=st.integers(min_value=1, max_value=3),
    directive=st.sampled_from(sorted(_DIRECTIVES)),
)
def test_a_random_crash_schedule_loses_no_message(
    crashes: list[bool], senders: int, directive: str
) -> None:
    """Every message is handled exactly once, or it is the failing one and a dead letter."""
    handled: list[tuple[int, int]] = []
    lock = threading.Lock()
    chosen = _DIRECTIVES[directive]
    group = Supervisor(
        [ChildSpec("crashy", Crashy, args=(handled, lock))],
        backoff=Backoff(initial=0),
        decider=lambda exc: chosen,
        max_restarts=100_000,
        within=1.0,
    )
    system = ActorSystem([ChildSpec("group", group)], clock=ManualClock(), database_url=None)
    # Every message of the schedule belongs to one sender (round robin).
    plan = [(i % senders, i, crash) for i, crash in enumerate(crashes)]
    letters: list[Any] = []
    with system:
        system.events.subscribe(letters.append, DeadLetter)
        threads = [
            threading.Thread(
                target=lambda mine: [system.tell("crashy", m) for m in mine],
                args=([m for m in plan if m[0] == s],),
                name=f"regisseur:test-sender-{s}",
            )
            for s in range(senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        system.settle(timeout=10)
        dead = [letter.message for letter in letters if letter.recipient == "crashy"]

    sent = {(s, i) for s, i, _ in plan}
    failing = {(s, i) for s, i, crash in plan if crash}
    got = [(s, i) for s, i in handled]
    dead_keys = [(s, i) for s, i, _ in dead]
    assert len(got) == len(set(got)), "a message was handled twice"
    assert len(dead_keys) == len(set(dead_keys)), "a dead letter was published twice"
    assert set(got) | set(dead_keys) == sent, "a message was lost"
    assert not set(got) & set(dead_keys), "a message was both handled and a dead letter"
    assert set(dead_keys) == failing, "only the failing messages become dead letters"
    for s in range(senders):  # each sender's messages are handled in its order
        mine = [i for sender, i in got if sender == s]
        assert mine == sorted(mine)


@settings(max_examples=200, deadline=None)
@given(
    initial=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    multiplier=st.floats(min_value=1.0, max_value=10.0, allow_nan=False),
    maximum=st.floats(min_value=0.0, max_value=3600.0, allow_nan=False),
    failures=st.integers(min_value=1, max_value=40),
)
def test_the_backoff_schedule_is_capped_exponential_and_never_shrinks(
    initial: float, multiplier: float, maximum: float, failures: int
) -> None:
    if maximum < initial:
        initial, maximum = maximum, initial
    backoff = Backoff(initial=initial, multiplier=multiplier, maximum=maximum)
    delays = [backoff.delay(n) for n in range(1, failures + 1)]
    for n, delay in enumerate(delays, start=1):
        expected = min(initial * multiplier ** (n - 1), maximum)
        assert abs(delay - expected) <= 1e-9 * max(1.0, expected)
    assert all(a <= b for a, b in zip(delays, delays[1:], strict=False))
