"""Validation of ChildSpec, Supervisor, Backoff and Directive: clear errors naming the field."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.supervision import Backoff, ChildSpec, Directive, Restart, Strategy, Supervisor
from regisseur.supervision.testing import FaultInjector
from tests.supervision.helpers import Journal, Worker


class NotAnActor:
    pass


class Plain(Actor):
    """Takes whatever arguments a spec gives (the base Actor's __init__)."""


def _child(**overrides: Any) -> ChildSpec:
    options: dict[str, Any] = {"name": "w", "actor": Plain, **overrides}
    return ChildSpec(**options)


# -- ChildSpec -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("name", 3, TypeError),
        ("name", None, TypeError),
        ("name", "", ValueError),
        ("name", "   ", ValueError),
        ("name", "a\nb", ValueError),
        ("name", "x" * 201, ValueError),
        ("actor", NotAnActor, TypeError),
        ("actor", pykka.ThreadingActor, TypeError),
        ("actor", "Worker", TypeError),
        ("args", "abc", TypeError),
        ("args", 5, TypeError),
        ("kwargs", [("a", 1)], TypeError),
        ("kwargs", {1: "a"}, TypeError),
        ("depends_on", 5, TypeError),
        ("depends_on", ("db", "db"), ValueError),
        ("depends_on", ("",), ValueError),
        ("depends_on", (3,), TypeError),
        ("restart", "sometimes", ValueError),
        ("restart", 3, ValueError),
        ("backoff", 2.0, TypeError),
        ("max_failures", 0, ValueError),
        ("max_failures", -1, ValueError),
        ("max_failures", 1.5, TypeError),
        ("max_failures", True, TypeError),
        ("start_timeout", 0, ValueError),
        ("start_timeout", -1, ValueError),
        ("start_timeout", float("nan"), ValueError),
        ("start_timeout", float("inf"), ValueError),
        ("start_timeout", "10", TypeError),
        ("shutdown_timeout", 0, ValueError),
        ("shutdown_timeout", None, TypeError),
        ("rollback_on_failure", "yes", TypeError),
        ("description", 5, TypeError),
    ],
)
def test_child_spec_rejects_bad_fields_by_name(field: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=field if field != "name" else "ChildSpec.name"):
        _child(**{field: value})


def test_child_spec_errors_name_the_child() -> None:
    with pytest.raises(TypeError, match="ChildSpec 'fetcher': backoff"):
        ChildSpec("fetcher", Plain, backoff=3)


def test_child_spec_normalises_what_it_accepts() -> None:
    spec = ChildSpec(
        "w", Plain, args=[1], kwargs={"journal": None}, depends_on="db", restart="transient"
    )
    assert spec.args == (1,)
    assert spec.depends_on == ("db",)
    assert spec.restart is Restart.TRANSIENT
    with pytest.raises(TypeError):
        spec.kwargs["other"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


def test_child_spec_kwargs_are_copied() -> None:
    kwargs: dict[str, Any] = {"journal": Journal()}
    spec = ChildSpec("w", Worker, kwargs=kwargs)
    kwargs["journal"] = None
    assert isinstance(spec.kwargs["journal"], Journal)


# -- the argument check's fast path ------------------------------------------------
class _Sig(Actor):
    """Base for the classes below: each replaces ``__init__`` with one shape."""


def _init_shapes() -> list[type]:
    def plain(self: Any, a: Any, b: Any = 1) -> None: ...
    def keyword_only(self: Any, a: Any, *, k: Any, j: Any = 2) -> None: ...
    def var_args(self: Any, a: Any, *rest: Any) -> None: ...
    def var_kwargs(self: Any, a: Any = 0, **extra: Any) -> None: ...
    def positional_only(self: Any, a: Any, /, b: Any = 1) -> None: ...
    def positional_only_kwargs(self: Any, a: Any, /, **extra: Any) -> None: ...
    def nothing(self: Any) -> None: ...

    shapes = [plain, keyword_only, var_args, var_kwargs, positional_only, positional_only_kwargs]
    shapes.append(nothing)
    return [type(f.__name__, (_Sig,), {"__init__": f}) for f in shapes]


_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((), {"a": 1}),
    ((1,), {"a": 1}),
    ((1,), {"b": 2}),
    ((1,), {"k": 3}),
    ((1,), {"k": 3, "j": 4}),
    ((), {"a": 1, "k": 3}),
    ((1,), {"zzz": 1}),
    ((1,), {"self": 1}),
]


@pytest.mark.parametrize("actor", _init_shapes(), ids=lambda cls: cls.__name__)
def test_child_spec_checks_arguments_as_python_binds_them(actor: type) -> None:
    """Every shape of ``__init__`` and every call: the spec accepts exactly what binds."""
    import inspect

    for args, kwargs in _CALLS:
        try:
            inspect.signature(actor).bind(*args, **kwargs)
        except TypeError:
            with pytest.raises(TypeError, match="args/kwargs do not fit"):
                ChildSpec("w", actor, args=args, kwargs=kwargs)
        else:
            assert ChildSpec("w", actor, args=args, kwargs=kwargs).args == args


def test_the_fast_argument_check_answers_the_common_shapes() -> None:
    """The spec's check skips ``inspect`` for a plain ``__init__`` (what spawn pays)."""
    from regisseur.supervision.spec import _surely_binds

    plain = _init_shapes()[0]
    assert _surely_binds(plain, (1,), {})
    assert _surely_binds(plain, (), {"a": 1, "b": 2})
    assert _surely_binds(Plain, (1, 2), {"x": 3})
    assert not _surely_binds(plain, (), {})  # missing: left to inspect, which words it


