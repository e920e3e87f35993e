"""The plain progress lines of ``regisseur download`` (``--plain``, or not a terminal)."""

from __future__ import annotations

import io
import logging
import threading

from regisseur.actors.log import get_logger
from regisseur.cli._download_view import LineView, progress_text
from regisseur.cli._retry_lines import show_retries
from regisseur.messages import DownloadRecord, DownloadState
from regisseur.messages.downloads import DownloadStateChanged


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


def test_a_retry_said_before_its_start_arrives_comes_after_a_downloading_line() -> None:
    """The retry is logged on the worker's thread at once; the start reaches
    the view later, through the keeper and the event bus. Before: the
    ``retrying`` line could come first, and ``downloading`` after it."""
    out = io.StringIO()
    view = LineView(out)
    view.resumes("id2")  # said as "resuming URL" by the run: no downloading line
    handler = show_retries(view.say, 3, lambda: [threading.current_thread()], view.before_retry)
    try:
        log = get_logger("regisseur.actors.downloads.http")
        for download_id in ("id1", "id1", "id2"):
            url = f"http://h/{download_id}"
            log.bind(download=download_id).warning(
                "download_retry", url=url, attempt=1, delay=0.0, error="HTTP 503"
            )
    finally:
        handler.close()
    view.update(DownloadStateChanged(_running(0.0, None)))  # id1's start, late
    retry = "retrying http://h/{} in 0 s (attempt 2 of 3): HTTP 503"
    assert out.getvalue().splitlines() == [
        "downloading http://h/id1",
        retry.format("id1"),
        retry.format("id1"),
        retry.format("id2"),
    ]
    assert logging.getLogger("regisseur").handlers.count(handler) == 0
