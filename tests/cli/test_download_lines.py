"""The plain progress lines of ``regisseur download`` (``--plain``, or not a terminal)."""

from __future__ import annotations

from regisseur.cli._download_view import progress_text
from regisseur.messages import DownloadRecord, DownloadState


def _running(speed: float, time_remaining: float | None) -> DownloadRecord:
    return DownloadRecord(
        id="id1",
        source="http",
        target_id="http://h/trickle",
        filename="trickle",
        state=DownloadState.IN_PROGRESS,
        size=1000,
        transferred=3,
        progress=0.3,
        speed=speed,
        time_remaining=time_remaining,
    )


def test_a_trickle_below_one_byte_a_second_is_not_shown_as_zero() -> None:
    """Before: ``0% of 1000 B, 0 B/s, 997s left`` from a server sending a
    byte a second (0.99 B/s cut to 0), which reads as a stall that still
    ends."""
    assert progress_text(_running(0.99, 997.0)) == "0% of 1000 B, 1.0 B/s, 997s left"
    assert progress_text(_running(2.5 * 1024 * 1024, 0.5)) == "0% of 1000 B, 2.5 MiB/s, 0s left"
    assert progress_text(_running(0.0, None)) == "0% of 1000 B"
