"""No global mutable state: the packages keep no module-level mutable containers.

The project rule is that two systems in one process stay apart: whatever a
system (or an event loop it serves) needs is owned by an object with a
lifetime, never by a module. This walks the source of every installed
package (the ``package_dir`` folders of setup.cfg, including packages added
later) and fails on:

- a module-level or class-level name bound to an object made to hold state
  (``threading.local()``, a lock, a weak dictionary, ``defaultdict``,
  ``deque``, ``itertools.count()``, a queue, ...);
- a module-level or class-level container (list, dict or set display,
  comprehension, ``dict()``/``list()``/``set()``) that is not a constant: a
  constant is spelled in UPPER_CASE (``__all__`` included) and nothing in
  the packages changes it (no item assignment or deletion, no ``+=``, no
  ``append``/``update``/``setdefault``/... on it, no ``global`` statement);
- a ``functools.cache``/``lru_cache`` on a function that takes arguments (a
  cache that grows with what every system passes it). On a function
  without parameters it memoises one fact of the process (the installed
  version, a C library function) and is allowed.

What must stay process-wide despite this is listed in ``ALLOWED`` with the
reason; keep that list short.
"""

from __future__ import annotations

import ast
import configparser
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: (file relative to the repository, name) -> why it must be process-wide.
ALLOWED: dict[tuple[str, str], str] = {
    ("actors/_cell.py", "_local"): (
        "thread-local: which cell the current thread runs; each actor thread "
        "belongs to exactly one system, so no system reads another's"
    ),
    ("actors/_cell.py", "_thread_ids"): (
        "numbers for thread names only; thread names are process-wide anyway "
        "and nothing reads the counter back"
    ),
    ("actors/log.py", "_CONFIGURE_LOCK"): (
        "serialises configure_logging(), which changes the logging module's "
        "own process-wide configuration"
    ),
}

#: Calls whose result exists to hold or coordinate changing state.
STATEFUL_CALLS = frozenset(
    {
        "local",
        "Lock",
        "RLock",
        "Condition",
        "Semaphore",
        "BoundedSemaphore",
        "Event",
        "Barrier",
        "WeakKeyDictionary",
        "WeakValueDictionary",
        "WeakSet",
        "defaultdict",
        "deque",
        "OrderedDict",
        "Counter",
        "ChainMap",
        "count",
        "Queue",
        "SimpleQueue",
        "LifoQueue",
        "PriorityQueue",
        "bytearray",
    }
)
CONTAINER_CALLS = frozenset({"dict", "list", "set"})
MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
        "appendleft",
        "extendleft",
        "popleft",
        "__setitem__",
        "__delitem__",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)
CACHES = frozenset({"cache", "lru_cache", "cached_property"})


@dataclass(frozen=True)
class Binding:
    path: str
    line: int
    name: str
    kind: str  # "stateful" or "container"


def package_folders() -> list[Path]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["package_dir"].strip().splitlines()
    folders = [ROOT / line.split("=", 1)[1].strip() for line in lines if "=" in line]
    assert folders, "setup.cfg lists no package_dir"
    return folders


def modules() -> list[Path]:
    return sorted(p for folder in package_folders() for p in folder.rglob("*.py"))


def _called_name(node: ast.expr) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _kind(value: ast.expr | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)):
        return "container"
    called = _called_name(value)
    if called in STATEFUL_CALLS:
        return "stateful"
    if called in CONTAINER_CALLS:
        return "container"
    return None


def _bindings(body: list[ast.stmt], path: str) -> list[Binding]:
    """Module-level and class-level bindings to stateful objects or containers."""
    found: list[Binding] = []
    for statement in body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            kind = _kind(statement.value)
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if kind is not None:
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            found.append(Binding(path, statement.lineno, name.id, kind))
        elif isinstance(statement, ast.ClassDef):
            found.extend(_bindings(statement.body, path))
        elif isinstance(statement, (ast.If, ast.Try, ast.With)):
            found.extend(_bindings(statement.body, path))
            found.extend(_bindings(getattr(statement, "orelse", []), path))
            found.extend(_bindings(getattr(statement, "finalbody", []), path))
            for handler in getattr(statement, "handlers", []):
                found.extend(_bindings(handler.body, path))
    return found


def _receiver(node: ast.expr) -> str | None:
    """``NAME`` for ``NAME`` or ``something.NAME``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def mutated_names(tree: ast.AST) -> set[str]:
    """Names whose object some statement of ``tree`` changes in place or rebinds globally."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript):
                    names.add(_receiver(target.value) or "")
                elif isinstance(node, ast.AugAssign):
                    names.add(_receiver(target) or "")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
        ):
            names.add(_receiver(node.func.value) or "")
    names.discard("")
    return names


def argument_caches(tree: ast.AST, path: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        if params and params[0].arg in ("self", "cls"):
            params = params[1:]  # per instance: a cached_property, a method cache
        takes = bool(params or args.vararg or args.kwarg)
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = _receiver(target)
            if name in CACHES and name != "cached_property" and takes:
                found.append(f"{path}:{node.lineno} {node.name}() caches per argument")
    return found


def _is_constant_name(name: str) -> bool:
    return name == "__all__" or (name.strip("_").isupper() and not name.startswith("__"))


def violations() -> list[str]:
    trees = {str(p.relative_to(ROOT)): ast.parse(p.read_text(), str(p)) for p in modules()}
    mutated: set[str] = set()
    for tree in trees.values():
        mutated |= mutated_names(tree)
    found: list[str] = []
    for path, tree in trees.items():
        assert isinstance(tree, ast.Module)
        for binding in _bindings(tree.body, path):
            if (path, binding.name) in ALLOWED:
                continue
            where = f"{path}:{binding.line} {binding.name}"
            if binding.kind == "stateful":
                found.append(f"{where} holds state at module or class level")
            elif not _is_constant_name(binding.name):
                found.append(f"{where} is a module-level container not named as a constant")
            elif binding.name in mutated:
                found.append(f"{where} is a constant's name, but something changes it")
        found.extend(argument_caches(tree, path))
    return found


def test_the_packages_keep_no_module_level_mutable_state() -> None:
    found = violations()
    assert not found, (
        "global mutable state (two systems in one process must stay apart; give it "
        "an owner with a lifetime, or list it in ALLOWED with the reason):\n" + "\n".join(found)
    )


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    """The walker itself finds each kind (so a green run means something)."""
    source = (
        "import functools, threading, weakref\n"
        "_by_loop = weakref.WeakKeyDictionary()\n"
        "_COMPILED = {}\n"
        "def put(k, v):\n"
        "    _COMPILED[k] = v\n"
        "_seen = []\n"
        "LIMITS = {'a': 1}\n"
        "class Registry:\n"
        "    instances: list[object] = []\n"
        "@functools.lru_cache(maxsize=None)\n"
        "def lookup(key): ...\n"
        "@functools.cache\n"
        "def version(): ...\n"
    )
    tree = ast.parse(source)
    bindings = {b.name: b.kind for b in _bindings(tree.body, "x.py")}
    assert bindings == {
        "_by_loop": "stateful",
        "_COMPILED": "container",
        "_seen": "container",
        "LIMITS": "container",
        "instances": "container",
    }
    assert "_COMPILED" in mutated_names(tree)
    assert "LIMITS" not in mutated_names(tree)
    assert not _is_constant_name("_seen") and not _is_constant_name("instances")
    assert argument_caches(tree, "x.py") == ["x.py:11 lookup() caches per argument"]
