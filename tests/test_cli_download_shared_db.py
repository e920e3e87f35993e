"""``regisseur download --db FILE`` shared by runs in several directories.

Real processes against the held local server of ``tests/test_cli_download.py``.
Before, a run in one directory took over the unfinished downloads a stopped
run had left for another directory, fetched them anew into its own (the
other run's part left behind), and the other run, run again, called its
URL "already downloaded" into the wrong directory. A run now finishes only
the downloads submitted for its own directory; the others wait for theirs.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.test_cli_download import FIRST, cli, ended, files, run, signal_midway

if TYPE_CHECKING:
    from tests.test_cli_download import _Server

__all__ = ["files"]  # the fixture, shared

pytestmark = pytest.mark.timeout(120)


def _parts(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.glob("*.part")}


def _stopped_midway(files: _Server, url: str, directory: Path, records: Path) -> dict[str, int]:
    """A run of ``url`` into ``directory`` with ``--db records``, stopped
    (SIGTERM) once its part holds the first chunk; the parts it left. Every
    answer is whole from then on."""
    command = cli("download", url, "-o", str(directory), "--db", str(records), "--plain")
    code, _, err = ended(signal_midway(command, files, directory, signal.SIGTERM))
    assert code == 143, err
    left = _parts(directory)
    assert len(left) == 1 and next(iter(left.values())) >= FIRST
    files.gate.set()
    return left


def test_a_run_finishes_only_its_own_directory_s_unfinished_downloads(
    files: _Server, tmp_path: Path
) -> None:
    records = tmp_path / "shared.db"
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    big = files.url("/data/big.bin")
    left = _stopped_midway(files, big, first_dir, records)

    files.served.add("other.bin")
    other = files.url("/data/other.bin")
    second = run("download", other, "-o", str(second_dir), "--db", str(records), "--plain")
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"{second_dir / 'other.bin'}\n"
    assert "resuming" not in second.stderr and "big.bin" not in second.stderr
    assert sorted(p.name for p in second_dir.iterdir()) == ["other.bin"]
    assert _parts(first_dir) == left, "the first run's part is left for it"

    again = run("download", big, "-o", str(first_dir), "--db", str(records), "--plain")
    assert again.returncode == 0, again.stderr
    assert f"resuming {big}" in again.stderr
    assert again.stdout == f"{first_dir / 'big.bin'}\n"
    assert (first_dir / "big.bin").read_bytes() == files.body
    resumed_from = next(iter(left.values()))
    assert files.ranges[-1] == f"bytes={resumed_from}-", files.ranges
    assert sorted(p.name for p in first_dir.iterdir()) == ["big.bin"]


def test_the_same_url_in_another_directory_is_downloaded_there(
    files: _Server, tmp_path: Path
) -> None:
    """A URL another directory's stopped run left unfinished is fetched
    anew for this directory, not waited for, and the other run still
    resumes its own part later."""
    records = tmp_path / "shared.db"
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    big = files.url("/data/big.bin")
    left = _stopped_midway(files, big, first_dir, records)

    second = run("download", big, "-o", str(second_dir), "--db", str(records), "--plain")
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"{second_dir / 'big.bin'}\n"
    assert (second_dir / "big.bin").read_bytes() == files.body
    assert _parts(first_dir) == left

    again = run("download", big, "-o", str(first_dir), "--db", str(records), "--plain")
    assert again.returncode == 0, again.stderr
    assert f"resuming {big}" in again.stderr
    assert (first_dir / "big.bin").read_bytes() == files.body
