"""The keeper's commits reach the disk before they are acknowledged.

A download's Succeeded record is acknowledged (``wait`` returns, its event
is published) after the keeper's commit; on SQLite's WAL default a power
loss could still drop that commit while the file it names, fsynced before,
survives. Seen from outside with ``strace``: between the submit and the
moment ``wait`` returns, the records' ``-wal`` is synced (before, it was
synced only at checkpoints: at the system's start and stop).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from regisseur.actors import ActorSystem
    from regisseur.actors.downloads import DownloadSource

    root = sys.argv[1]

    def impl(download_id, target_id, name):
        return os.path.join(root, name)

    source = DownloadSource("s", impl)
    with ActorSystem(database_url=f"sqlite:///{root}/records.db", download_sources=[source]) as system:
        os.access("/regisseur-marker-submit", os.F_OK)
        download = system.downloads.submit("s", "t", "f")
        record = system.downloads.wait(download, 30)
        os.access("/regisseur-marker-answered", os.F_OK)
        print(record.state.value)
    """
)
SYNC = re.compile(r"\bf(?:data)?sync\(\d+<(?P<path>[^>]*)>")


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_the_records_wal_is_synced_before_a_download_is_answered(tmp_path: Path) -> None:
    root = tmp_path / "records"
    root.mkdir()
    trace = tmp_path / "trace"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        ["strace", "-f", "-y", "-qq", "-o", str(trace),
         "-e", "trace=fsync,fdatasync,access,faccessat,faccessat2",
         sys.executable, "-c", SCRIPT, str(root)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    if "Operation not permitted" in done.stderr and "ptrace" in done.stderr:
        pytest.skip("ptrace is not permitted here")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Completed, Succeeded"
    lines = trace.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "regisseur-marker-submit" in line)
    end = next(i for i, line in enumerate(lines) if "regisseur-marker-answered" in line)
    synced = [
        match["path"] for line in lines[start:end] if (match := SYNC.search(line)) is not None
    ]
    assert str(root / "records.db-wal") in synced, lines[start : end + 1]
