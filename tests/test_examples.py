"""Every program in ``examples/`` runs and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: A line each example must print (a new example is run even without one).
EXPECTED = {
    "webapp_embedding.py": "GET /fetch?report -> Completed, Succeeded",
    "async_service.py": "paused, 120 s later    status=paused",
    "servers_from_table.py": "heartbeats: ap-1=2, eu-1=3, us-1=2",
    "custom_download_source.py": "bad-isbn    Errored",
}

PROGRAMS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))


def test_every_example_is_listed() -> None:
    assert set(EXPECTED) <= set(PROGRAMS)


@pytest.mark.parametrize("name", PROGRAMS)
def test_example_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if name in EXPECTED:
        assert EXPECTED[name] in result.stdout, result.stdout


def test_the_example_test_file_passes() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(EXAMPLES / "test_with_fault_injection.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
