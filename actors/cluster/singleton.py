"""Singleton children: run a child on exactly one node of the cluster.

In cluster mode ``ChildSpec(name, ..., singleton=True)`` becomes a small
subtree on every node: a supervisor ``<name>.singleton`` holding a claim
actor ``<name>.claim``. The claim actor holds the cluster claim
``("singleton", name)``; the node that has it spawns the real child
``name`` under that supervisor, the others wait. A claim is only valid
while its node's lease lives, so when that node dies (its lease expires
and it is reaped) or stops (it gives the claim back), another node's
claim actor takes it within one tick and starts the child there.

Siblings that declared ``depends_on=(name,)`` depend on ``<name>.singleton``
instead: they start on every node, whether the singleton runs there or not.

Threads: the claim actor runs on its own thread and uses short
transactions on the system's engine; it never blocks on its supervisor
(spawns and stops are told, and checked again at the next tick).

Failures: a failed claim or renewal is logged and tried again at the next
tick; a child that fails to start is retried at the next tick too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from regisseur.actors import runtime
from regisseur.actors.cluster import schema
from regisseur.actors.cluster.claims import ClaimActor
from regisseur.actors.errors import describe_error
from regisseur.supervision.directive import Strategy
from regisseur.supervision.protocol import Spawn, StopChild
from regisseur.supervision.spec import ChildSpec
from regisseur.supervision.supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SingletonActor", "singleton_specs"]

KIND = "singleton"


def singleton_specs(children: Iterable[ChildSpec], interval: float) -> list[ChildSpec]:
    """``children`` with every ``singleton=True`` spec (at any depth) wrapped.

    ``interval``: how often a node that does not run it tries to claim it.
    """
    children = list(children)
    wrapped = {c.name for c in children if c.singleton}
    out: list[ChildSpec] = []
    for child in children:
        deps = tuple(_guard(d) if d in wrapped else d for d in child.depends_on)
        actor = child.actor
        if isinstance(actor, Supervisor):
            actor = replace(actor, children=tuple(singleton_specs(actor.children, interval)))
        rebuilt = replace(child, depends_on=deps, actor=actor)
        out.append(_wrap(rebuilt, interval) if rebuilt.singleton else rebuilt)
    return out


def _guard(name: str) -> str:
    return f"{name}.singleton"


def _wrap(spec: ChildSpec, interval: float) -> ChildSpec:
    inner = replace(spec, singleton=False, depends_on=())
    claim = ChildSpec(
        f"{spec.name}.claim",
        SingletonActor,
        args=(inner, _guard(spec.name), interval),
        description=f"holds the cluster claim of singleton {spec.name!r}",
    )
    return ChildSpec(
        _guard(spec.name),
        Supervisor((claim,), strategy=Strategy.ONE_FOR_ONE, max_restarts=10, within=10.0),
        depends_on=spec.depends_on,
        description=f"runs {spec.name!r} on one node of the cluster",
    )


class SingletonActor(ClaimActor):
    """Claims a singleton for this node and runs it while it holds the claim."""

    kind = KIND

    def __init__(self, spec: ChildSpec, supervisor: str, interval: float) -> None:
        super().__init__(interval)
        self.spec = spec
        self.supervisor = supervisor
        self.held = False
        self.holder: str | None = None

    def rethink(self) -> None:
        node = self.node_id
        assert node is not None  # only wrapped in cluster mode
        try:
            with self.engine().begin() as connection:
                self.held = schema.claim(connection, KIND, self.spec.name, node)
                self.holder = schema.holders(connection, KIND).get((KIND, self.spec.name))
        except SQLAlchemyError as exc:
            self.log.error(
                "singleton_claim_failed", singleton=self.spec.name, error=describe_error(exc)
            )
            return
        running = runtime.is_running(self.system, self.spec.name)
        if self.held and not running:
            self.log.info("singleton_starting_here", singleton=self.spec.name, node=node)
            self.system.tell(self.supervisor, Spawn(self.spec))
        elif not self.held and running:
            self.log.warning("singleton_moved", singleton=self.spec.name, holder=self.holder)
            self.system.tell(self.supervisor, StopChild(self.spec.name))

    def held_names(self) -> list[str]:
        return [self.spec.name] if self.held else []

    def health(self) -> dict[str, Any]:
        return {
            "singleton": self.spec.name,
            "node": self.node_id,
            "holder": self.holder,
            "running_here": runtime.is_running(self.system, self.spec.name),
        }
