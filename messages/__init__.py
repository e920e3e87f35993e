"""Plain data shared by regisseur's actors: events, records and states.

Everything here is immutable (frozen, slotted dataclasses or enums) and
depends on nothing else in the project, so it is safe to pass between
threads and to import from anywhere.
"""

from __future__ import annotations

from regisseur.messages.cluster import ClusterChanged, NodeFenced, NodeInfo, NodeUnfenced
from regisseur.messages.downloads import (
    DownloadCancelled,
    DownloadFailed,
    DownloadProgress,
    DownloadProgressed,
    DownloadQueued,
    DownloadRecord,
    DownloadStarted,
    DownloadState,
    DownloadStateChanged,
    DownloadSucceeded,
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
from regisseur.messages.service import Pause, Resume, RunNow

__all__ = [
    "ChildFailed",
    "ChildGaveUp",
    "ChildRestarted",
    "ChildRestarting",
    "ChildStarted",
    "ChildStopTimedOut",
    "ChildStopped",
    "ClusterChanged",
    "DeadLetter",
    "DownloadCancelled",
    "DownloadFailed",
    "DownloadProgress",
    "DownloadProgressed",
    "DownloadQueued",
    "DownloadRecord",
    "DownloadStarted",
    "DownloadState",
    "DownloadStateChanged",
    "DownloadSucceeded",
    "Event",
    "HealthReport",
    "NodeFenced",
    "NodeInfo",
    "NodeUnfenced",
    "Pause",
    "Resume",
    "RunNow",
    "StartupFailed",
    "SupervisorEscalated",
    "SupervisorShutDown",
    "SystemFailed",
]
