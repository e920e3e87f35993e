"""Which boot of the machine's kernel this process runs in.

Linux draws a random id at each boot (``/proc/sys/kernel/random/boot_id``,
a UUID). A part's meta file records it (see ``_partfile``): what a process
handed the kernel with ``write`` or ``splice`` stays in the file (in the
page cache, then on disk) when the process dies, killed or crashed; only
the end of the kernel (a power loss, a kernel crash, a reboot) can leave
a file whose size covers bytes that never reached the disk. Under the
same boot id, a part is as good as its size; under another, only as far
as its last checkpoint.

The id is read once per process, on first use, and kept: it cannot change
while the process runs. A read-only value, so two systems in one process
share it safely.

Threads: any; callers racing on the first use each read the same file.
Failures: none raised. ``None`` where the file cannot be read or holds no
UUID (not Linux, ``/proc`` not mounted): callers then trust checkpoints
alone.
"""

from __future__ import annotations

import functools
import re

__all__ = ["boot_id"]

_PATH = "/proc/sys/kernel/random/boot_id"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.cache
def boot_id() -> str | None:
    """This boot's id (lower-case UUID text), or None where the system has none."""
    try:
        with open(_PATH, "rb") as file:
            text = file.read(64).decode("ascii").strip().lower()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _UUID.fullmatch(text) else None
