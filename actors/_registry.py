"""The registry of a system: actor name → cell, and the names that were.

Every supervisor registers the cells it creates here (``register``) and
takes them out when they stop for good (``unregister``); the system looks
names up here for ``ref``, ``tell`` and ``ask``. A name that stopped is
remembered with the supervisor that had it, so ``stop_child`` and
``restart_child`` still find it.

Threads: any. Lookups of a live name are a plain dict read (atomic under
CPython); changes take the registry's lock.

Failures: ``register`` raises ``ValueError`` for a name a live actor has;
``lookup`` raises ``UnknownActorError`` for a name never registered (and
the name check's errors for a malformed one). ``find`` never raises.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from regisseur.actors.errors import UnknownActorError
from regisseur.supervision.spec import check_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors._cell import Cell, Parent
    from regisseur.actors._fork import ForkGuard
    from regisseur.supervision.spec import ChildSpec

__all__ = ["Registry"]


class Registry:
    """Names of one system's actors; see the module docstring."""

    def __init__(
        self,
        fork: ForkGuard,
        on_sleep: Callable[[], None],
        hidden: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        """``fork`` tells a forked child (no actor runs there); ``on_sleep`` is
        given to every registered cell's mailbox (it wakes ``settle``);
        ``hidden`` names the system's own actors, left out of the known
        names an ``UnknownActorError`` lists."""
        self._fork = fork
        self._on_sleep = on_sleep
        self._hidden = hidden
        self._lock = threading.Lock()
        self._cells: dict[str, Cell] = {}
        # Names no longer registered -> how to reach the supervisor that had
        # them (stop_child / restart_child of a stopped or failed child).
        self._gone: dict[str, Parent] = {}

    def register(self, cell: Cell) -> None:
        """Make ``cell`` reachable by its name; ``ValueError`` if a live actor has it."""
        cell.mailbox.on_sleep = self._on_sleep
        with self._lock:
            current = self._cells.get(cell.name)
            if current is not None and current is not cell and not current.stopped.is_set():
                msg = f"an actor named {cell.name!r} is already running in this system"
                raise ValueError(msg)
            self._cells[cell.name] = cell
            self._gone.pop(cell.name, None)

    def unregister(self, cell: Cell) -> None:
        """Forget ``cell`` (stopped for good); its name is remembered as gone."""
        with self._lock:
            if self._cells.get(cell.name) is cell:
                del self._cells[cell.name]
                self._gone[cell.name] = cell.parent

    def check_free(self, spec: ChildSpec) -> None:
        """``ValueError`` if ``spec``'s name (or a nested supervisor's) is taken."""
        from regisseur.supervision.supervisor import Supervisor

        names = [spec.name]
        if isinstance(spec.actor, Supervisor):
            names += spec.actor.names()
        with self._lock:
            taken = [n for n in names if n in self._cells]
        if taken:
            msg = f"actor name(s) already in use: {', '.join(map(repr, taken))}"
            raise ValueError(msg)

    def lookup(self, name: str, what: str = "name") -> Cell | None:
        """The cell named ``name``; None if it stopped; raises if never known.

        ``what`` names the argument in the error for a name that is not a
        usable string (``"tell(name)"``, ``"spawn(supervisor)"``).
        """
        if self._fork.forked_from is not None:
            self._fork.check()
        if type(name) is str:
            cell = self._cells.get(name)  # the hot path: a dict read is atomic
            if cell is not None:
                return cell
        check_name(name, what)
        with self._lock:
            cell = self._cells.get(name)
            if cell is None and name not in self._gone:
                raise UnknownActorError(name, [n for n in self._cells if not self._hidden(n)])
        return cell

    def find(self, name: str) -> Cell | None:
        """The live cell named ``name``, or None (never raises)."""
        cell = self._cells.get(name) if isinstance(name, str) else None
        if cell is None or cell.stopped.is_set():
            return None
        return cell

    def parent_of(self, name: str, what: str = "name") -> Parent | None:
        """The supervisor link of the (stopped or running) child ``name``, if known."""
        cell = self.lookup(name, what)
        with self._lock:
            return cell.parent if cell is not None else self._gone.get(name)

    def was_removed(self, name: str) -> bool:
        """True if ``name`` was registered once and is not any more."""
        with self._lock:
            return name in self._gone

    def names(self, hidden: Callable[[str], bool]) -> list[str]:
        """Registered names, sorted, but for those ``hidden`` says to leave out."""
        with self._lock:
            return sorted(n for n in self._cells if not hidden(n))

    def cells(self) -> list[Cell]:
        """Every registered cell (a snapshot)."""
        with self._lock:
            return list(self._cells.values())
