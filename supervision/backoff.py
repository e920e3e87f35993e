"""Exponential backoff between restarts."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from regisseur.actors.clock import check_duration

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the n-th consecutive restart of a child.

    ``delay(n) = min(initial * multiplier ** (n - 1), maximum)``, then moved
    by up to ±``jitter`` of itself (``jitter=0.1`` → ±10 %) so that many
    children failing together do not restart in lockstep. The defaults give
    2, 4, 8, 16, 32, 60, 60, … seconds. ``Backoff(0)`` restarts at once.
    """

    initial: float = 2.0
    multiplier: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        check_duration(self.initial, "Backoff.initial")
        check_duration(self.maximum, "Backoff.maximum")
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, (int, float)):
            msg = f"Backoff.multiplier must be a number, got {self.multiplier!r}"
            raise TypeError(msg)
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            msg = f"Backoff.multiplier must be a finite number >= 1, got {self.multiplier!r}"
            raise ValueError(msg)
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)):
            msg = f"Backoff.jitter must be a number, got {self.jitter!r}"
            raise TypeError(msg)
        if not 0 <= self.jitter <= 1:
            msg = f"Backoff.jitter must be between 0 and 1, got {self.jitter!r}"
            raise ValueError(msg)
        if self.maximum < self.initial:
            msg = f"Backoff.maximum ({self.maximum}) is below Backoff.initial ({self.initial})"
            raise ValueError(msg)

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before restarting after ``failures`` consecutive failures."""
        if failures < 1:
            return 0.0
        exponent = min(failures - 1, 1024)
        try:
            base = self.initial * self.multiplier**exponent
        except OverflowError:
            base = self.maximum
        base = min(base, self.maximum)
        if self.jitter and base:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            base = max(0.0, base * (1 + spread))
        return float(base)
