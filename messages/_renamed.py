"""Names that were renamed, kept importable for a while with a warning.

The commands to the download state-keeper used to be named like events
(``DownloadQueued``, ``DownloadProgress`` beside the event
``DownloadProgressed`` …). They are imperatives now; the old names still
import, from ``regisseur.messages`` and ``regisseur.messages.downloads``,
as the same classes, with a ``DeprecationWarning`` naming the new one.
They go away in 1.0.

This module is the one place that spells the old names (the rename script
skips it); :func:`renamed` serves a package's module ``__getattr__``.

Threads: any; the table is immutable.
"""

from __future__ import annotations

import importlib
import warnings
from types import MappingProxyType
from typing import Any

__all__ = ["RENAMED", "renamed"]

#: Old name -> (module defining the new name, new name).
RENAMED = MappingProxyType(
    {
        "DownloadQueued": ("regisseur.messages.downloads", "QueueDownload"),
        "DownloadStarted": ("regisseur.messages.downloads", "ClaimDownload"),
        "DownloadProgress": ("regisseur.messages.downloads", "ReportProgress"),
        "DownloadSucceeded": ("regisseur.messages.downloads", "CompleteDownload"),
        "DownloadFailed": ("regisseur.messages.downloads", "FailDownload"),
        "DownloadCancelled": ("regisseur.messages.downloads", "CancelDownload"),
    }
)


def renamed(module: str, name: str) -> Any:
    """The object an old ``name`` now goes by, warning once per call site.

    For a module's ``__getattr__`` (any thread). Raises ``AttributeError``
    (as Python expects from ``__getattr__``) for a name that was never
    renamed.
    """
    target = RENAMED.get(name)
    if target is None:
        msg = f"module {module!r} has no attribute {name!r}"
        raise AttributeError(msg)
    where, new = target
    warnings.warn(
        f"{module}.{name} was renamed to {new} (commands are named as imperatives); "
        "the old name goes away in 1.0",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(where), new)
