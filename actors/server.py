"""``ServerActor``: one background loop per server, under a supervisor.

Replaces the per-server thread base class (stop event, thread-local DB
connection, exception backoff 2 s, doubling up to 60 s, a fatal-error flag):

* ``run_loop()`` runs on the actor's thread every ``interval`` seconds on the
  system clock; the next run is scheduled when the previous one ends, so runs
  never pile up.
* ``self.db`` is this actor's own SQLAlchemy session (the thread-local
  connection), rolled back on failure and closed on stop.
* An exception from ``run_loop`` is a failure: the supervisor restarts the
  actor with the default backoff (2, 4, … 60 s), reset after a successful
  run; ``FatalError`` stops it for good (the fatal-error flag). If
  ``decide(exc)`` answers ``Directive.RESUME`` the loop goes on.
* Logs carry ``server_id``.

The first run happens right after ``on_start``. Messages sent to the actor
are handled between runs (``on_receive``).
"""

from __future__ import annotations

from typing import Any

from regisseur.actors._planned import PlannedRun, RunTick
from regisseur.actors.actor import Actor
from regisseur.actors.clock import check_duration

__all__ = ["ServerActor"]


class ServerActor(Actor):
    """Base class for per-server loops; override ``run_loop``."""

    def __init__(self, server_id: Any, *, interval: float = 1.0) -> None:
        super().__init__()
        kind = type(self).__name__
        if server_id is None or (isinstance(server_id, str) and not server_id.strip()):
            msg = f"{kind} server_id must be a non-empty id (an int or a str), got {server_id!r}"
            raise ValueError(msg)
        self.server_id = server_id
        self.interval = check_duration(interval, f"{kind} interval", allow_zero=False)
        self.log = self.log.bind(server_id=server_id)
        self.runs = 0
        self._planned = PlannedRun(self)

    def run_loop(self) -> None:
        """One pass of the server's work. Runs on the actor's thread."""
        msg = f"{type(self).__name__} must override run_loop()"
        raise NotImplementedError(msg)

    def _after_start(self) -> None:
        self._planned.soon()

    def _after_resume(self) -> None:
        # The failure may have ended a run (or consumed its message before
        # the handler ran): plan the next one, replacing any planned before.
        self._planned.after(self.interval)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RunTick):
            if self._planned.due(message) and not self.stopping:
                self.run_loop()
                self.runs += 1
                self._planned.after(self.interval)
            return None
        return super().on_receive(message)

    def health(self) -> bool | dict[str, Any]:
        """Default details: the server id, runs in this incarnation, interval."""
        return {"server_id": self.server_id, "runs": self.runs, "interval": self.interval}
