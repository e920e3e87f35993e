"""A ``regisseur download`` process that kills itself (SIGKILL) at a chosen point.

Usage: ``python crash_child.py POINT N -- download ARGS...``. ``POINT`` is
where the N-th time the process dies, as if the machine lost power for this
process only: ``commit`` (a database commit of the keeper or the journal,
before it runs), ``flush`` (a batch of record updates being written),
``rename`` (a finished download about to be moved into place), ``splice``
(a step of a body moved with splice(2), some bytes in the part), ``report``
(a progress report in the middle of a download), or ``none``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from regisseur import cli
from regisseur.actors.downloads import _http_fetch, _splice, context, store


def _die_on(nth: int, function: Any, calls: list[int] | None = None) -> Any:
    """``function`` that kills the process on the ``nth`` call (counted in ``calls``,
    which several wrapped functions may share)."""
    counter = calls if calls is not None else [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        if counter[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)

    return wrapper


def main() -> int:
    point, nth, separator, *args = sys.argv[1:]
    assert separator == "--"
    count = int(nth)
    if point == "commit":
        # The journal commits through its session, the keeper through its
        # own connection: the N-th commit of either kills the process.
        commits = [0]
        Session.commit = _die_on(count, Session.commit, commits)  # type: ignore[method-assign]
        Connection.commit = _die_on(count, Connection.commit, commits)  # type: ignore[method-assign]
    elif point == "flush":
        store.update_many = _die_on(count, store.update_many)
    elif point == "rename":
        _http_fetch.move_into_place = _die_on(count, _http_fetch.move_into_place)
    elif point == "splice":
        _splice.Splicer.move = _die_on(count, _splice.Splicer.move)  # type: ignore[method-assign]
    elif point == "report":
        context.DownloadContext.report = _die_on(count, context.DownloadContext.report)  # type: ignore[method-assign]
    elif point != "none":
        sys.stderr.write(f"unknown crash point {point!r}\n")
        return 2
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
