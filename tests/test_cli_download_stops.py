"""How a ``regisseur download`` process is stopped, and how the next run picks up.

Real processes (``python -m regisseur.cli``) against a local server whose
first full answer holds after one chunk until the test releases it (see
``tests/test_cli_download.py``), so a signal lands mid-body without racing.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.test_cli_download import ROOT, WAIT, cli, files, run

if TYPE_CHECKING:
    from pathlib import Path

    from tests.test_cli_download import _Server

__all__ = ["files"]  # the fixture, shared


def succeeded(out_dir: Path) -> list[str]:
    """The URLs with a Succeeded record in ``out_dir`` (``regisseur status DIR --json``)."""
    result = run("status", str(out_dir), "--json")
    assert result.returncode == 0, result.stderr
    return sorted(
        d["target_id"]
        for d in json.loads(result.stdout)["downloads"]
        if d["state"].endswith("Succeeded")
    )


@pytest.mark.timeout(60)
def test_a_closed_stderr_neither_hangs_nor_stops_the_downloads(
    files: _Server, tmp_path: Path
) -> None:
    """``regisseur download URL 2>&1 | head -1``: the progress lines find no
    reader. The view goes quiet; the downloads end, the run exits."""
    files.gate.set()
    url = files.url("/big.bin")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        process = subprocess.Popen(
            cli("download", url, "-o", str(tmp_path), "--plain"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=write_end,
            text=True,
        )
    finally:
        os.close(write_end)
    try:
        out, _ = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert out == f"{tmp_path / 'big.bin'}\n"
    assert (tmp_path / "big.bin").read_bytes() == files.body
    assert succeeded(tmp_path) == [url]
