"""A source's queue attaches to the keeper without waiting for it.

The queue used to ask the keeper for its records in ``on_start``. When the
keeper failed again right after a restart, before it answered, the
downloads supervisor (busy starting the sources) could not restart it, and
nothing moved until the queue's start timed out (10 s), again and again
under repeated faults.
"""

from __future__ import annotations

import pytest

from regisseur.actors.downloads import DownloadSource
from regisseur.messages import ChildFailed, ChildRestarting, ChildStarted, StartupFailed
from regisseur.messages.downloads import QueueDownload
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.helpers import SUCCEEDED, WAIT, quick

KEEPER = "download-keeper"


@pytest.mark.timeout(60)
def test_a_keeper_failing_again_right_after_its_restart_does_not_hold_up_the_sources(
    system_factory, manual_clock
) -> None:
    system = system_factory(download_sources=[DownloadSource("s", quick)])
    probe = Probe(system, ChildRestarting, ChildStarted, ChildFailed, StartupFailed)
    faults = FaultInjector(system)
    faults.crash(KEEPER, message_type=QueueDownload)
    first = system.downloads.submit("s", "t", "first")
    probe.expect(ChildRestarting, name=KEEPER, timeout=WAIT)
    # The restarted keeper fails on its first message, before the queue's
    # Attach (which is behind it in the keeper's mailbox).
    faults.crash(KEEPER, message_type=QueueDownload)
    second = system.downloads.submit("s", "t", "second")
    probe.clear()

    manual_clock.advance(2.0)  # the first restart
    probe.expect(ChildStarted, name="source:s", timeout=WAIT)  # not held up
    failed = probe.expect(ChildFailed, name=KEEPER, timeout=WAIT)
    assert "injected crash" in failed.error
    probe.expect(ChildRestarting, name=KEEPER, timeout=WAIT)
    manual_clock.advance(4.0)  # the second restart (its backoff doubled)

    assert system.downloads.wait(first, WAIT).state is SUCCEEDED
    assert system.downloads.wait(second, WAIT).state is SUCCEEDED
    assert [e for e in probe.events if isinstance(e, StartupFailed)] == []
    assert [e for e in probe.events if "timed out" in getattr(e, "error", "")] == []
