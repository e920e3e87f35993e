"""The ``regisseur`` command line, its demo and its terminal views.

Not part of the runtime: ``regisseur.actors``, ``regisseur.supervision`` and
``regisseur.messages`` never import this package (tests/cli checks it), so
an application that embeds the library does not load it. It builds on the
runtime's public modules, as any application would.

* :func:`main`: the ``regisseur`` command, to call inside a program;
  :func:`console_main`: the console script (``python -m regisseur.cli``).
* :mod:`regisseur.cli.download`: ``regisseur download`` (its arguments in
  ``_download_args``, the checks of ``-o`` and the records file in
  ``_download_places``).
* :mod:`regisseur.cli.status`: ``regisseur status`` (:class:`StatusError`).
* :mod:`regisseur.cli.demo`: ``regisseur demo``.

Importing this package loads nothing but the argument parser: each command
imports what it needs when it runs, so ``--help`` and a one-file download
do not pay for what they do not use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from regisseur.cli._main import console_main, main

if TYPE_CHECKING:
    from regisseur.cli.status import StatusError

__all__ = ["StatusError", "console_main", "main"]

# Imported on first use (PEP 562): the status module loads SQLAlchemy.
_LAZY = {"StatusError": "regisseur.cli.status"}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        msg = f"module 'regisseur.cli' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
