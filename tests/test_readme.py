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
    loggers = _library_loggers()
    before = {logger: (list(logger.handlers), logger.level, logger.propagate) for logger in loggers}
    disabled = {name: getattr(logger, "disabled", False) for name, logger in _existing()}
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    finally:
        for logger, (handlers, level, propagate) in before.items():
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        for name, logger in _existing():  # a dictConfig example disables nothing for good
            if isinstance(logger, logging.Logger):
                logger.disabled = disabled.get(name, False)


def _library_loggers() -> list[logging.Logger]:
    return [logging.getLogger(name) for name in ("regisseur", "")]


def _existing() -> list[tuple[str, object]]:
    return list(logging.Logger.manager.loggerDict.items())


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 6
