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

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from actors.actor import Actor
from actors.cluster import schema
from actors.errors import describe_error
from messages.cluster import ClusterChanged
from supervision.directive import Strategy
from supervision.spec import ChildSpec
from supervision.supervisor import Spawn, StopChild, Supervisor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from actors.events import Subscription

__all__ = ["SingletonActor", "singleton_specs"]

KIND = "singleton"


def singleton_specs(children: Iterable[ChildSpec]) -> list[ChildSpec]:
    """``children`` with every ``singleton=True`` spec (at any depth) wrapped."""
    children = list(children)
    wrapped = {c.name for c in children if c.singleton}
    out: list[ChildSpec] = []
    for child in children:
        deps = tuple(_guard(d) if d in wrapped else d for d in child.depends_on)
        actor = child.actor
        if isinstance(actor, Supervisor):
            actor = replace(actor, children=tuple(singleton_specs(actor.children)))
        rebuilt = replace(child, depends_on=deps, actor=actor)
        out.append(_wrap(rebuilt) if rebuilt.singleton else rebuilt)
    return out


def _guard(name: str) -> str:
    return f"{name}.singleton"


def _wrap(spec: ChildSpec) -> ChildSpec:
    inner = replace(spec, singleton=False, depends_on=())
    claim = ChildSpec(
        f"{spec.name}.claim",
        SingletonActor,
        args=(inner, _guard(spec.name)),
        description=f"holds the cluster claim of singleton {spec.name!r}",
    )
    return ChildSpec(
        _guard(spec.name),
        Supervisor((claim,), strategy=Strategy.ONE_FOR_ONE, max_restarts=10, within=10.0),
        depends_on=spec.depends_on,
        description=f"runs {spec.name!r} on one node of the cluster",
    )


class _Tick:
    """Timer: claim (or renew the view of) the singleton."""


class SingletonActor(Actor):
    """Claims a singleton for this node and runs it while it holds the claim."""

    def __init__(self, spec: ChildSpec, supervisor: str) -> None:
        super().__init__()
        self.spec = spec
        self.supervisor = supervisor
        self.held = False
        self.holder: str | None = None
        self._subscription: Subscription | None = None

    @property
    def _node(self) -> str:
        cluster = self.system.cluster
        assert cluster is not None
        return cluster.node_id

    def on_start(self) -> None:
        cluster = self.system.cluster
        assert cluster is not None
        self._subscription = self.system.events.subscribe(self.actor_ref, ClusterChanged)
        self.schedule_every(cluster.settings.lease_ttl / 3, _Tick())
        self.actor_ref.tell(_Tick())  # not here: our supervisor is starting us

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (_Tick, ClusterChanged)):
            self._tick()
            return None
        return super().on_receive(message)

    def _tick(self) -> None:
        database = self.system.database
        assert database is not None
        try:
            with database.engine.begin() as connection:
                self.held = schema.claim(connection, KIND, self.spec.name, self._node)
                self.holder = schema.holders(connection, KIND).get((KIND, self.spec.name))
        except SQLAlchemyError as exc:
            self.log.error(
                "singleton_claim_failed", singleton=self.spec.name, error=describe_error(exc)
            )
            return
        running = self.system._find(self.spec.name) is not None
        if self.held and not running:
            self.log.info("singleton_starting_here", singleton=self.spec.name, node=self._node)
            self.system.tell(self.supervisor, Spawn(self.spec))
        elif not self.held and running:
            self.log.warning("singleton_moved", singleton=self.spec.name, holder=self.holder)
            self.system.tell(self.supervisor, StopChild(self.spec.name))

    def on_stop(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
        if not self.held:
            return
        database = self.system.database
        assert database is not None
        try:
            with database.engine.begin() as connection:
                schema.release(connection, KIND, self.spec.name, self._node)
                schema.notify(
                    connection, schema.NODES_CHANNEL, json.dumps({"freed": [self.spec.name]})
                )
        except SQLAlchemyError as exc:
            self.log.warning(
                "singleton_release_failed", singleton=self.spec.name, error=describe_error(exc)
            )

    def health(self) -> dict[str, Any]:
        return {
            "singleton": self.spec.name,
            "node": self._node,
            "holder": self.holder,
            "running_here": self.system._find(self.spec.name) is not None,
        }
