"""The lease guard: when a node stops acting as an owner (no database needed)."""

from __future__ import annotations

from regisseur.actors.cluster.lease_guard import FENCED, LeasedToken, LeaseGuard, fence_margin
from regisseur.supervision.testing import ManualClock


def test_the_guard_runs_out_a_margin_before_the_lease_can_expire() -> None:
    guard = LeaseGuard(10.0)
    assert not guard.valid(0.0)  # never renewed: fenced
    assert guard.renewed(sent_at=100.0) is False  # not a fence that ends
    assert fence_margin(10.0) == 1.5
    assert guard.valid_until == 100.0 + 10.0 - 1.5
    assert guard.valid(108.4)
    assert not guard.valid(108.5)
    guard.renewed(sent_at=90.0)  # a late answer to an older renewal moves nothing back
    assert guard.valid_until == 108.5


def test_fence_and_renewal_are_announced_once_each() -> None:
    guard = LeaseGuard(3.0)
    guard.renewed(sent_at=0.0)
    assert guard.fence_if_due(1.0) is False  # still valid
    assert guard.fence_if_due(3.0) is True
    assert guard.fence_if_due(4.0) is False  # fenced already
    assert guard.fenced
    assert guard.renewed(sent_at=5.0) is True  # ends the fence
    assert not guard.fenced
    assert guard.lost() is True  # reaped: fenced at once, whatever the clock
    assert not guard.valid(5.1)
    assert guard.lost() is False


def test_a_run_token_reads_cancelled_once_the_guard_ran_out() -> None:
    clock = ManualClock()
    guard = LeaseGuard(3.0)
    guard.renewed(sent_at=clock.now())
    token = LeasedToken(guard, clock)
    assert not token.cancelled
    clock.advance(2.6)  # past 3.0 - 0.45: a process waking from a freeze
    assert token.cancelled
    assert token.reason == FENCED
    guard.renewed(sent_at=clock.now())
    assert token.cancelled  # a cancel is for good
