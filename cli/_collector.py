"""The cyclic garbage collector around a command-line process's start-up and exit.

A ``regisseur download`` of one small file makes about 55,000 objects while
it imports the runtime, SQLAlchemy and requests and starts its system, and
nearly all of them live until the process ends (modules, classes,
functions, compiled statements). The collector walks them again and again
while they are made (about 115 young, 10 middle and 1 full collection:
50-60 ms on the 2-core CI machine) and once more while the interpreter
shuts down (about 80 ms), which together were a fifth of the command's
wall time. :class:`StartupCollector`:

* at creation turns the collector off (if it was on);
* :meth:`~StartupCollector.over`, called by a command once its start-up is
  done (the system started, the downloads planned), moves every object
  made so far into the permanent generation (:func:`gc.freeze`) and turns
  the collector back on: the rest of the run collects what the run makes,
  never the start-up's objects again. The cost: garbage cycles made during
  the start-up are not reclaimed (bounded, once per process);
* :meth:`~StartupCollector.at_exit`, just before the process exits, freezes
  again, so the interpreter's last collection skips the lot. Every
  ``atexit`` handler, flush and object finaliser that a normal exit runs
  still runs (Python never promised finalisers for cycles alive at exit).

Only the console script (:func:`regisseur.cli.console_main`) uses it:
:func:`regisseur.cli.main` called inside another program never touches the
collector. Threads: the main thread. Failures: none (``gc`` calls only).
"""

from __future__ import annotations

import gc

__all__ = ["StartupCollector"]


class StartupCollector:
    """Pauses the cyclic collector until :meth:`over` (see the module docstring)."""

    def __init__(self) -> None:
        self._paused = gc.isenabled()  # a collector someone turned off stays off
        if self._paused:
            gc.disable()

    @property
    def paused(self) -> bool:
        """True between creation and :meth:`over`, if the collector was on."""
        return self._paused

    def over(self) -> None:
        """The start-up is done: freeze what it made and collect again. Idempotent."""
        if self._paused:
            self._paused = False
            gc.freeze()
            gc.enable()

    def at_exit(self) -> None:
        """The process is about to exit: nothing alive now needs a last collection."""
        self.over()
        gc.freeze()
