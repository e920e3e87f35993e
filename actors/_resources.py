"""What a system lends its actors: resource values and database handles.

``Resources`` holds the values of the running ``resource()`` stages (by
name) and opens an actor's ``self.db`` session and ``self.connection`` on
first use, on that actor's own thread.

Threads: ``get`` from any thread; ``publish``/``withdraw`` from the resource
stage's thread; ``session_for``/``connection_for`` only from the thread of
the cell they are for.

Failures: ``get`` raises ``LookupError`` naming the running resources;
the database handles raise ``RuntimeError`` when the system has no
database or when used from another thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from regisseur.supervision.spec import check_name

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from regisseur.actors._cell import Cell
    from regisseur.actors.database import Database

__all__ = ["Resources"]


class Resources:
    """Resource values and database handles of one system."""

    def __init__(self, database: Database | None) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """The value of the running resource ``name``; ``LookupError`` if not up."""
        check_name(name, "resource(name)")  # a malformed name: say which argument
        with self._lock:
            if name in self._values:
                return self._values[name]
            known = ", ".join(sorted(self._values)) or "none"
        msg = f"resource {name!r} is not running (running resources: {known})"
        raise LookupError(msg)

    def publish(self, name: str, value: Any) -> None:
        """Make ``value`` available as ``name`` (the stage started)."""
        with self._lock:
            self._values[name] = value

    def withdraw(self, name: str) -> None:
        """Take ``name`` back (the stage stopped); a no-op if it is not there."""
        with self._lock:
            self._values.pop(name, None)

    def session_for(self, cell: Cell) -> Session:
        """``cell``'s ORM session, opened on first use (its own thread only)."""
        database = self._database_for(cell, "self.db")
        if cell.session is None:
            cell.session = database.session()
        return cell.session

    def connection_for(self, cell: Cell) -> Connection:
        """``cell``'s Core connection, opened on first use (its own thread only)."""
        database = self._database_for(cell, "self.connection")
        if cell.connection is None:
            cell.connection = database.engine.connect()
        return cell.connection

    def _database_for(self, cell: Cell, what: str) -> Database:
        """The database, if ``cell``'s own thread may use it as ``what``."""
        if self._database is None:
            msg = f"actor {cell.name!r} used {what} but the system has no database_url"
            raise RuntimeError(msg)
        if cell.thread is not threading.current_thread():
            msg = f"{what} of {cell.name!r} may only be used on that actor's own thread"
            raise RuntimeError(msg)
        return self._database
