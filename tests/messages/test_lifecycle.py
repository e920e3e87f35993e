"""One lifecycle vocabulary: cells, supervised children, the system and health.

Each place reports ``regisseur.messages.Lifecycle`` (a ``str`` enum, so the
strings users compare and store keep working), and each place's declared
subset (``CELL_STATES`` …) is exactly what the code assigns: a state declared
but never reached, or reached but not declared, fails here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import regisseur.actors
import regisseur.supervision
from regisseur.actors import ActorSystem, ServiceActor
from regisseur.actors._cell import CellState
from regisseur.messages import HealthReport, Lifecycle, Pause
from regisseur.messages.lifecycle import (
    CELL_STATES,
    CHILD_STATES,
    HEALTH_STATES,
    SYSTEM_STATES,
)
from regisseur.supervision import ChildSpec, ChildStatus
from regisseur.supervision.protocol import inspect
from regisseur.supervision.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Iterator


class Feed(ServiceActor):
    def update(self) -> None:
        pass


class Idle(ServiceActor):
    def update(self) -> None:
        pass


# -- what each place reports -----------------------------------------------------


def test_the_old_enum_names_are_the_shared_enum() -> None:
    assert CellState is Lifecycle
    assert ChildStatus is Lifecycle


@pytest.mark.timeout(30)
def test_cells_children_system_and_health_all_report_the_shared_enum(
    actor_system: ActorSystem,
) -> None:
    actor_system.spawn(ChildSpec("feed", Feed, args=("feed",)))
    actor_system.spawn(ChildSpec("other", Idle, args=("other",)))
    actor_system.tell("feed", Pause())
    actor_system.settle()

    assert actor_system.state is Lifecycle.RUNNING
    cell = actor_system.registry.find("feed")
    assert cell is not None
    assert cell.state is Lifecycle.RUNNING
    root = actor_system.registry.find("root")
    assert root is not None
    statuses = {info.name: info.status for info in inspect(root.ref, timeout=5)}
    assert statuses == {"feed": Lifecycle.RUNNING, "other": Lifecycle.RUNNING}

    health = actor_system.health()
    assert health.status is Lifecycle.RUNNING
    feed, other = health.find("feed"), health.find("other")
    assert feed is not None and other is not None
    assert feed.status is Lifecycle.PAUSED  # a paused service: assigned, not declared only
    assert other.status is Lifecycle.RUNNING
    assert all(type(report.status) is Lifecycle for report in health.walk())


@pytest.mark.timeout(30)
def test_the_system_goes_new_running_stopped(tmp_path: Path) -> None:
    system = ActorSystem(clock=ManualClock(), database_url=f"sqlite:///{tmp_path / 's.db'}")
    assert system.state is Lifecycle.NEW
    with system:
        assert system.state is Lifecycle.RUNNING
    assert system.state is Lifecycle.STOPPED
    assert system.health().status is Lifecycle.STOPPED


def test_the_strings_users_compare_and_store_are_unchanged() -> None:
    assert Lifecycle.RUNNING == "running"
    assert Lifecycle("paused") is Lifecycle.PAUSED
    assert f"{Lifecycle.RESTARTING}" == str(Lifecycle.RESTARTING) == "restarting"
    assert json.dumps({"status": Lifecycle.FAILED}) == '{"status": "failed"}'
    assert [m.value for m in Lifecycle] == [
        "new",
        "starting",
        "running",
        "paused",
        "restarting",
        "idle",
        "stopping",
        "stopped",
        "failed",
        "dead",
        "unresponsive",
    ]


def test_a_health_report_takes_a_status_string_and_refuses_an_unknown_one() -> None:
    report = HealthReport(name="x", status="paused", healthy=True)  # type: ignore[arg-type]
    assert report.status is Lifecycle.PAUSED
    with pytest.raises(ValueError, match=r"HealthReport.status must be one of .*got 'sleeping'"):
        HealthReport(name="x", status="sleeping", healthy=True)  # type: ignore[arg-type]
    # A lifecycle state that is no health state (a cell's) is refused too.
    for status in ("dead", Lifecycle.IDLE):
        with pytest.raises(ValueError, match=r"is not a health state \(one of: .*paused"):
            HealthReport(name="x", status=status, healthy=True)  # type: ignore[arg-type]


# -- each state declared is assigned, and each assigned is declared ---------------

_ALIASES = {"Lifecycle", "CellState", "ChildStatus"}
_VALUES = {m.value for m in Lifecycle}


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in (regisseur.actors, regisseur.supervision):
        for path in sorted(Path(package.__path__[0]).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _members(node: ast.AST) -> set[Lifecycle]:
    return {
        Lifecycle[n.attr]
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in _ALIASES
    }


def _literals(node: ast.AST) -> list[str]:
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in _VALUES
    ]


def _assigned() -> tuple[dict[str, set[Lifecycle]], list[str]]:
    """States assigned per place, and lifecycle strings assigned where a member belongs."""
    places: dict[str, set[Lifecycle]] = {"cell": set(), "child": set(), "system": set()}
    places["health"] = set()
    strings: list[str] = []
    target_place = {"state": "cell", "status": "child"}

    def note(place: str, value: ast.AST, path: Path, line: int) -> None:
        places[place] |= _members(value)
        strings.extend(f"{path.name}:{line}: {text!r}" for text in _literals(value))

    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr in target_place:
                        place = target_place[target.attr]
                        if path.name == "_lifecycle.py" and target.attr == "state":
                            place = "system"  # the system's state lives in its lifecycle
                        note(place, node.value, path, node.lineno)
                    elif isinstance(target, ast.Name) and target.id == "status":
                        note("health", node.value, path, node.lineno)  # a report's status
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                for keyword in node.keywords:
                    if name == "HealthReport" and keyword.arg == "status":
                        note("health", keyword.value, path, node.lineno)
    return places, strings


def test_each_place_assigns_exactly_the_states_it_declares() -> None:
    places, strings = _assigned()
    assert strings == [], "lifecycle strings where a Lifecycle member belongs (run vocab-rename.sh)"
    assert places["cell"] == CELL_STATES
    assert places["child"] == CHILD_STATES
    assert places["system"] == SYSTEM_STATES
    # A report carries its child's status as the supervisor recorded it, or
    # one of its own (paused, unresponsive; the root's running/stopped/failed).
    assert places["health"] <= HEALTH_STATES
    assert places["health"] | CHILD_STATES == HEALTH_STATES


def test_no_state_is_declared_but_never_assigned() -> None:
    places, _ = _assigned()
    assigned = set().union(*places.values())
    assert set(Lifecycle) - assigned == set()
    assert CELL_STATES | CHILD_STATES | SYSTEM_STATES | HEALTH_STATES == set(Lifecycle)
