"""Sharing a records database with the keepers of other processes.

The public seam over the keepers' ownership (``_owners``) for a program
that plans downloads beside other processes on one SQLite records file,
as ``regisseur download`` does when two runs use one directory:

* :func:`planning`: hold the database's planning lock while looking at
  the records and submitting, so two processes never submit the same work
  (``PlanningTimeoutError`` past an optional ``timeout``);
* :func:`lock_directory`: where a database's owner locks live (None when
  it is not a local file: then every other owner counts as alive);
* :func:`owner_alive`: whether the keeper that owns a download still runs;
* :func:`owner_running`: the same for a reader that changes nothing
  (``regisseur status``): None when it cannot tell;
* :func:`describe_owner`: ``pid N on host H``, for a person.

Threads: any. Failures: see each function (a failing liveness probe
counts the owner as alive; the planning lock raises ``OSError`` when its
directory cannot be made).
"""

from __future__ import annotations

from regisseur.actors.downloads._owners import (
    PlanningTimeoutError,
    describe_owner,
    lock_directory,
    owner_alive,
    owner_running,
    planning,
)

__all__ = [
    "PlanningTimeoutError",
    "describe_owner",
    "lock_directory",
    "owner_alive",
    "owner_running",
    "planning",
]
