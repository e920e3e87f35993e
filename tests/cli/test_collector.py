"""The console script pauses the garbage collector for its start-up only.

``regisseur.cli.main`` inside a program leaves the collector alone; the
console script turns it back on before the downloads run, so a long batch
still reclaims its garbage cycles.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from regisseur.cli import main
from regisseur.cli._collector import StartupCollector

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def collector_state() -> Iterator[None]:
    """Put the collector back as it was (enabled, nothing frozen)."""
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_state")
def test_the_start_up_pause_ends_with_a_freeze_and_the_collector_on() -> None:
    gc.enable()
    collector = StartupCollector()
    assert collector.paused
    assert not gc.isenabled()
    collector.over()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    assert not collector.paused
    collector.over()  # idempotent
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_state")
def test_a_collector_someone_turned_off_stays_off() -> None:
    gc.disable()
    collector = StartupCollector()
    assert not collector.paused
    collector.over()
    collector.at_exit()
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector_state")
def test_main_inside_a_program_leaves_the_collector_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gc.enable()
    frozen = gc.get_freeze_count()
    assert main(["download"]) == 2  # no URLs: a bad-arguments exit, nothing started
    assert "no URLs" in capsys.readouterr().err
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_the_console_script_collects_again_while_the_downloads_run(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "a.bin").write_bytes(b"a" * 1000)
    code = textwrap.dedent(
        """
        import functools, gc, http.server, sys, threading
        import regisseur.cli.download as download
        from regisseur.cli import console_main

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        seen = []
        wait_for = download._Tracker.wait_for

        def watched(self, ids, *more):
            seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
            return wait_for(self, ids, *more)

        download._Tracker.wait_for = watched
        url = f"http://127.0.0.1:{server.server_address[1]}/a.bin"
        sys.argv = ["regisseur", "download", "-q", url, "-o", sys.argv[2]]
        try:
            code = console_main()
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
        print("result", code, seen, gc.isenabled())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "served"), str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # While the downloads run: the collector is on, the start-up's objects frozen.
    assert result.stdout.splitlines()[-1] == "result 0 [(True, True)] True"
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"a" * 1000
