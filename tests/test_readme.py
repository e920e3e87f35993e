"""Every ```python block of the README runs as it is.

Blocks fenced as ```py are fragments and are not run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default database file lands here
    before = {logger: list(logger.handlers) for logger in _library_loggers()}
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    finally:
        for logger, handlers in before.items():
            logger.handlers[:] = handlers


def _library_loggers() -> list[logging.Logger]:
    return [logging.getLogger(name) for name in ("actors", "supervision", "regisseur")]


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 6
