"""A ``regisseur download`` process that kills itself (SIGKILL) at a chosen point.

Usage: ``python crash_child.py POINT N -- download ARGS...``. ``POINT`` is
where the N-th time the process dies, as if the machine lost power for this
process only: ``commit`` (a database commit of the keeper or the journal,
before it runs), ``flush`` (a batch of record updates being written),
``rename`` (a finished download about to be moved into place), ``report``
(a progress report in the middle of a download), or ``none``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from sqlalchemy.orm import Session

from actors import cli
from actors.downloads import _http_fetch, context, store


def _die_on(nth: int, function: Any) -> Any:
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)

    return wrapper


def main() -> int:
    point, nth, separator, *args = sys.argv[1:]
    assert separator == "--"
    count = int(nth)
    if point == "commit":
        Session.commit = _die_on(count, Session.commit)  # type: ignore[method-assign]
    elif point == "flush":
        store.update_many = _die_on(count, store.update_many)
    elif point == "rename":
        _http_fetch.move_into_place = _die_on(count, _http_fetch.move_into_place)
    elif point == "report":
        context.DownloadContext.report = _die_on(count, context.DownloadContext.report)  # type: ignore[method-assign]
    elif point != "none":
        sys.stderr.write(f"unknown crash point {point!r}\n")
        return 2
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
