"""Running code in a fresh interpreter, as an installed package is imported.

Used by the tests that look at what importing or running something loads
(``sys.modules`` of a new process): outside the repository root, where
``cli/`` and ``actors/`` are plain folders, and without ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["run_python"]


def run_python(
    code: str, *args: str, cwd: Path, timeout: float = 100
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args...`` in ``cwd`` (not the repository root);
    its output as text, whatever its exit status."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
