"""The start-order graph: validation and levels, as pure functions.

Specs are checked before anything starts (like OTP's ``check_childspecs``):
a duplicate name, an unknown dependency, a self-dependency or a cycle is a
``ValueError`` naming what is wrong (the whole path, for a cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from regisseur.supervision.spec import ChildSpec

__all__ = ["dependents", "levels", "validate"]


def validate(specs: Sequence[ChildSpec], existing: Collection[str] = ()) -> None:
    """Raise ``ValueError`` if ``specs`` cannot be started as one graph.

    ``existing`` are names already running beside them (dependencies may
    point at those); only looked up, so a spawn beside many siblings costs
    no more than one beside a few.
    """
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen or spec.name in existing:
            msg = f"duplicate child name {spec.name!r}"
            raise ValueError(msg)
        seen.add(spec.name)
    for spec in specs:
        for dep in spec.depends_on:
            if dep == spec.name:
                msg = f"child {spec.name!r} depends on itself"
                raise ValueError(msg)
            if dep not in seen and dep not in existing:
                msg = f"child {spec.name!r} depends on unknown child {dep!r}"
                raise ValueError(msg)
    _check_cycles(specs)


def _check_cycles(specs: Sequence[ChildSpec]) -> None:
    deps = {s.name: s.depends_on for s in specs}
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    for root in deps:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            children = [d for d in deps.get(node, ()) if d in deps]
            if index < len(children):
                stack.append((node, index + 1))
                child = children[index]
                if state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    msg = f"dependency cycle: {' -> '.join(cycle)}"
                    raise ValueError(msg)
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()


def levels(specs: Sequence[ChildSpec], started: Iterable[str] = ()) -> list[list[ChildSpec]]:
    """Group specs into start levels: each level depends only on earlier ones.

    Children of one level may start concurrently; order inside a level keeps
    the order of ``specs``. Dependencies in ``started`` count as level 0.
    """
    done = set(started)
    depth: dict[str, int] = {}
    by_name = {s.name: s for s in specs}

    def level_of(name: str) -> int:
        if name in depth:
            return depth[name]
        spec = by_name[name]
        inner = [level_of(d) for d in spec.depends_on if d in by_name and d not in done]
        depth[name] = 1 + max(inner, default=-1)
        return depth[name]

    for spec in specs:
        level_of(spec.name)
    grouped: list[list[ChildSpec]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for spec in specs:
        grouped[depth[spec.name]].append(spec)
    return grouped


def dependents(name: str, specs: Sequence[ChildSpec]) -> set[str]:
    """Every spec that depends on ``name``, directly or transitively."""
    found: set[str] = set()
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for spec in specs:
            if current in spec.depends_on and spec.name not in found:
                found.add(spec.name)
                frontier.append(spec.name)
    return found
