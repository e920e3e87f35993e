"""Every program in ``examples/`` runs by itself and says what it should.

Each ``examples/*.py`` program (a new one too) runs in a subprocess from the
repository root; the example pytest file runs under its own pytest.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PYTEST_EXAMPLE = "test_with_fault_injection.py"

#: Lines each example must print (an example without an entry must still run).
EXPECTED: dict[str, tuple[str, ...]] = {
    "webapp_embedding.py": (
        "GET /greet?app -> hello, app (visit 2)",
        "GET /fetch?report -> Completed, Succeeded",
        "GET /health -> running",
        "server and system stopped",
    ),
    "fastapi_app.py": (
        "GET /count/ada -> visits 2",
        "GET /downloads/<id>/events -> last event Completed, Succeeded",
        "GET /health -> 200 running",
        "system stopped: True",
    ),
    "async_service.py": (
        "paused, 120 s later    status=paused   runs=2",
        "after RunNow           status=paused   runs=3",
        "resumed, 60 s later    status=running  runs=5",
    ),
    "servers_from_table.py": (
        "stopped server-us-1",
        "  server-ap-1 (running)",
        "heartbeats: ap-1=2, eu-1=3, us-1=2",
    ),
    "custom_download_source.py": (
        "Cancelled  (big)",
        "big         Cancelled",
        "bad-isbn    Errored                      0%  not an ISBN-13: 12345",
        "empire      Completed, Succeeded       100%  empire.bin",
    ),
}

PROGRAMS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))


def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_examples_are_found() -> None:
    assert set(EXPECTED) <= set(PROGRAMS)
    assert (EXAMPLES / PYTEST_EXAMPLE).is_file()


@pytest.mark.parametrize("name", PROGRAMS)
def test_example_runs(name: str) -> None:
    result = run(str(EXAMPLES / name), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in result.stderr, output
    for line in EXPECTED.get(name, ()):
        assert line in result.stdout, f"{line!r} not in:\n{output}"


def test_the_example_test_file_passes() -> None:
    result = run(
        "-m", "pytest", "-q", f"examples/{PYTEST_EXAMPLE}", "-p", "no:cacheprovider", timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"\b\d+ passed\b", result.stdout), output
    assert not re.search(r"\b\d+ (failed|error|errors|skipped)\b", result.stdout), output
