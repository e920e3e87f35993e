"""The library's packages talk through public seams, not each other's privates.

An AST walk over the installed packages (``actors``, ``messages``,
``supervision`` and their subpackages) asserts:

* only ``actors/_cell.py`` and ``actors/actor.py`` touch an actor's cell
  (``._cell``); subclasses use the protected ``Actor`` API;
* only the bridge ``actors/_pykka.py`` names Pykka's private modules and
  names (``pykka._envelope``, ``pykka.messages._ActorStop``, ...);
* a private module (``_name.py``) is imported only from inside its own
  package (the package it sits in, or a subpackage of it): the supervisor
  reaches the actors package through ``regisseur.actors.runtime``;
* ``messages`` imports nothing of ``actors`` or ``supervision``.

Every import counts, also those inside functions or ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import configparser
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _package_dirs() -> dict[str, str]:
    """setup.cfg's ``package_dir``: installed name -> folder (every package is walked)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    mapping = {}
    for line in config["options"]["package_dir"].strip().splitlines():
        name, _, folder = line.partition("=")
        mapping[name.strip()] = folder.strip()
    return mapping


PACKAGES = _package_dirs()


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. regisseur.actors.downloads.keeper
    package: str  # the package it sits in, e.g. regisseur.actors.downloads
    path: Path
    tree: ast.Module


def _modules() -> list[Module]:
    found = []
    for installed, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            if is_init:
                parts = parts[:-1]
            name = ".".join([installed, *parts])
            package = name if is_init else name.rpartition(".")[0]
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found.append(Module(name, package, path, tree))
    return found


MODULES = _modules()


def _imported(module: Module) -> list[tuple[int, str]]:
    """Every dotted name ``module`` imports: modules, and ``module.name`` for from-imports."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.package.split(".")[: len(module.package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            names.append((node.lineno, origin))
            names += [(node.lineno, f"{origin}.{alias.name}") for alias in node.names]
    return names


def _private_module(dotted: str) -> str | None:
    """The first private module in ``dotted`` (``regisseur.actors._cell``), if any."""
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            candidate = _path_of(parts[: index + 1])
            if candidate is not None and (
                candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file()
            ):
                return ".".join(parts[: index + 1])
            return None  # a private name inside a public module: not a module
    return None


def _path_of(parts: list[str]) -> Path | None:
    """Where the module ``parts`` (dotted, split) would be, without its suffix."""
    for cut in range(len(parts), 0, -1):
        folder = PACKAGES.get(".".join(parts[:cut]))
        if folder is not None:
            return ROOT.joinpath(folder, *parts[cut:])
    return None


def _where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(ROOT)}:{line}"


def test_the_walk_sees_the_packages() -> None:
    names = {m.name for m in MODULES}
    assert {"regisseur.actors.actor", "regisseur.supervision.supervisor"} <= names
    assert "regisseur.actors.downloads.keeper" in names
    assert "regisseur.messages" in names


def test_only_the_actor_and_its_cell_touch_the_cell() -> None:
    allowed = {"regisseur.actors._cell", "regisseur.actors.actor"}
    found = [
        _where(module, node.lineno)
        for module in MODULES
        if module.name not in allowed
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Attribute) and node.attr == "_cell"
    ]
    assert found == [], "use the protected Actor API (kept_state, on_mailbox_drained, ...)"


def _names_pykka_private(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[0] == "pykka" and any(p.startswith("_") for p in parts[1:])


def _other_modules() -> list[Module]:
    """The tests, benchmarks and examples (not installed; held to the Pykka rule too)."""
    found = []
    for top in ("tests", "bench", "examples"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found.append(Module(name, name.rpartition(".")[0], path, tree))
    return found


def test_only_the_bridge_names_pykka_privates() -> None:
    allowed = {"regisseur.actors._pykka"}
    found = []
    for module in MODULES + _other_modules():
        if module.name in allowed:
            continue
        for line, dotted in _imported(module):
            if _names_pykka_private(dotted):
                found.append(f"{_where(module, line)} {dotted}")
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and isinstance(node.value, ast.Name)
                and node.value.id == "pykka"
            ):
                found.append(f"{_where(module, node.lineno)} pykka.{node.attr}")
    assert found == [], "import Pykka's internals from regisseur.actors._pykka"


def test_no_package_imports_another_packages_private_modules() -> None:
    found = []
    for module in MODULES:
        for line, dotted in _imported(module):
            private = _private_module(dotted)
            if private is None:
                continue
            home = private.rpartition(".")[0]
            if module.package == home or module.package.startswith(home + "."):
                continue  # its own package's (or a parent package's) internals
            found.append(f"{_where(module, line)} {module.package} -> {private}")
    assert sorted(set(found)) == []


RUNTIME_HOOKS = {"_end_incarnation", "_after_start", "_after_resume", "_failure_limit"}


def _is_system(node: ast.expr) -> bool:
    """``system``, ``self.system``, ``self._system`` and the like."""
    if isinstance(node, ast.Name):
        return node.id in ("system", "_system")
    return isinstance(node, ast.Attribute) and node.attr in ("system", "_system")


def test_other_packages_use_no_privates_of_the_system_or_the_actor_runtime() -> None:
    """Outside ``regisseur.actors`` itself: no ``system._x``, no runtime hooks of ``Actor``.

    (The subpackages too: downloads and cluster use ``actors.runtime`` and
    the protected ``Actor`` API, like the supervisor.)
    """
    found = []
    for module in MODULES:
        if module.package == "regisseur.actors":
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef) and node.name in RUNTIME_HOOKS:
                found.append(f"{_where(module, node.lineno)} defines {node.name}")
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in RUNTIME_HOOKS:
                found.append(f"{_where(module, node.lineno)} uses {node.attr}")
            elif node.attr.startswith("_") and not node.attr.startswith("__"):
                if _is_system(node.value):
                    found.append(f"{_where(module, node.lineno)} {ast.unparse(node)}")
    assert found == []


def test_messages_import_nothing_of_actors_or_supervision() -> None:
    found = [
        f"{_where(module, line)} {dotted}"
        for module in MODULES
        if module.name.startswith("regisseur.messages")
        for line, dotted in _imported(module)
        if dotted.startswith(("regisseur.actors", "regisseur.supervision"))
    ]
    assert found == []


def test_supervision_reaches_actors_through_public_modules_only() -> None:
    found = [
        f"{_where(module, line)} {dotted}"
        for module in MODULES
        if module.name.startswith("regisseur.supervision")
        for line, dotted in _imported(module)
        if dotted.startswith("regisseur.actors") and _private_module(dotted) is not None
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from regisseur.actors._cell import Cell", ["regisseur.actors._cell"]),
        ("from regisseur.actors import _cell", ["regisseur.actors._cell"]),
        ("import regisseur.actors._faults", ["regisseur.actors._faults"]),
        ("from regisseur.supervision.directive import _Kind", []),
    ],
)
def test_the_walk_finds_private_imports_in_every_spelling(source: str, expected: list[str]) -> None:
    module = Module("regisseur.supervision.probe", "regisseur.supervision", ROOT, ast.parse(source))
    privates = {p for _, d in _imported(module) if (p := _private_module(d)) is not None}
    assert sorted(privates) == expected
