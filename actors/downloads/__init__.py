"""Downloads as actors: sources, their queues and workers, and the state-keeper.

Import the public names from here::

    from regisseur.actors.downloads import DownloadSource, HttpSource

Register sources with ``ActorSystem(download_sources=[...])`` (or
``system.downloads.register(source)``) and use ``system.downloads`` to
submit, watch and cancel downloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regisseur.actors.downloads.context import CancelToken, DownloadContext
from regisseur.actors.downloads.errors import (
    DownloadFailure,
    DownloadForgottenError,
    StaleClaimError,
    UnknownDownloadError,
    UnknownSourceError,
)
from regisseur.actors.downloads.facade import Downloads, DownloadSettings
from regisseur.actors.downloads.http_errors import DownloadError, DownloadInterrupted
from regisseur.actors.downloads.source import DownloadSource

if TYPE_CHECKING:
    from regisseur.actors.downloads.http import HttpSource

__all__ = [
    "CancelToken",
    "DownloadContext",
    "DownloadError",
    "DownloadFailure",
    "DownloadForgottenError",
    "DownloadInterrupted",
    "DownloadSettings",
    "DownloadSource",
    "Downloads",
    "HttpSource",
    "StaleClaimError",
    "UnknownDownloadError",
    "UnknownSourceError",
]


def __getattr__(name: str) -> Any:
    # HttpSource pulls in requests; embedding apps that never download over
    # HTTP do not pay for that import.
    if name == "HttpSource":
        from regisseur.actors.downloads.http import HttpSource

        return HttpSource
    msg = f"module 'regisseur.actors.downloads' has no attribute {name!r}"
    raise AttributeError(msg)
