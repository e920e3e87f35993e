"""Plain data shared by regisseur's actors: commands, events, records and states.

Everything here is immutable (frozen, slotted dataclasses or enums) and
depends on nothing else in the project, so it is safe to pass between
threads and to import from anywhere.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from regisseur.messages._renamed import renamed
from regisseur.messages.commands import Command
from regisseur.messages.downloads import (
    CancelDownload,
    ClaimDownload,
    CompleteDownload,
    DownloadProgressed,
    DownloadRecord,
    DownloadState,
    DownloadStateChanged,
    FailDownload,
    QueueDownload,
    ReportProgress,
)
from regisseur.messages.events import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    ChildStopTimedOut,
    DeadLetter,
    Event,
    StartupFailed,
    SupervisorEscalated,
    SupervisorShutDown,
    SystemFailed,
)
from regisseur.messages.health import HealthReport
from regisseur.messages.lifecycle import Lifecycle

if TYPE_CHECKING:
    from regisseur.messages.cluster import ClusterChanged, NodeFenced, NodeInfo, NodeUnfenced
    from regisseur.messages.service import Pause, Resume, RunNow

# Imported on first use (PEP 562): the cluster's and the service actors'
# messages are not needed by a program that runs neither (the command line
# pays for every class it defines at start-up).
_LAZY = {
    "ClusterChanged": "regisseur.messages.cluster",
    "NodeFenced": "regisseur.messages.cluster",
    "NodeInfo": "regisseur.messages.cluster",
    "NodeUnfenced": "regisseur.messages.cluster",
    "Pause": "regisseur.messages.service",
    "Resume": "regisseur.messages.service",
    "RunNow": "regisseur.messages.service",
}

__all__ = [
    "CancelDownload",
    "ChildFailed",
    "ChildGaveUp",
    "ChildRestarted",
    "ChildRestarting",
    "ChildStarted",
    "ChildStopTimedOut",
    "ChildStopped",
    "ClaimDownload",
    "ClusterChanged",
    "Command",
    "CompleteDownload",
    "DeadLetter",
    "DownloadProgressed",
    "DownloadRecord",
    "DownloadState",
    "DownloadStateChanged",
    "Event",
    "FailDownload",
    "HealthReport",
    "Lifecycle",
    "NodeFenced",
    "NodeInfo",
    "NodeUnfenced",
    "Pause",
    "QueueDownload",
    "ReportProgress",
    "Resume",
    "RunNow",
    "StartupFailed",
    "SupervisorEscalated",
    "SupervisorShutDown",
    "SystemFailed",
]


if not TYPE_CHECKING:  # type checkers report the old names as missing: use the new ones

    def __getattr__(name: str) -> Any:
        """A name of ``_LAZY``, imported now; or the old name of a renamed
        command, with a ``DeprecationWarning``."""
        home = _LAZY.get(name)
        if home is None:
            return renamed(__name__, name)
        value = getattr(import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
