"""The single-instance guard: a lease row in the system's database.

A system started with ``single_instance=True`` takes a named lease before
any child starts. A second system on the same database (in this process or
another) fails its start with a ``StartupError`` naming the holder. The
holder renews the lease every third of its time to live from an internal
actor, a child of the system's kernel supervisor (``actors._kernel``): a
renewal that fails restarts it with backoff; ``stop()`` releases it. A
crashed holder stops renewing, so the lease expires after ``lease_ttl``
seconds and the next system takes over: no lock file outlives a killed
process.

Expiry uses wall-clock time (shared between processes), not the system clock.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Float, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from regisseur.actors.actor import Actor
from regisseur.actors.clock import wall_time
from regisseur.actors.database import create_tables
from regisseur.actors.errors import RegisseurError

if TYPE_CHECKING:
    from regisseur.actors.database import Database

__all__ = ["InstanceHeldError", "InstanceLease", "LeaseActor", "lease_table"]

_metadata = MetaData()
lease_table = Table(
    "regisseur_instance_lease",
    _metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(300), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


class InstanceHeldError(RegisseurError, RuntimeError):
    """Another live system holds the single-instance lease."""

    def __init__(self, name: str, holder: str, expires_in: float) -> None:
        self.holder = holder
        self.expires_in = expires_in
        super().__init__(
            f"another instance of {name!r} is running on this database: held by {holder} "
            f"(lease expires in {expires_in:.1f}s unless renewed)"
        )


def make_holder_id(system_name: str) -> str:
    """``host:pid:system:random`` — unique per system instance."""
    return f"{socket.gethostname()}:{os.getpid()}:{system_name}:{uuid.uuid4().hex[:8]}"


class InstanceLease:
    """Acquire, renew and release one named lease. Any one thread at a time."""

    def __init__(self, database: Database, name: str, holder: str, ttl: float) -> None:
        self.database = database
        self.name = name
        self.holder = holder
        self.ttl = ttl

    def acquire(self) -> None:
        """Take the lease or raise ``InstanceHeldError`` naming the holder."""
        engine = self.database.engine
        with engine.begin() as connection:
            create_tables(connection, lease_table)
        now = wall_time()
        if self._take_over(now):
            return
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(lease_table).values(
                        name=self.name,
                        holder=self.holder,
                        acquired_at=now,
                        expires_at=now + self.ttl,
                    )
                )
        except IntegrityError:
            # Someone holds it (or took it between our two statements).
            if self._take_over(wall_time()):
                return
            row = self._row()
            holder = row.holder if row is not None else "unknown"
            expires_in = (row.expires_at - wall_time()) if row is not None else 0.0
            raise InstanceHeldError(self.name, holder, max(0.0, expires_in)) from None

    def _take_over(self, now: float) -> bool:
        """Atomically take an expired (or our own) lease."""
        with self.database.engine.begin() as connection:
            result = connection.execute(
                update(lease_table)
                .where(lease_table.c.name == self.name)
                .where((lease_table.c.holder == self.holder) | (lease_table.c.expires_at < now))
                .values(holder=self.holder, acquired_at=now, expires_at=now + self.ttl)
            )
            return bool(result.rowcount)

    def _row(self) -> Any:
        with self.database.engine.connect() as connection:
            return connection.execute(
                select(lease_table).where(lease_table.c.name == self.name)
            ).first()

    def renew(self) -> bool:
        """Extend our lease; False if it was lost to another holder."""
        now = wall_time()
        with self.database.engine.begin() as connection:
            result = connection.execute(
                update(lease_table)
                .where(lease_table.c.name == self.name)
                .where(lease_table.c.holder == self.holder)
                .values(expires_at=now + self.ttl)
            )
            return bool(result.rowcount)

    def release(self) -> None:
        """Give the lease up (only if we still hold it)."""
        with self.database.engine.begin() as connection:
            connection.execute(
                lease_table.delete()
                .where(lease_table.c.name == self.name)
                .where(lease_table.c.holder == self.holder)
            )


class _Renew:
    """Timer message: renew the lease."""


class LeaseActor(Actor):
    """Holds the lease for its system: acquire on start, renew, release on stop."""

    def __init__(self, lease: InstanceLease) -> None:
        super().__init__()
        self.lease = lease
        self.lost = False
        self._failed = False

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """A renewal failed (the database is down): keep the row for the restart.

        The system supervisor restarts this actor with backoff; the restart
        takes the lease again as its holder (``acquire`` takes over its own
        row), so nobody can slip in between.
        """
        self._failed = True

    def on_start(self) -> None:
        self.lease.acquire()
        self.schedule_every(self.lease.ttl / 3, _Renew())
        self.log.info("instance_lease_acquired", holder=self.lease.holder, ttl=self.lease.ttl)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Renew):
            if not self.lease.renew():
                self.lost = True
                self.log.critical("instance_lease_lost", holder=self.lease.holder)
            return None
        return super().on_receive(message)

    def health(self) -> dict[str, Any]:
        return {"healthy": not self.lost, "holder": self.lease.holder}

    def on_stop(self) -> None:
        if self._failed:
            self.log.info("instance_lease_kept_for_restart", holder=self.lease.holder)
            return
        self.lease.release()
        self.log.info("instance_lease_released", holder=self.lease.holder)
