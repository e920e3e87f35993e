"""Every ```python block of the README runs as it is.

Blocks fenced as ```py are fragments and are not run.
"""

from __future__ import annotations

import configparser
import logging
import re
import shlex
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


def _pip_installs() -> list[list[str]]:
    """The arguments of each ``pip install`` in the README's ```sh blocks."""
    text = README.read_text(encoding="utf-8")
    installs = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S):
        for command in re.split(r"&&|\n", block.replace("\\\n", " ")):
            words = shlex.split(command, comments=True)
            if "pip" in " ".join(words[:1]) and words[1:2] == ["install"]:
                installs.append(words[2:])
    return installs


def test_every_pip_install_in_the_readme_installs_this_clone() -> None:
    """Before: the cluster section said ``pip install 'regisseur[postgres]'``,
    which asks a package index for a project of that name instead of
    installing this clone (as the quick start does)."""
    config = configparser.ConfigParser()
    config.read(README.parent / "setup.cfg")
    extras = set(config["options.extras_require"])
    installs = _pip_installs()
    assert len(installs) >= 3
    for arguments in installs:
        targets = [a for a in arguments if not a.startswith("-") and "=" not in a]
        assert targets, arguments
        for target in targets:
            match = re.fullmatch(r"\.(?:\[(?P<extras>[\w,]+)\])?", target)
            assert match is not None, f"pip install {target!r} does not install this clone"
            wanted = set((match["extras"] or "").split(",")) - {""}
            assert wanted <= extras, f"{target}: no such extra in setup.cfg"
