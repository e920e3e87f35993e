"""The runtime never imports the command line.

``regisseur.actors``, ``regisseur.supervision`` and ``regisseur.messages``
are what an application embeds; ``regisseur.cli`` (the console script, the
demo, the terminal views) builds on them and never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.fresh_python import run_python

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("actors", "messages", "supervision")

pytestmark = pytest.mark.timeout(120)


def _mentions_cli(node: ast.AST) -> str | None:
    """The import of ``regisseur.cli`` that ``node`` makes, if it makes one."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "regisseur.cli" or alias.name.startswith("regisseur.cli."):
                return f"import {alias.name}"
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "regisseur.cli" or node.module.startswith("regisseur.cli."):
            return f"from {node.module} import ..."
        if node.module == "regisseur" and any(a.name == "cli" for a in node.names):
            return "from regisseur import cli"
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        # import_module("regisseur.cli...") and lazy tables of module names
        if node.value == "regisseur.cli" or node.value.startswith("regisseur.cli."):
            return f"the module name {node.value!r}"
    return None


def _runtime_files() -> list[Path]:
    return sorted(p for folder in RUNTIME for p in (ROOT / folder).rglob("*.py"))


def test_no_runtime_module_imports_the_cli() -> None:
    files = _runtime_files()
    assert len(files) > 50  # the walk found the runtime
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            what = _mentions_cli(node)
            if what is not None:
                found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {what}")
    assert found == []


def _private_runtime_module(node: ast.AST) -> str | None:
    """The private runtime module (``regisseur.actors._cell``) ``node`` imports, if any."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    for name in names:
        parts = name.split(".")
        if parts[:1] == ["regisseur"] and parts[1:2] and parts[1] in RUNTIME:
            if any(part.startswith("_") and not part.startswith("__") for part in parts[2:]):
                return name
    return None


def test_the_cli_uses_only_public_modules_of_the_runtime() -> None:
    # The command line builds on the runtime as any application would.
    found = []
    for path in sorted((ROOT / "cli").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            name = _private_runtime_module(node)
            if name is not None:
                found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {name}")
    assert found == []
    for source, private in [
        ("from regisseur.actors._version import version", True),
        ("import regisseur.actors.downloads._owners", True),
        ("from regisseur.actors.downloads import _owners", True),
        ("from regisseur.actors import __version__", False),
        ("from regisseur.cli._records_db import DB_NAME", False),  # its own
    ]:
        nodes = ast.walk(ast.parse(source))
        assert any(_private_runtime_module(n) for n in nodes) is private, source


def test_the_ast_check_sees_each_way_of_importing_it() -> None:
    # Guards the test above against passing by seeing nothing.
    samples = [
        "import regisseur.cli",
        "import regisseur.cli.status as s",
        "from regisseur.cli import main",
        "from regisseur.cli.demo import run_demo",
        "from regisseur import cli",
        "def f():\n    from regisseur.cli.download import run_download",
        "importlib.import_module('regisseur.cli.status')",
    ]
    for source in samples:
        assert any(_mentions_cli(n) for n in ast.walk(ast.parse(source))), source
    for source in ("import regisseur.client", "from regisseur.actors import cli_like"):
        assert not any(_mentions_cli(n) for n in ast.walk(ast.parse(source))), source


def test_importing_the_whole_runtime_loads_no_cli_module(tmp_path: Path) -> None:
    # Every runtime module, and a system that starts, runs a download
    # source and stops: nothing of regisseur.cli is loaded on the way.
    code = """
import importlib, pkgutil, sys
import regisseur.actors, regisseur.messages, regisseur.supervision
for package in (regisseur.actors, regisseur.messages, regisseur.supervision):
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        importlib.import_module(info.name)
from regisseur.actors import ActorSystem
from regisseur.actors.downloads.http import HttpSource
system = ActorSystem(name="separation", download_sources=[HttpSource("http", directory="out")])
system.start()
system.stop()
loaded = sorted(m for m in sys.modules if m == "regisseur.cli" or m.startswith("regisseur.cli."))
print(loaded)
"""
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
