"""``DownloadSource``: how one source fetches, and how many at once.

A ``DownloadSource`` is a description, not a running thing: pass it to
``ActorSystem(download_sources=...)`` or ``system.downloads.register()``
and the system runs it as a queue actor with ``concurrency`` worker actors
under a supervisor of its own.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regisseur.actors.clock import check_duration
from regisseur.actors.downloads.names import is_text
from regisseur.supervision.spec import check_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.messages.downloads import DownloadRecord

__all__ = ["MAX_CONCURRENCY", "DownloadSource", "check_concurrency", "takes_context"]

#: A sanity bound: every unit of concurrency is a thread.
MAX_CONCURRENCY = 256


def check_concurrency(value: object, what: str = "concurrency") -> int:
    """Return ``value`` if it is a usable concurrency, else raise naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{what} must be an int, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not 1 <= value <= MAX_CONCURRENCY:
        msg = f"{what} must be between 1 and {MAX_CONCURRENCY}, got {value}"
        raise ValueError(msg)
    return value


def takes_context(impl: Callable[..., Any]) -> bool:
    """True if ``impl`` accepts a fourth positional argument (the context).

    Raises ``TypeError`` if it cannot take the three required ones.
    """
    try:
        signature = inspect.signature(impl)
    except (TypeError, ValueError):  # a builtin without a signature: assume three
        return False
    positional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    if positional < 3:
        msg = (
            f"a download impl takes (download_id, target_id, display_name[, context]); "
            f"{impl!r} takes {positional} positional argument(s)"
        )
        raise TypeError(msg)
    return positional >= 4


class DownloadSource:
    """One download source: an ``impl`` run by ``concurrency`` workers.

    ``impl(download_id, target_id, display_name) -> path | None`` runs on a
    worker thread; an impl that accepts a fourth argument gets a
    :class:`~actors.downloads.context.DownloadContext`. A returned path makes
    the download Succeeded; ``None`` or an exception makes it Errored with
    the error text.

    ``delay`` is the least time (on the system clock) between the starts of
    two downloads of this source. ``username`` is stored on every record
    (default: the source's name).
    ``directory`` becomes the context's ``destination``. ``open_worker()``
    runs once on each worker's thread when the worker starts; its value is
    the context's ``worker_state`` and is handed to ``close_worker(value)``
    when the worker stops or is replaced, on that worker's thread (a
    source's workers stop together: several ``close_worker`` calls may run
    at once, each with its own worker's value).

    ``cluster_limit`` (cluster mode): the most downloads of this source
    running at once on all nodes together (``concurrency`` holds per node);
    give every node the same value.

    ``resumes(record) -> bool``: which unfinished downloads of this
    source's name, found at the start and left by a process that is gone,
    this system takes over (default: all of them). Processes sharing one
    database whose sources of one name serve different places (a
    directory each) decline the others': a declined download stays as it
    was (neither taken nor ended) for a system whose source takes it. Runs
    on the keeper's thread during its start; one that raises declines
    (logged). Not used in cluster mode, whose nodes share every source.
    """

    def __init__(
        self,
        name: str,
        impl: Callable[..., str | Path | None],
        *,
        concurrency: int = 1,
        delay: float = 0.0,
        username: str | None = None,
        directory: str | Path | None = None,
        open_worker: Callable[[], Any] | None = None,
        close_worker: Callable[[Any], object] | None = None,
        cluster_limit: int | None = None,
        resumes: Callable[[DownloadRecord], bool] | None = None,
    ) -> None:
        self.name = check_name(name, "DownloadSource name")
        if not callable(impl):
            msg = f"DownloadSource {name!r}: impl must be callable, got {impl!r}"
            raise TypeError(msg)
        self.impl = impl
        self.with_context = takes_context(impl)
        self.concurrency = check_concurrency(concurrency, f"DownloadSource {name!r} concurrency")
        self.delay = check_duration(delay, f"DownloadSource {name!r} delay")
        if username is not None and not isinstance(username, str):
            msg = f"DownloadSource {name!r}: username must be a str or None, got {username!r}"
            raise TypeError(msg)
        self.username = username
        if directory is not None and not isinstance(directory, (str, Path)):
            msg = f"DownloadSource {name!r}: directory must be a path, got {directory!r}"
            raise TypeError(msg)
        absolute = os.path.abspath(directory) if directory is not None else ""
        if not is_text(absolute):
            msg = (
                f"DownloadSource {name!r}: directory {os.fsencode(absolute)!r} is not UTF-8 "
                "text, and download records keep file paths as text; rename it or choose another"
            )
            raise ValueError(msg)
        self.directory = Path(directory) if directory is not None else None
        hooks = ((open_worker, "open_worker"), (close_worker, "close_worker"), (resumes, "resumes"))
        for hook, label in hooks:
            if hook is not None and not callable(hook):
                msg = f"DownloadSource {name!r}: {label} must be callable, got {hook!r}"
                raise TypeError(msg)
        self.open_worker = open_worker
        self.close_worker = close_worker
        self.resumes = resumes
        if cluster_limit is not None:
            if isinstance(cluster_limit, bool) or not isinstance(cluster_limit, int):
                msg = (
                    f"DownloadSource {name!r}: cluster_limit must be an int, got {cluster_limit!r}"
                )
                raise TypeError(msg)
            if cluster_limit < 1:
                msg = f"DownloadSource {name!r}: cluster_limit must be >= 1, got {cluster_limit}"
                raise ValueError(msg)
        self.cluster_limit = cluster_limit

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} concurrency={self.concurrency} "
            f"delay={self.delay:g}>"
        )
