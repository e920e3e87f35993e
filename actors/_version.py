"""The installed version of regisseur (``--version``, the default ``User-Agent``).

Read from the package metadata once per process (the value never changes
while it runs). Safe on any thread; never raises: a source tree that was
not installed reports ``0+unknown``.
"""

from __future__ import annotations

import functools

__all__ = ["user_agent", "version"]


@functools.cache
def version() -> str:
    """``0.1.0``: the version pip installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("regisseur")
    except PackageNotFoundError:
        return "0+unknown"


def user_agent() -> str:
    """``regisseur/0.1.0``: what HTTP requests say they come from by default."""
    return f"regisseur/{version()}"
