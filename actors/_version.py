"""The version of regisseur (``--version``, the default ``User-Agent``).

:data:`__version__` is the one place the version is written: setup.cfg
reads it from here (``version = attr: ...``), so the installed metadata
says the same. Reading a constant costs nothing, where asking
``importlib.metadata`` parses the whole installed METADATA file (the
README with it): 70 ms of a command-line run's start-up on a slow machine.
Safe on any thread; never raises.
"""

from __future__ import annotations

__all__ = ["__version__", "user_agent", "version"]

__version__ = "0.1.0"


def version() -> str:
    """``0.1.0``: the version of this copy of regisseur."""
    return __version__


def user_agent() -> str:
    """``regisseur/0.1.0``: what HTTP requests say they come from by default."""
    return f"regisseur/{__version__}"
