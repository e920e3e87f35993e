"""``regisseur demo``: every part of regisseur at work, offline, in a few seconds.

A local HTTP server (127.0.0.1, a free port) serves generated files; a
system on a SQLite database in a temporary directory (or ``--db``) runs a
start-order graph: a ``cache`` resource stage first, then three per-server
loops (``flaky-server`` fails three times and is restarted after 0.5, 1
and 2 s), a periodic ``reporter`` service (paused, then resumed), an actor
stopped for good by a ``FatalError``, and two download sources (HTTP with
concurrency 3, a slower plugin source with a delay between starts): a 500
retried into a success, a 404, a download cancelled midway. See
``cli/demo/_script.py`` for the steps.

Output: a live view (rich, on a terminal), plain lines (``--plain``, or
when stdout is not a terminal) or JSON lines (``--json``); a summary at
the end. Exit code 0, 1 if the demo went wrong, 130 on Ctrl-C (143 on
SIGTERM, 129 on SIGHUP, taken like it by the console script).

Threads: everything here runs on the caller's thread; Ctrl-C ends any wait
at once, and the system and the server are stopped before returning.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from regisseur.actors.system import ActorSystem
from regisseur.cli._interrupts import cleaning_up, exit_code, interrupted, stopped_by
from regisseur.cli._records_db import sqlite_url
from regisseur.cli.demo._cast import cast, sources
from regisseur.cli.demo._events import RetryNotes, ServiceRan
from regisseur.cli.demo._script import SERVED, run_script
from regisseur.cli.demo._server import DemoServer
from regisseur.cli.demo._show import PlainShow, Show, Summary, make_show, rich_available
from regisseur.cli.demo._watch import Watcher
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    ChildStopTimedOut,
    DeadLetter,
    StartupFailed,
    SupervisorEscalated,
    SystemFailed,
)

__all__ = ["DEADLINE", "choose_mode", "run_demo"]

#: What the demo shows of the supervision (downloads come from ``system.downloads``).
SUPERVISION_EVENTS = (
    ChildStarted,
    ChildFailed,
    ChildRestarting,
    ChildRestarted,
    ChildStopped,
    ChildStopTimedOut,
    ChildGaveUp,
    SupervisorEscalated,
    StartupFailed,
    SystemFailed,
    DeadLetter,
)
#: Seconds the whole demo may take before it gives up (it needs about six).
DEADLINE = 25.0


def choose_mode(plain: bool, json_lines: bool, out: TextIO) -> str:
    """``json``, ``plain`` or ``live`` (a terminal with rich installed)."""
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
    """Run the demo, writing to ``out`` (stdout); return the exit code."""
    out = out or sys.stdout
    library_log = logging.getLogger("regisseur")
    workdir = Path(tempfile.mkdtemp(prefix="regisseur-demo-"))
    server: DemoServer | None = None
    system: ActorSystem | None = None
    show: Show = PlainShow(out)  # until the chosen show exists
    watch = Watcher(show, DEADLINE)
    notes = RetryNotes(watch)
    summary: Summary | None = None
    code = 0
    failure = ""
    stopped: str | None = None  # how a signal stopped the demo: "interrupted", ...
    try:
        server = DemoServer(SERVED)
        system = ActorSystem(
            cast(),
            name="demo",
            database_url=database_url or sqlite_url(workdir / "demo.db"),
            download_sources=sources(workdir),
        )
        show = make_show(choose_mode(plain, json_lines, out), out, system, "regisseur demo")
        watch.show = show
        library_log.addHandler(notes)
        system.downloads.subscribe(watch)  # state changes and progress
        system.events.subscribe(watch, *SUPERVISION_EVENTS, ServiceRan)
        watch.note(f"serving files on {server.url}; starting the system in dependency order")
        system.start()
        summary = run_script(system, server.url, watch)
    except KeyboardInterrupt as interrupt:  # Ctrl-C; SIGTERM, SIGHUP from the console script
        code, stopped = exit_code(interrupt), stopped_by(interrupt)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        ended = interrupted(exc)  # a lock's error raised as the interrupt unwound?
        if ended is not None:
            code, stopped = ended
        else:
            code = 1
            failure = f"the demo failed: {type(exc).__name__}: {exc}"
    finally:
        with cleaning_up():
            if system is not None:
                system.stop()  # a live view shows the stop in reverse start order
            if server is not None:
                server.close()
            show.close()
            library_log.removeHandler(notes)
            shutil.rmtree(workdir, ignore_errors=True)
    if stopped is not None:
        watch.note(f"{stopped}: the system and the server are stopped")
    elif code == 1:
        watch.note(failure)
    left = [t.name for t in system.threads()] if system is not None else []
    if server is not None and server.alive:
        left.append("regisseur:demo-http")
    if left:
        watch.note(f"threads left behind: {', '.join(left)}")
        return code or 1
    if summary is not None:
        show.summary(summary)
        watch.note("done: system stopped, no thread left behind")
    return code
