"""Whether a file system keeps what a process wrote after that process died.

A part resumes at its size (see ``_partfile``) because a process death
loses nothing the process handed the kernel: on a local file system the
kernel writes those bytes back, and a full disk or a failing device says
so at ``write`` time or for good. A network or FUSE file system writes
back to a server that may refuse the bytes later (a server out of space,
an unreachable one on a soft mount): the client then drops them, and the
file keeps its size with zeros where they were. There a part is trusted
only as far as its last checkpoint, as after a reboot.

The file system's type comes from ``/proc/self/mountinfo``, looked up by
the device number a ``stat`` of the part gives; :class:`FileSystems` keeps
the answers for its owner (an ``HttpSource``: once per device, not once
per download). Unknown (not Linux, no ``/proc``): not trusted.

Threads: any (``FileSystems`` guards its answers with a lock). Failures:
none raised.
"""

from __future__ import annotations

import os
import threading

__all__ = ["FileSystems", "file_system_type", "keeps_dead_writers_bytes"]

_MOUNTINFO = "/proc/self/mountinfo"
# Network and cluster file systems, and FUSE (``fuse``, ``fuse.sshfs``, ...).
_REMOTE = frozenset(
    {
        "9p",
        "afs",
        "ceph",
        "cifs",
        "davfs",
        "gfs2",
        "glusterfs",
        "lustre",
        "ncpfs",
        "nfs",
        "nfs4",
        "ocfs2",
        "smb3",
        "smbfs",
        "virtiofs",
    }
)


def keeps_dead_writers_bytes(device: int) -> bool:
    """True if the file system of ``device`` (a ``stat``'s ``st_dev``) is a
    local one: the bytes a killed process wrote there are not lost."""
    kind = file_system_type(device)
    if kind is None:
        return False
    return kind not in _REMOTE and kind != "fuse" and not kind.startswith("fuse.")


class FileSystems:
    """:func:`keeps_dead_writers_bytes` per device, each looked up once (for
    the devices an owner's parts are on: a few; at most ``_KEPT`` kept)."""

    _KEPT = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[int, bool] = {}

    def keep_dead_writers_bytes(self, device: int) -> bool:
        """:func:`keeps_dead_writers_bytes` of ``device``, looked up once."""
        with self._lock:
            known = self._known.get(device)
        if known is None:
            known = keeps_dead_writers_bytes(device)
            with self._lock:
                if len(self._known) < self._KEPT:
                    self._known[device] = known
        return known


def file_system_type(device: int) -> str | None:
    """The type of the file system mounted from ``device`` (``ext4``, ``nfs4``, ...),
    or None where ``/proc/self/mountinfo`` does not say."""
    key = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open(_MOUNTINFO, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[2] != key:
            continue
        try:  # optional fields end with "-"; the type follows it
            return fields[fields.index("-", 6) + 1]
        except (ValueError, IndexError):
            return None
    return None
