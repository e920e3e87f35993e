"""The CLI's live progress view: drawn on a fixed frame rate, bounded per frame."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest

pytest.importorskip("rich")

from regisseur.actors.signals import MAIN_THREAD_SIGNALS  # noqa: E402
from regisseur.cli import _download_bars  # noqa: E402
from regisseur.cli._download_bars import MAX_BARS, BarsView  # noqa: E402
from regisseur.messages import (  # noqa: E402
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
)
from tests.actors.test_signals import blocked_in  # noqa: E402


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(number: int, state: DownloadState, transferred: int = 0) -> DownloadRecord:
    return DownloadRecord(
        id=f"id{number}",
        source="http",
        target_id=f"http://h/{number}.bin",
        filename=f"{number}.bin",
        state=state,
        size=1000,
        transferred=transferred,
    )


@pytest.mark.timeout(30)
def test_events_never_draw_the_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    # A frame rate rich's refresh thread will not reach during the test:
    # every frame drawn is then one that an event caused.
    monkeypatch.setattr(_download_bars, "FRAMES_PER_SECOND", 0.001)
    out = Terminal()
    view = BarsView(out)
    try:
        drawn = len(out.getvalue())
        for number in range(300):
            view.update(DownloadStateChanged(_record(number, DownloadState.IN_PROGRESS)))
            view.update(DownloadProgressed(_record(number, DownloadState.IN_PROGRESS, 500)))
        assert len(out.getvalue()) == drawn, "an event drew on the terminal"
    finally:
        view.close()


@pytest.mark.timeout(30)
def test_a_frame_shows_at_most_max_bars_and_counts_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_download_bars, "FRAMES_PER_SECOND", 0.001)
    out = Terminal()
    view = BarsView(out)
    try:
        for number in range(40):
            view.update(DownloadStateChanged(_record(number, DownloadState.INITIALIZING)))
        for number in range(30):
            view.update(DownloadStateChanged(_record(number, DownloadState.IN_PROGRESS)))
        for number in range(12):
            view.update(DownloadStateChanged(_record(number, DownloadState.SUCCEEDED)))
        view.update(DownloadStateChanged(_record(12, DownloadState.ERRORED)))
    finally:
        view.close()  # draws the last frame
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", out.getvalue())  # no escapes
    summary = "12 done, 1 failed, 17 running, 10 waiting (7 running not shown)"
    assert summary in text
    frame = text[: text.find(summary)]
    frame = frame.rsplit(" waiting", 1)[-1]  # the last frame only
    bars = re.findall(r"^(\d+)\.bin ", frame, re.MULTILINE)
    assert bars == [str(number) for number in range(13, 13 + MAX_BARS)], "first running ones"


@pytest.mark.timeout(30)
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_the_frame_thread_leaves_ctrl_c_to_the_main_thread() -> None:
    """rich's refresh thread blocks the signals the run's system's threads
    block: the kernel hands Ctrl-C to the main thread, which runs its
    handler at once (see regisseur.actors.signals)."""
    before = set(threading.enumerate())
    view = BarsView(Terminal())
    try:
        [frames] = set(threading.enumerate()) - before
        assert blocked_in(frames) >= MAIN_THREAD_SIGNALS
        assert not blocked_in(threading.current_thread()) & MAIN_THREAD_SIGNALS
    finally:
        view.close()


@pytest.mark.timeout(30)
def test_a_bar_gives_the_speed_in_the_binary_units_of_its_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: ``4.7/4.8 MiB 204.5 kB/s`` on one bar (rich's decimal speed
    beside binary sizes); now the download's own speed, ``200 KiB/s``."""
    monkeypatch.setattr(_download_bars, "FRAMES_PER_SECOND", 0.001)
    out = Terminal()
    view = BarsView(out)
    try:
        running = _record(1, DownloadState.IN_PROGRESS, 500)
        view.update(DownloadStateChanged(running))
        view.update(DownloadProgressed(running.evolve(speed=200 * 1024.0)))
    finally:
        view.close()  # draws the last frame
    text = out.getvalue()
    assert "200 KiB/s" in text, text
    assert "kB/s" not in text
