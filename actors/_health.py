"""The system's health tree: every supervisor's children, asked in parallel.

``system_health(system)`` builds the tree ``ActorSystem.health()`` returns:
the kernel's infrastructure children first (under their public names, see
``actors._kernel``), then the root's children, nested like the supervisors.

Threads: runs on the caller's thread (any). Each supervisor is asked for its
children (``Inspect``) and each running child for its ``health()`` through
its mailbox, all bounded by :data:`HEALTH_TIMEOUT` real seconds; an actor
for which a long message is normal answers ``busy_health()`` from here.

Failures: a supervisor that does not answer in time is reported
``unresponsive`` (unhealthy); a child whose ``health()`` raises or does not
answer is unhealthy. Nothing here raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka
from pykka.messages import ProxyCall

from regisseur.actors._kernel import KERNEL, ROOT, kernel_reports
from regisseur.actors.clock import monotonic
from regisseur.actors.errors import describe_error
from regisseur.messages import HealthReport
from regisseur.messages.lifecycle import Lifecycle
from regisseur.supervision.protocol import ChildStatus, inspect

if TYPE_CHECKING:
    from regisseur.actors._cell import Cell
    from regisseur.actors.system import ActorSystem

__all__ = ["HEALTH_TIMEOUT", "system_health"]

#: Real seconds a supervisor or an actor has to answer.
HEALTH_TIMEOUT = 1.0


def system_health(system: ActorSystem) -> HealthReport:
    """The health tree of ``system``, named ``root`` (see the module docstring)."""
    lifecycle = system._lifecycle
    root = lifecycle.root
    if root is None or root.stopped.is_set() or lifecycle.state != Lifecycle.RUNNING:
        return HealthReport(
            name=ROOT,
            status=Lifecycle.FAILED if lifecycle.failure else Lifecycle.STOPPED,
            healthy=False,
            last_error=lifecycle.failure,
        )
    children = _kernel_reports(system) + _children(system, root, ROOT)
    return HealthReport(
        name=ROOT,
        status=Lifecycle.RUNNING,
        healthy=all(c.healthy for c in children),
        children=children,
    )


def _kernel_reports(system: ActorSystem) -> tuple[HealthReport, ...]:
    """The reports of the kernel's children: bus, database, guard, node, journal."""
    kernel = system._lifecycle.kernel
    if kernel is None:
        return ()
    if kernel.stopped.is_set():
        return (HealthReport(name=KERNEL, status=Lifecycle.STOPPED, healthy=False),)
    cluster = system.cluster
    return kernel_reports(
        _children(system, kernel, KERNEL, skip=ROOT),
        cluster.node_id if cluster is not None else None,
        cluster.nodes if cluster is not None else list,
    )


def _children(
    system: ActorSystem, supervisor: Cell, shown: str, *, skip: str | None = None
) -> tuple[HealthReport, ...]:
    """Reports of ``supervisor``'s children (``shown``: its name in them), not ``skip``."""
    try:
        infos = inspect(supervisor.ref, HEALTH_TIMEOUT)
    except pykka.Timeout:
        return (_unresponsive(shown),)
    except pykka.ActorDeadError:
        return (HealthReport(name=shown, status=Lifecycle.STOPPED, healthy=False),)
    infos = [i for i in infos if i.name != skip]
    futures = {}
    busy: dict[str, Any] = {}
    for info in infos:
        if info.cell is not None and info.status is ChildStatus.RUNNING:
            snapshot = _busy_health(info.cell)
            if snapshot is not None:
                busy[info.name] = snapshot  # busy as it should be: no ask
                continue
            call = ProxyCall(attr_path=("health",), args=(), kwargs={})
            futures[info.name] = info.cell.ref.ask(call, block=False)
    deadline = monotonic() + HEALTH_TIMEOUT
    reports = []
    for info in infos:
        details: Any = None
        healthy = info.status is ChildStatus.RUNNING
        future = futures.get(info.name)
        if info.name in busy:
            details = busy[info.name]
            healthy = healthy and bool(details.get("healthy", True))
        elif future is not None:
            try:
                details = future.get(timeout=max(0.0, deadline - monotonic()))
            except pykka.Timeout:
                details, healthy = "unresponsive", False
            except Exception as exc:  # noqa: BLE001 - a failing health() is unhealthy
                details, healthy = f"health() failed: {describe_error(exc)}", False
            else:
                if isinstance(details, bool):
                    healthy = healthy and details
                elif hasattr(details, "get"):
                    healthy = healthy and bool(details.get("healthy", True))
        nested: tuple[HealthReport, ...] = ()
        if info.is_supervisor and info.cell is not None and healthy:
            nested = _children(system, info.cell, info.name)
            healthy = healthy and all(n.healthy for n in nested)
        status = info.status
        if healthy and hasattr(details, "get") and details.get("paused"):
            status = Lifecycle.PAUSED
        uptime = None
        if info.started_at is not None and info.status is ChildStatus.RUNNING:
            uptime = system.clock.now() - info.started_at
        reports.append(
            HealthReport(
                name=info.name,
                status=status,
                healthy=healthy,
                restarts=info.restarts,
                failures=info.failures,
                last_error=info.last_error,
                uptime=uptime,
                details=details,
                description=info.description,
                children=nested,
            )
        )
    return tuple(reports)


def _unresponsive(name: str) -> HealthReport:
    """The report of a supervisor that did not answer within the health timeout."""
    return HealthReport(
        name=name,
        status=Lifecycle.UNRESPONSIVE,
        healthy=False,
        details=f"no answer within {HEALTH_TIMEOUT:g}s",
    )


def _busy_health(cell: Cell) -> Any:
    """The details of an actor that is busy in a message as it should be, or None."""
    instance = cell.instance
    if instance is None or cell.idle():
        return None
    try:
        return instance.busy_health()
    except Exception:  # noqa: BLE001 - then ask through the mailbox as usual
        return None
