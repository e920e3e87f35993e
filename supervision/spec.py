"""``ChildSpec``: declarative description of one supervised child."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from types import FunctionType, MappingProxyType
from typing import TYPE_CHECKING, Any

from regisseur.actors.clock import check_duration
from regisseur.supervision.backoff import Backoff
from regisseur.supervision.directive import Restart

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["ChildSpec", "check_name"]

MAX_NAME_LENGTH = 200


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a usable actor name, else raise a clear error."""
    if not isinstance(name, str):
        msg = f"{what} must be a str, got {type(name).__name__} {name!r}"
        raise TypeError(msg)
    if not name.strip():
        msg = f"{what} must not be empty or blank, got {name!r}"
        raise ValueError(msg)
    if len(name) > MAX_NAME_LENGTH:
        msg = f"{what} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        raise ValueError(msg)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        msg = f"{what} must not contain control characters, got {name!r}"
        raise ValueError(msg)
    return name


def _surely_binds(actor: type, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """True when ``actor(*args, **kwargs)`` certainly binds to a plain ``__init__``.

    Reads the code object of ``__init__`` directly (a few microseconds, where
    ``inspect.signature`` takes about 25 per spec, which every ``spawn``
    pays). Anything unusual (a metaclass ``__call__``, a ``__new__``, a
    wrapped, partial or C ``__init__``, a name given twice) answers False,
    and the caller asks ``inspect``, which also words the error.
    """
    cls: Any = actor  # its dunders are read as plain attributes
    if type(cls).__call__ is not type.__call__ or cls.__new__ is not object.__new__:
        return False
    init = cls.__init__
    if (
        not isinstance(init, FunctionType)
        or hasattr(init, "__wrapped__")
        or hasattr(cls, "__wrapped__")
        # a functools.partialmethod reads as a plain (self, *args, **kw) function
        or hasattr(init, "_partialmethod")
        or hasattr(init, "__partialmethod__")
        or getattr(actor, "__signature__", None) is not None
        or getattr(init, "__signature__", None) is not None
    ):
        return False
    code = init.__code__
    npos, nkw, posonly = code.co_argcount, code.co_kwonlyargcount, code.co_posonlyargcount
    if npos < 1 or posonly > 1:
        return False  # no self, or positional-only parameters after it: ask inspect
    positional = code.co_varnames[1:npos]  # without self
    keyword_only = code.co_varnames[npos : npos + nkw]
    if len(args) > len(positional) and not code.co_flags & inspect.CO_VARARGS:
        return False
    filled = set(positional[: len(args)])
    for key in kwargs:
        if key in filled:
            return False
        if key in positional or key in keyword_only:
            filled.add(key)
        elif not code.co_flags & inspect.CO_VARKEYWORDS:
            return False
    required = positional[: len(positional) - len(init.__defaults__ or ())]
    kw_defaults = init.__kwdefaults__ or {}
    return all(name in filled for name in required) and all(
        name in filled or name in kw_defaults for name in keyword_only
    )


def _check_arguments(
    where: str, actor: type, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """Raise ``TypeError`` now if ``actor(*args, **kwargs)`` cannot bind.

    Binding only matches names and counts against ``__init__``'s signature
    (nothing is built or called), so a misspelt keyword or a missing
    argument is reported where the spec is written, not as a failed start.
    """
    if _surely_binds(actor, args, kwargs):
        return
    try:
        signature = inspect.signature(actor)
    except (TypeError, ValueError):  # no signature to check (a C extension)
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        empty = inspect.Parameter.empty
        shown = signature.replace(
            parameters=[p.replace(annotation=empty) for p in signature.parameters.values()],
            return_annotation=empty,
        )
        msg = f"{where}: args/kwargs do not fit {actor.__qualname__}{shown}: {exc}"
        raise TypeError(msg) from None


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start, restart and stop one child of a supervisor.

    ``actor`` is an ``Actor`` subclass (built as ``actor(*args, **kwargs)`` on
    the child's own thread at every start; the arguments are checked against its
    ``__init__`` when the spec is made, ``TypeError`` naming the one that does
    not fit) or a ``Supervisor`` (a nested tree). ``depends_on`` names siblings
    that must be started first (and are stopped after it). ``backoff`` and
    ``max_failures`` override the supervisor's; ``max_failures`` consecutive
    failures stop the child for good. ``start_timeout`` bounds ``on_start`` plus
    the first health check; ``shutdown_timeout`` bounds ``on_stop`` (real
    seconds). With ``rollback_on_failure=False`` a failed start of a sibling
    does not run this child's ``on_stop`` (its thread still ends).
    ``singleton=True``: in cluster mode the child runs on exactly one node of
    the cluster at a time and moves to a surviving node when that one dies (a
    single node just runs it). ``significant=True`` (TRANSIENT or TEMPORARY
    children only): when this child ends by itself, its supervisor may end too
    (see ``Supervisor.auto_shutdown``).
    """

    name: str
    actor: Any
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    restart: Restart = Restart.PERMANENT
    backoff: Backoff | None = None
    max_failures: int | None = None
    start_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    rollback_on_failure: bool = True
    description: str = ""
    singleton: bool = False
    significant: bool = False

    def __post_init__(self) -> None:
        from regisseur.actors.actor import Actor
        from regisseur.supervision.supervisor import Supervisor

        check_name(self.name, "ChildSpec.name")
        where = f"ChildSpec {self.name!r}"
        if not (
            isinstance(self.actor, Supervisor)
            or (isinstance(self.actor, type) and issubclass(self.actor, Actor))
        ):
            msg = (
                f"{where}: actor must be an actors.Actor subclass or a Supervisor, "
                f"got {self.actor!r}"
            )
            raise TypeError(msg)
        if isinstance(self.args, (str, bytes)) or not isinstance(self.args, (tuple, list)):
            msg = f"{where}: args must be a tuple, got {type(self.args).__name__}"
            raise TypeError(msg)
        object.__setattr__(self, "args", tuple(self.args))
        if not hasattr(self.kwargs, "items"):
            msg = f"{where}: kwargs must be a mapping, got {type(self.kwargs).__name__}"
            raise TypeError(msg)
        for key in self.kwargs:
            if not isinstance(key, str):
                msg = f"{where}: kwargs keys must be str, got {key!r}"
                raise TypeError(msg)
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))
        deps = self.depends_on
        if isinstance(deps, str):
            deps = (deps,)
        if not isinstance(deps, (tuple, list, set, frozenset)):
            msg = f"{where}: depends_on must be a tuple of names, got {type(deps).__name__}"
            raise TypeError(msg)
        deps = tuple(check_name(d, f"{where}: depends_on entry") for d in deps)
        if len(set(deps)) != len(deps):
            msg = f"{where}: depends_on names a sibling twice: {list(deps)}"
            raise ValueError(msg)
        object.__setattr__(self, "depends_on", deps)
        if not isinstance(self.restart, Restart):
            try:
                object.__setattr__(self, "restart", Restart(self.restart))
            except ValueError:
                choices = ", ".join(r.name for r in Restart)
                msg = f"{where}: restart must be one of {choices}, got {self.restart!r}"
                raise ValueError(msg) from None
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            msg = f"{where}: backoff must be a Backoff, got {type(self.backoff).__name__}"
            raise TypeError(msg)
        if self.max_failures is not None:
            if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int):
                msg = f"{where}: max_failures must be an int or None, got {self.max_failures!r}"
                raise TypeError(msg)
            if self.max_failures < 1:
                msg = f"{where}: max_failures must be >= 1, got {self.max_failures}"
                raise ValueError(msg)
        for attr in ("start_timeout", "shutdown_timeout"):
            value = check_duration(getattr(self, attr), f"{where}: {attr}", allow_zero=False)
            object.__setattr__(self, attr, value)
        if not isinstance(self.rollback_on_failure, bool):
            msg = f"{where}: rollback_on_failure must be a bool"
            raise TypeError(msg)
        if not isinstance(self.description, str):
            msg = f"{where}: description must be a str"
            raise TypeError(msg)
        if not isinstance(self.singleton, bool):
            msg = f"{where}: singleton must be a bool, got {self.singleton!r}"
            raise TypeError(msg)
        if not isinstance(self.significant, bool):
            msg = f"{where}: significant must be a bool, got {self.significant!r}"
            raise TypeError(msg)
        if self.significant and self.restart is Restart.PERMANENT:
            msg = (
                f"{where}: a significant child must be TRANSIENT or TEMPORARY "
                "(a PERMANENT child is restarted, so it never ends by itself)"
            )
            raise ValueError(msg)
        assert math.isfinite(self.start_timeout)
        if not isinstance(self.actor, Supervisor):
            _check_arguments(where, self.actor, self.args, self.kwargs)

    @property
    def is_supervisor(self) -> bool:
        """True when this child is a nested supervisor."""
        from regisseur.supervision.supervisor import Supervisor

        return isinstance(self.actor, Supervisor)

    def stop_bound(self) -> float:
        """How long a stop of this child is awaited before it is abandoned (real seconds).

        An actor: its ``shutdown_timeout``. A nested supervisor stops its
        own children one after another, each within its own bound, so it is
        awaited for its ``shutdown_timeout`` (its own part of the stop) plus
        the sum of its children's bounds: abandoned only if it overruns what
        its children may take, never while it still waits, within their
        bounds, for a slow one (whose successor would then start beside a
        child still registered). Erlang/OTP gives a supervisor child
        ``shutdown => infinity`` for the same reason; every level here still
        bounds its own children, so the sum is finite. Any thread (it only
        reads the specs).
        """
        if not self.is_supervisor:
            return self.shutdown_timeout
        children: Sequence[ChildSpec] = self.actor.children
        nested: float = sum(child.stop_bound() for child in children)
        return self.shutdown_timeout + nested
