"""``regisseur demo``: every part of regisseur at work, offline, in about ten seconds.

A local HTTP server serves generated files; a system on a SQLite database
in a temporary directory (or ``--db``) runs: a resource stage ("cache")
that the other children depend on, three per-server loops (one of them
fails three times and is restarted with growing backoff), a periodic
service that is paused and resumed, an actor stopped for good by a
``FatalError``, and two download sources (HTTP with concurrency 3, and a
slower plugin source with a delay between starts): downloads that succeed,
one after a retry (500 then 200), one 404, one cancelled midway.

Threads: the script runs on the caller's thread and waits for events with
bounded timeouts; Ctrl-C stops the system and the server at once.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from actors.clock import monotonic
from actors.demo._cast import FLAKY_RUNS, cast, sources
from actors.demo._server import DemoServer
from actors.demo._show import Show, make_show, rich_available
from actors.system import ActorSystem
from messages import (
    ChildGaveUp,
    ChildRestarted,
    DownloadProgressed,
    DownloadStateChanged,
    Pause,
    Resume,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["run_demo"]

_MIB = 1024 * 1024
_FILES = {"alpha.bin": 3 * _MIB // 2, "beta.bin": _MIB, "gamma.bin": 2 * _MIB}
_SERVED = {**_FILES, "flaky.bin": _MIB // 2, "slow.bin": 4 * _MIB}
_LIMIT = 25.0  # every wait of the script is bounded by this (seconds)


class _Watcher:
    """Keeps every event; the script waits for conditions on them (bounded)."""

    def __init__(self, show: Show, started: float) -> None:
        self._cond = threading.Condition()
        self.events: list[Any] = []
        self._show = show
        self._started = started

    def elapsed(self) -> float:
        return monotonic() - self._started

    def __call__(self, event: object) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        self._show.event(self.elapsed(), event)

    def wait(self, what: str, ready: Callable[[list[Any]], bool]) -> None:
        deadline = monotonic() + _LIMIT
        with self._cond:
            while not ready(self.events):
                remaining = deadline - monotonic()
                if remaining <= 0:
                    msg = f"the demo waited {_LIMIT:g}s for {what}"
                    raise TimeoutError(msg)
                self._cond.wait(remaining)


class _RetryNotes(logging.Handler):
    """Shows the HTTP source's retries (a log record, not an event) as notes."""

    def __init__(self, watch: _Watcher, show: Show) -> None:
        super().__init__(logging.INFO)
        self._watch = watch
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "download_retry":
            fields = getattr(record, "fields", {})
            self._show.note(
                self._watch.elapsed(),
                f"retrying {fields.get('url')} in {fields.get('delay')}s "
                f"after {fields.get('error')}",
            )


def _count(kind: type, **fields: Any) -> Callable[[list[Any]], int]:
    def count(events: list[Any]) -> int:
        return sum(
            1
            for e in events
            if isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())
        )

    return count


def _script(system: ActorSystem, url: str, watch: _Watcher, show: Show) -> None:
    downloads = system.downloads
    show.note(watch.elapsed(), "submitting 6 HTTP downloads and 3 archive downloads")
    ids = [downloads.submit("http", f"{url}/files/{name}", name) for name in _FILES]
    ids.append(downloads.submit("http", f"{url}/files/flaky.bin", "flaky.bin"))
    ids.append(downloads.submit("http", f"{url}/files/missing.bin", "missing.bin"))
    slow = downloads.submit("http", f"{url}/files/slow.bin", "slow.bin")
    ids.append(slow)
    ids += [downloads.submit("archive", f"vol-{n}", f"volume-{n}.txt") for n in (1, 2, 3)]

    show.note(watch.elapsed(), "pausing the reporter service")
    system.tell("reporter", Pause())
    show.note(watch.elapsed(), "telling 'doomed' to self-destruct (a FatalError)")
    system.tell("doomed", "self-destruct")
    watch.wait("doomed to give up", lambda ev: _count(ChildGaveUp, name="doomed")(ev) > 0)

    def slow_started(events: list[Any]) -> bool:
        return any(
            isinstance(e, DownloadProgressed) and e.record.id == slow and e.record.progress >= 10
            for e in events
        )

    watch.wait("slow.bin to make progress", slow_started)
    show.note(watch.elapsed(), "cancelling slow.bin midway")
    downloads.cancel(slow)

    watch.wait(
        "the flaky server to recover",
        lambda ev: _count(ChildRestarted, name="flaky-server")(ev) >= FLAKY_RUNS,
    )
    show.note(watch.elapsed(), f"reporter: {_service_state(system)}; resuming it")
    system.tell("reporter", Resume())

    def all_ended(events: list[Any]) -> bool:
        ended = {
            e.record.id for e in events if isinstance(e, DownloadStateChanged) and e.record.terminal
        }
        return ended.issuperset(ids)

    watch.wait("every download to end", all_ended)
    system.settle(timeout=_LIMIT)
    show.note(watch.elapsed(), f"reporter: {_service_state(system)}")


def _service_state(system: ActorSystem) -> str:
    report = system.health().find("reporter")
    if report is None or not isinstance(report.details, dict):
        return "unknown"
    details = report.details
    return f"{report.status}, {details.get('runs')} runs, {details.get('polls_seen')} polls seen"


def _mode(plain: bool, json_lines: bool, out: TextIO) -> str:
    if json_lines:
        return "json"
    if plain or not (hasattr(out, "isatty") and out.isatty()) or not rich_available():
        return "plain"
    return "live"


def run_demo(
    *,
    plain: bool = False,
    json_lines: bool = False,
    database_url: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the demo, writing to ``out`` (stdout); return the exit code (130 on Ctrl-C)."""
    out = out or sys.stdout
    workdir = Path(tempfile.mkdtemp(prefix="regisseur-demo-"))
    server = DemoServer(_SERVED)
    system = ActorSystem(
        cast(),
        name="demo",
        database_url=database_url or f"sqlite:///{workdir / 'demo.db'}",
        download_sources=sources(workdir),
    )
    show = make_show(_mode(plain, json_lines, out), out, system)
    watch = _Watcher(show, monotonic())
    notes = _RetryNotes(watch, show)
    library_log = logging.getLogger("actors")
    library_log.addHandler(notes)
    level = library_log.level
    if library_log.getEffectiveLevel() > logging.INFO:
        library_log.setLevel(logging.INFO)
    code = 0
    try:
        system.events.subscribe(watch)  # every event, downloads included
        show.note(watch.elapsed(), f"serving files on {server.url}; starting the system")
        system.start()
        _script(system, server.url, watch, show)
        show.close()
        show.summary(system)
    except KeyboardInterrupt:
        show.close()
        show.note(watch.elapsed(), "interrupted: stopping")
        code = 130
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        show.close()
        show.note(watch.elapsed(), f"the demo failed: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        system.stop()
        server.close()
        library_log.removeHandler(notes)
        library_log.setLevel(level)
        shutil.rmtree(workdir, ignore_errors=True)
    left = [t.name for t in threading.enumerate() if t.name.startswith("regisseur:")]
    if left:
        show.note(watch.elapsed(), f"threads left behind: {', '.join(left)}")
        return code or 1
    if code == 0:
        show.note(watch.elapsed(), "done: system stopped, no thread left behind")
    return code
