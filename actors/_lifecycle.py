"""Start and stop of a system, and what its lifecycle state is.

``SystemLifecycle`` owns the system's state (``new`` → ``starting`` →
``running`` → ``stopping`` → ``stopped``, or ``failed``), the timers, the
fork guard, the kernel's cell (the system supervisor, ``actors._kernel``)
and the user's root cell, and waits for the cells to settle. Start order:
timers, then the kernel, whose children start in dependency order (the
event bus first, the user's root last); a failed start is rolled back.
Stop order is the reverse: the root, then the kernel's children (the bus
last, after it delivered what was published before), then the timers.

Threads: ``start``/``stop`` run on the caller's thread and block (see
``ActorSystem.start``/``stop``), as does ``settle`` (also on an actor's
thread, through the manual clock's quiesce hook); ``root_failed`` and
``root_exited`` run on the kernel's (or the root's) thread and only send
commands.

Failures: ``start`` raises ``StartupError`` naming the child that failed
(everything started is stopped first) and ``RuntimeError`` for a second
start; ``stop`` does not raise (children that overrun their
``shutdown_timeout`` are reported and abandoned).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from regisseur.actors._cell import Cell, CellState
from regisseur.actors._fork import ForkGuard
from regisseur.actors._kernel import (
    BUS,
    JOURNAL,
    KERNEL,
    Guardian,
    KernelActor,
    kernel_spec,
    public_startup_error,
)
from regisseur.actors._protocol import Start, StartAttempt, Teardown
from regisseur.actors._settle import Activity, settle_cells, wait_idle
from regisseur.actors.clock import Timers
from regisseur.actors.errors import describe_error
from regisseur.actors.signals import signals_blocked
from regisseur.messages import SystemFailed
from regisseur.messages.lifecycle import Lifecycle
from regisseur.supervision.errors import StartupError
from regisseur.supervision.supervisor import cell_for_supervisor

if TYPE_CHECKING:
    from regisseur.actors._cluster_link import ClusterLink
    from regisseur.actors.system import ActorSystem

__all__ = ["SystemLifecycle"]

#: Real seconds the bus (and the journal) get to hand on what they hold at stop.
DRAIN_TIMEOUT = 1.0


class SystemLifecycle:
    """The start/stop sequencing and state of one system (see the module docstring)."""

    def __init__(
        self, system: ActorSystem, *, lease_name: str | None, cluster: ClusterLink
    ) -> None:
        self._system = system
        self._lease_name = lease_name
        self.cluster = cluster
        """The system's side of its cluster node (does nothing outside cluster mode)."""
        self.lock = threading.RLock()
        self.state = Lifecycle.NEW
        self.failure: str | None = None
        self.activity = Activity()
        """Set when a mailbox goes to sleep or a clock wait starts (wakes ``settle``)."""
        self.timers = Timers(
            system.clock,
            name=f"{system.name}/timers",
            on_error=self._timer_failed,
            quiesce=self._quiesce,
            on_wait=self.activity.set,
        )
        self.guardian = Guardian(system)
        self.fork = ForkGuard(
            system.name,
            lambda: self.state in (Lifecycle.STARTING, Lifecycle.RUNNING, Lifecycle.STOPPING),
        )
        """Tells a process forked from the system's (nothing runs there)."""
        self.kernel: Cell | None = None
        """The system supervisor's cell, once started."""
        self.root: Cell | None = None
        """The user's root supervisor's cell (set by the kernel when it makes it)."""

    def cells(self) -> list[Cell]:
        """The kernel's cell and every registered one (``settle``, ``threads``)."""
        kernel = self.kernel
        return ([kernel] if kernel is not None else []) + self._system.registry.cells()

    @property
    def active(self) -> bool:
        """True while starting or running (children may be asked to work)."""
        return self.state in (Lifecycle.STARTING, Lifecycle.RUNNING)

    # -- start -----------------------------------------------------------------
    def start(self) -> None:
        """Start the timers and the kernel; see ``ActorSystem.start``."""
        system = self._system
        system.check_not_forked()
        with self.lock:
            if self.state != Lifecycle.NEW:
                msg = f"system {system.name!r} was already started (state: {self.state})"
                raise RuntimeError(msg)
            self.state = Lifecycle.STARTING
        self.fork.arm()
        with signals_blocked(system.blocked_signals):  # the timer thread's mask
            self.timers.start()
        spec = kernel_spec(
            system.root_spec,
            bus=system.events,
            system_name=system.name,
            database=system.database,
            lease_name=self._lease_name,
            lease_ttl=system.lease_ttl,
            cluster=self.cluster.settings,
            node_args=self.cluster.node_args,
        )
        self.kernel = cell_for_supervisor(system, KERNEL, spec, self.guardian, KernelActor)
        try:
            self.start_cell(self.kernel)
        except StartupError as exc:
            self.shutdown()
            public = public_startup_error(exc)
            raise public from public.__cause__
        except Exception as exc:
            self.shutdown()
            raise StartupError(KERNEL, exc) from exc
        with self.lock:
            if self.state == Lifecycle.STARTING:
                self.state = Lifecycle.RUNNING

    def start_cell(self, cell: Cell) -> None:
        """Start one of the system's own cells and wait for its ``on_start``."""
        cell.mailbox.on_sleep = self.activity.set
        attempt = StartAttempt()
        cell.ensure_thread()
        cell.control(Start(attempt))
        attempt.wait(None)  # bounded by every child's start_timeout
        if attempt.error is not None:
            raise attempt.error

    # -- stop ------------------------------------------------------------------
    def stop(self) -> bool:
        """Stop everything (idempotent); False if there was nothing to stop."""
        system = self._system
        if self.fork.forked_from is not None:
            self.state = Lifecycle.STOPPED
            system.log.warning("system_stopped_after_fork", parent_pid=self.fork.forked_from)
            return False
        with self.lock:
            if self.state in (Lifecycle.STOPPED, Lifecycle.NEW):
                self.state = Lifecycle.STOPPED
                return False
            self.state = Lifecycle.STOPPING
        self.shutdown()
        return True

    def shutdown(self) -> None:
        """Stop the root, then the kernel (the bus last), then the timers.

        A stop overtakes queued messages, so the bus (and the journal) first
        hand on what they hold, here and again in the kernel before each of
        them stops (``KernelActor._stop_children``), bounded by
        :data:`DRAIN_TIMEOUT` each.
        """
        system = self._system
        root = self.root
        if root is not None and root.state is not CellState.STOPPED:
            _final_stop(root)
        if self.kernel is not None:
            found = (system.registry.find(BUS), system.registry.find(JOURNAL))
            self.drain([c for c in found if c is not None])
            _final_stop(self.kernel)
        if system.database is not None:
            system.database.close()
        self.timers.close()
        with self.lock:
            self.state = Lifecycle.STOPPED if self.failure is None else Lifecycle.FAILED

    def drain(self, cells: list[Cell]) -> bool:
        """Wait (bounded) until ``cells`` have handled what they hold; True if so."""
        return wait_idle(cells, self.activity, DRAIN_TIMEOUT)

    # -- settling and the timers' hooks ------------------------------------------
    def settle(self, timeout: float, except_thread: threading.Thread | None) -> None:
        """``ActorSystem.settle``: every cell idle or waiting on the clock (see ``_settle``)."""
        settle_cells(self.cells, self.timers, self.activity, timeout, except_thread)

    def _quiesce(self, timeout: float) -> None:
        """The clock's hook: settle, not waiting for the calling actor (if any)."""
        self.settle(timeout, except_thread=threading.current_thread())

    def _timer_failed(self, exc: BaseException) -> None:
        self._system.log.error("timer_callback_failed", error=describe_error(exc), exc_info=exc)

    # -- the root's end (kernel or root thread) -----------------------------------
    def root_failed(self, error: str) -> None:
        """The root (or the kernel) failed for good: the system fails."""
        system = self._system
        with self.lock:
            self.failure = error
            if self.state in (Lifecycle.RUNNING, Lifecycle.STARTING):
                self.state = Lifecycle.FAILED
        system.log.critical("system_failed", error=error)
        system.events.publish(SystemFailed(error))
        if self.root is not None:
            self.root.control(Teardown(final=True, reason="root supervisor failed"))

    def root_exited(self) -> None:
        """The root supervisor ended itself (``auto_shutdown``, or ``ref.stop()``).

        The system's work is done: ``running`` turns false and ``health()``
        reports it stopped. ``stop()`` (or leaving the ``with`` block) still
        ends the system's own threads. Runs on the root's thread.
        """
        system = self._system
        with self.lock:
            if self.state in (Lifecycle.RUNNING, Lifecycle.STARTING):
                self.state = Lifecycle.STOPPING
        system.log.info("system_work_done")
        if self.root is not None:
            self.root.control(Teardown(final=True, reason="root supervisor ended"))


def _final_stop(cell: Cell) -> None:
    """Stop one of the system's own cells for good and end its thread.

    Unbounded: a supervisor bounds each child by its ``shutdown_timeout``.
    """
    cell.terminate(final=True, reason="system stopped", timeout=None)
    cell.join()
