"""The short soak: downloads submitted continuously while faults hit the
keeper, the queues and the workers; every id ``submit()`` returned ends.

The long form (minutes, on the real clock) is ``bench/bench_soak.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.reliability.soak import SoakConfig, run

if TYPE_CHECKING:
    from pathlib import Path

# Well below the 10 s start timeout whose repeated expiry stalled downloads
# for minutes; restarts cost 0.1 s here (backoff on a clock 20 times faster).
_STALL_BOUND = 5.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
def test_every_submitted_download_ends_while_faults_hit_the_download_actors(
    seed: int, tmp_path: Path
) -> None:
    config = SoakConfig(seed=seed, duration=4.0, fault_every=0.1, speed=20.0, drain_timeout=30.0)
    report = run(config, tmp_path)
    print(report.summary())  # the figures, with -s
    assert not report.problems, report.summary() + "\n" + "\n".join(report.problems)
    assert report.submitted > 100
    assert report.terminal == report.submitted
    assert not report.lost and not report.stuck
    groups = {kind.split("(")[1].rstrip(")") for kind in report.faults}
    assert groups == {"keeper", "queue", "worker"}, report.faults
    assert report.restarts["keeper"] > 0, report.restarts
    assert report.longest_stall < _STALL_BOUND, report.summary()
