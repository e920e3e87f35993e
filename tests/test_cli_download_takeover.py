"""Two or three ``regisseur download`` runs on one directory when the run
that owns a download dies (SIGKILL) or is frozen (SIGSTOP).

Real processes (``python -m regisseur.cli``) against a local server that
holds the first full answer of ``a.bin`` after its first bytes and paces
every body (``tests/reliability/two_writers``), so the owner is
mid-download, with a checkpointed ``.part`` holding those bytes, when it
is signalled. A run that takes over resumes from the part's last byte.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.reliability import two_writers
from tests.reliability.two_writers import DB_NAME, ROOT, WAIT, wait_until
from tests.test_cli_download import cli, run

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def server() -> Iterator[two_writers.Server]:
    with contextlib.contextmanager(two_writers.serve)() as running:
        yield running


class _Run:
    """A ``regisseur download URL -o DIR`` process, its stderr in a file to read as it goes."""

    def __init__(self, url: str, directory: Path, log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                cli("download", url, "-o", str(directory), "--plain"),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def end(self) -> tuple[int, str, str]:
        """Wait for the run (killed after WAIT): its exit code, stdout and stderr."""
        try:
            out, _ = self.process.communicate(timeout=WAIT)
        finally:
            self.stop()
        return self.process.returncode, out, self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.communicate()


def _checkpointed(directory: Path) -> int:
    """The good length recorded in the ``.meta`` of ``a.bin``'s part (0 if none yet)."""
    for meta in directory.glob("a.bin.*.part.meta"):
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(meta.read_text())["offset"])
    return 0


def _held(directory: Path) -> int:
    """The bytes in ``a.bin``'s part (0 if there is none yet)."""
    for part in directory.glob("a.bin.*.part"):
        with contextlib.suppress(OSError):
            return part.stat().st_size
    return 0


def _owner_mid_download(server: two_writers.Server, directory: Path, tmp_path: Path) -> _Run:
    """Run A, once its ``.part`` of ``a.bin`` is checkpointed and holds every
    byte the server sent before it held the rest (``server.first``)."""
    owner = _Run(server.url("a.bin"), directory, tmp_path / "a.err")
    try:
        wait_until(server.sent_first("a.bin").is_set, "the first bytes of a.bin")
        wait_until(lambda: _checkpointed(directory) > 0, "a checkpoint of the .part")
        wait_until(lambda: _held(directory) == server.first, "the first bytes in the .part")
    except BaseException:
        owner.stop()
        raise
    return owner


def _waiting(server: two_writers.Server, directory: Path, log: Path, owner: _Run) -> _Run:
    """Another run of the same URL, once it says it waits for ``owner``."""
    waiter = _Run(server.url("a.bin"), directory, log)
    try:
        wait_until(
            lambda: waiter.said(f"pid {owner.pid} on host") or waiter.process.poll() is not None,
            "the second run waiting",
        )
        assert waiter.said("is downloading it"), waiter.log.read_text()
    except BaseException:
        waiter.stop()
        raise
    return waiter


def _one_success(
    server: two_writers.Server, directory: Path, url: str, fetched: list[str | None]
) -> None:
    """The file was fetched with the ``Range`` headers ``fetched`` and is whole;
    its download has one Succeeded record and nothing else is left behind."""
    assert server.fetched("a.bin") == fetched
    assert (directory / "a.bin").read_bytes() == server.bodies["a.bin"]
    status = run("status", str(directory), "--json")
    assert status.returncode == 0, status.stderr
    states = [d["state"] for d in json.loads(status.stdout)["downloads"] if d["target_id"] == url]
    assert states == ["Completed, Succeeded"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["a.bin", DB_NAME, f"{DB_NAME}-owners"]
    )


@pytest.mark.timeout(120)
def test_a_run_waiting_for_a_killed_runs_download_takes_it_over_and_finishes_it(
    server: two_writers.Server, tmp_path: Path
) -> None:
    """Before: the waiting run reported ``FAILED URL: pid N on host H ended
    without finishing it; run the command again to resume it`` and exited 1."""
    directory, url = tmp_path / "out", server.url("a.bin")
    owner = _owner_mid_download(server, directory, tmp_path)
    waiter: _Run | None = None
    try:
        waiter = _waiting(server, directory, tmp_path / "b.err", owner)
        owner.process.send_signal(signal.SIGKILL)
        owner.process.wait(WAIT)
        code, out, err = waiter.end()
    finally:
        server.gate.set()
        owner.stop()
        if waiter is not None:
            waiter.stop()
    assert code == 0, err
    assert f"taking over {url}: pid {owner.pid} on host" in err
    assert "ended without finishing it" in err
    assert "FAILED" not in err
    assert out.splitlines() == [str(directory / "a.bin")]
    # Resumed from the part's last byte, whatever its last checkpoint recorded.
    _one_success(server, directory, url, [None, f"bytes={server.first}-"])


@pytest.mark.timeout(120)
def test_of_two_runs_waiting_for_a_killed_runs_download_exactly_one_takes_it_over(
    server: two_writers.Server, tmp_path: Path
) -> None:
    """The other waits for the one that took it over and reports it done."""
    directory, url = tmp_path / "out", server.url("a.bin")
    owner = _owner_mid_download(server, directory, tmp_path)
    waiters: list[_Run] = []
    try:
        for name in ("b", "c"):
            waiters.append(_waiting(server, directory, tmp_path / f"{name}.err", owner))
        owner.process.send_signal(signal.SIGKILL)
        owner.process.wait(WAIT)
        results = [waiter.end() for waiter in waiters]
    finally:
        server.gate.set()
        owner.stop()
        for waiter in waiters:
            waiter.stop()
    for code, out, err in results:
        assert code == 0, err
        assert out.splitlines() == [str(directory / "a.bin")]
        assert "1 of 1 download(s) done" in err
    takers = [err for _, _, err in results if "taking over" in err]
    assert len(takers) == 1, [err for _, _, err in results]
    _one_success(server, directory, url, [None, f"bytes={server.first}-"])  # once, by one run


@pytest.mark.timeout(120)
def test_a_frozen_run_keeps_its_download_and_finishes_it_when_continued(
    server: two_writers.Server, tmp_path: Path
) -> None:
    """SIGSTOP keeps the owner's lock: the waiting run never takes over (it
    would fetch the download a second time beside the frozen run's part)."""
    directory, url = tmp_path / "out", server.url("a.bin")
    owner = _owner_mid_download(server, directory, tmp_path)
    waiter: _Run | None = None
    try:
        owner.process.send_signal(signal.SIGSTOP)
        waiter = _waiting(server, directory, tmp_path / "b.err", owner)
        with pytest.raises(subprocess.TimeoutExpired):  # still waiting a second on (5 polls)
            waiter.process.wait(1.0)
        assert not waiter.said("taking over")
        owner.process.send_signal(signal.SIGCONT)
        server.gate.set()
        owner_code, owner_out, owner_err = owner.end()
        code, out, err = waiter.end()
    finally:
        server.gate.set()
        owner.stop()
        if waiter is not None:
            waiter.stop()
    assert owner_code == 0, owner_err
    assert owner_out.splitlines() == [str(directory / "a.bin")]
    assert code == 0, err
    assert "taking over" not in err
    assert out.splitlines() == [str(directory / "a.bin")]
    _one_success(server, directory, url, [None])  # only the owner's request