def test_a_wrapped_init_is_checked_against_what_it_wraps() -> None:
    import functools

    def real(self: Any, value: Any) -> None: ...

    @functools.wraps(real)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None: ...

    actor = type("Wrapped", (_Sig,), {"__init__": wrapper})
    with pytest.raises(TypeError, match=r"Wrapped\(value\)"):
        ChildSpec("w", actor)


def test_a_partialmethod_init_is_checked_against_what_it_leaves_open() -> None:
    import functools

    def setup(self: Any, mode: Any, path: Any) -> None: ...

    actor = type("Partial", (_Sig,), {"__init__": functools.partialmethod(setup, "fast")})
    with pytest.raises(TypeError, match="missing a required argument: 'path'"):
        ChildSpec("w", actor)
    assert ChildSpec("w", actor, args=("/tmp",)).args == ("/tmp",)


# -- Supervisor ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("children", "abc", TypeError),
        ("children", 5, TypeError),
        ("children", [Worker], TypeError),
        ("strategy", "best_effort", ValueError),
        ("max_restarts", -1, ValueError),
        ("max_restarts", 1.5, TypeError),
        ("max_restarts", True, TypeError),
        ("max_restarts", "3", TypeError),
        ("within", 0, ValueError),
        ("within", -5, ValueError),
        ("within", "5", TypeError),
        ("within", float("nan"), ValueError),
        ("backoff", 2, TypeError),
        ("backoff", None, TypeError),
        ("decider", "restart", TypeError),
    ],
)
def test_supervisor_rejects_bad_fields_by_name(field: str, value: Any, error: type) -> None:
    options: dict[str, Any] = {"children": [_child()], field: value}
    with pytest.raises(error, match=f"Supervisor {field}"):
        Supervisor(**options)


def test_supervisor_accepts_strategy_values() -> None:
    assert Supervisor([], strategy="rest_for_one").strategy is Strategy.REST_FOR_ONE  # type: ignore[arg-type]


def test_duplicate_sibling_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate child name 'w'"):
        Supervisor([_child(), _child()])


def test_unknown_dependencies_are_rejected_naming_both_children() -> None:
    with pytest.raises(ValueError, match="child 'web' depends on unknown child 'db'"):
        Supervisor([ChildSpec("web", Plain, depends_on=("db",))])


def test_self_dependencies_are_rejected() -> None:
    with pytest.raises(ValueError, match="'w' depends on itself"):
        Supervisor([_child(depends_on=("w",))])


def test_cycles_are_rejected_naming_the_whole_cycle() -> None:
    children = [
        ChildSpec("a", Plain, depends_on=("c",)),
        ChildSpec("b", Plain, depends_on=("a",)),
        ChildSpec("c", Plain, depends_on=("b",)),
        ChildSpec("d", Plain),
    ]
    with pytest.raises(ValueError, match="dependency cycle: ") as info:
        Supervisor(children)
    message = str(info.value)
    assert all(name in message for name in ("a", "b", "c"))
    assert "d" not in message.split(":", 1)[1]


def test_duplicates_across_nesting_levels_are_rejected_by_the_system() -> None:
    tree = [_child(), ChildSpec("sub", Supervisor([_child()]))]
    with pytest.raises(ValueError, match="'w'"):
        ActorSystem(tree, clock=ManualClock(), database_url=None)


def test_bad_system_supervision_options_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        ActorSystem(max_restarts=-1, clock=ManualClock(), database_url=None)
    with pytest.raises(ValueError, match="within"):
        ActorSystem(within=0, clock=ManualClock(), database_url=None)
    with pytest.raises(ValueError, match="strategy"):
        ActorSystem(strategy="sometimes", clock=ManualClock(), database_url=None)  # type: ignore[arg-type]


# -- Backoff ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("initial", -1, ValueError),
        ("initial", "2", TypeError),
        ("initial", float("nan"), ValueError),
        ("initial", float("inf"), ValueError),
        ("multiplier", 0.5, ValueError),
        ("multiplier", "2", TypeError),
        ("multiplier", True, TypeError),
        ("multiplier", float("inf"), ValueError),
        ("maximum", -1, ValueError),
        ("maximum", None, TypeError),
        ("maximum", 1.0, ValueError),  # below the default initial of 2
        ("jitter", 1.5, ValueError),
        ("jitter", -0.1, ValueError),
        ("jitter", "0.1", TypeError),
    ],
)
def test_backoff_rejects_bad_fields_by_name(field: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=field):
        Backoff(**{field: value})


# -- Directive ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), ("5", TypeError), (float("nan"), ValueError)]
)
def test_restart_after_rejects_bad_delays(value: Any, error: type) -> None:
    with pytest.raises(error, match=r"restart_after\(seconds\)"):
        Directive.restart_after(value)


def test_directives_compare_by_kind_and_delay() -> None:
    assert Directive.restart_after(3) == Directive.restart_after(3.0)
    assert Directive.restart_after(3) != Directive.RESTART
    assert repr(Directive.restart_after(3)) == "Directive.restart_after(3.0)"
    assert repr(Directive.STOP) == "Directive.STOP"


# -- FaultInjector ----------------------------------------------------------------------
class Quiet(Actor):
    pass


def test_fault_injector_rejects_bad_arguments(
    actor_system: ActorSystem, faults: FaultInjector
) -> None:
    actor_system.spawn(ChildSpec("q", Quiet))
    with pytest.raises(ValueError, match="times"):
        faults.crash("q", times=0)
    with pytest.raises(TypeError, match="times"):
        faults.fail_start("q", times=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message_type"):
        faults.crash("q", message_type="str")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hang"):
        faults.hang("q", -1)
    with pytest.raises(LookupError, match="ghost"):
        faults.crash("ghost")
    assert faults.pending("q") == 0
