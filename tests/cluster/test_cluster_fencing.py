"""Fencing: a node frozen past its lease, or reaped, never writes or publishes as an owner.

Node processes (``tests/cluster/node_child.py``) share one database and one
output directory. A node is frozen with SIGSTOP until another node has
taken its download over (or until it was reaped), then woken with SIGCONT.
Counted every time: publishes (``spans.log``), two nodes running the same
download at once (``intervals.log``, the frozen window left out: a frozen
process runs nothing), Errored rows, rows left unfinished.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import pytest

from regisseur.messages.downloads import DownloadState
from tests.cluster.helpers import (
    client,
    concurrent_runs,
    intervals,
    nodes,
    run_counts,
    runs,
    spans,
    table,
    wait_until,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.cluster.helpers import NodeProcess, Table

LEASE = 1.5
WAIT = 30.0
SUCCEEDED = DownloadState.SUCCEEDED.value


def _owner(db: Table, download_id: str) -> str | None:
    return next((r.owner for r in db.rows() if r.id == download_id), None)


def _freeze(node: NodeProcess) -> float:
    os.kill(node.pid, signal.SIGSTOP)
    return time.monotonic()


def _thaw(node: NodeProcess) -> float:
    os.kill(node.pid, signal.SIGCONT)
    return time.monotonic()


def _check_once(db: Table, out: Path, download_id: str, frozen: list[tuple[str, float, float]]):
    """The counts every test asserts: returns the publishing node.

    The frozen windows are also kept in ``out/frozen.log`` (for the bench).
    """
    with (out / "frozen.log").open("a", encoding="utf-8") as log:
        for node, stop, cont in frozen:
            log.write(f"{node} {stop:.6f} {cont:.6f}\n")
    rows = {r.id: r for r in db.rows()}
    assert rows[download_id].state == SUCCEEDED, rows[download_id]
    published = [node for i, node, _s, _e in spans(out) if i == download_id]
    assert len(published) == 1, f"published {len(published)} times: {published}"
    assert not [r for r in rows.values() if r.state == DownloadState.ERRORED.value]
    assert not [r for r in rows.values() if r.state not in (SUCCEEDED, "Cancelled")]
    assert concurrent_runs(out, frozen) == []
    return published[0]


@pytest.mark.timeout(90)
def test_a_node_frozen_during_the_body_publishes_nothing_once_woken(
    pg_url: str, tmp_path: Path
) -> None:
    options = {"lease_ttl": LEASE, "poll_interval": 0.3, "concurrency": 1}
    with (
        nodes(pg_url, tmp_path, ["a"], **options) as started,
        client(pg_url) as front,
        table(pg_url) as db,
    ):
        download_id = front.downloads.submit("noop", "hold-1", "held")
        wait_until(lambda: run_counts(tmp_path)[download_id] == 1, WAIT, "the run on a")
        stopped = _freeze(started["a"])
        try:
            with nodes(pg_url, tmp_path, ["b"], **options):
                wait_until(lambda: run_counts(tmp_path)[download_id] == 2, WAIT, "b takes over")
                assert runs(tmp_path)[-1] == (download_id, "b")
                (tmp_path / "open-hold-1").write_text("go")  # both runs may publish now
                record = front.downloads.wait(download_id, WAIT)
                assert record.state is DownloadState.SUCCEEDED, record.error
                woken = _thaw(started["a"])
                # a's run wakes, sees its lease gone before anything else, and ends.
                wait_until(
                    lambda: any(i == download_id and n == "a" for i, n, *_ in intervals(tmp_path)),
                    WAIT,
                    "a's stale run to end",
                )
                assert started["a"].alive()
                assert _check_once(db, tmp_path, download_id, [("a", stopped, woken)]) == "b"
                # Stopped by its token, or refused at its publish: never published.
                ended = [how for i, n, _s, _e, how in intervals(tmp_path) if n == "a"]
                assert ended in (["cancelled"], ["stale"]), ended
                assert front.downloads.status(download_id).state is DownloadState.SUCCEEDED  # type: ignore[union-attr]
        finally:
            os.kill(started["a"].pid, signal.SIGCONT)


@pytest.mark.timeout(90)
def test_a_node_frozen_between_the_body_and_the_publish_publishes_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    options = {"lease_ttl": LEASE, "poll_interval": 0.3, "concurrency": 1, "work_ms": 50}
    with (
        nodes(pg_url, tmp_path, ["a"], **options) as started,
        client(pg_url) as front,
        table(pg_url) as db,
    ):
        download_id = front.downloads.submit("noop", "pub-1", "held")
        wait_until((tmp_path / "body-pub-1-a").exists, WAIT, "a's body to be complete")
        stopped = _freeze(started["a"])
        try:
            # Opened while a is frozen: a's run goes straight to its publish once woken.
            (tmp_path / "publish-pub-1").write_text("go")
            with nodes(pg_url, tmp_path, ["b"], **options):
                record = front.downloads.wait(download_id, WAIT)
                assert record.state is DownloadState.SUCCEEDED, record.error
                woken = _thaw(started["a"])
                wait_until(
                    lambda: any(i == download_id and n == "a" for i, n, *_ in intervals(tmp_path)),
                    WAIT,
                    "a's stale run to end",
                )
                assert _check_once(db, tmp_path, download_id, [("a", stopped, woken)]) == "b"
                ended = [how for i, n, _s, _e, how in intervals(tmp_path) if n == "a"]
                assert ended in (["cancelled"], ["stale"]), ended
        finally:
            os.kill(started["a"].pid, signal.SIGCONT)


@pytest.mark.timeout(90)
def test_a_reaped_node_claims_its_download_again_while_the_old_run_ends(
    pg_url: str, tmp_path: Path
) -> None:
    """Only ``a`` serves the source: once reaped and woken it claims the
    download again, a second run (a new token) while the first is stopping;
    the first run's end never touches the new claim."""
    options = {"lease_ttl": LEASE, "poll_interval": 0.3, "concurrency": 2}
    with (
        nodes(pg_url, tmp_path, ["a"], **options) as started,
        client(pg_url) as front,
        table(pg_url) as db,
    ):
        download_id = front.downloads.submit("noop", "hold-big", "big.bin")
        wait_until(lambda: run_counts(tmp_path)[download_id] == 1, WAIT, "the run on a")
        stopped = _freeze(started["a"])
        try:
            wait_until(lambda: _owner(db, download_id) is None, WAIT, "a reaped by the client")
            woken = _thaw(started["a"])
            wait_until(lambda: run_counts(tmp_path)[download_id] == 2, WAIT, "a runs it again")
            (tmp_path / "open-hold-big").write_text("go")
            record = front.downloads.wait(download_id, WAIT)
            assert record.state is DownloadState.SUCCEEDED, record.error
            assert record.file_path == str(tmp_path / "hold-big")
            assert _check_once(db, tmp_path, download_id, [("a", stopped, woken)]) == "a"
            wait_until(lambda: len(intervals(tmp_path)) == 2, WAIT, "both runs ended")
            assert sorted(how for *_r, how in intervals(tmp_path)) == ["cancelled", "published"]
            assert sorted(p.name for p in tmp_path.glob("hold-big*")) == ["hold-big"]
        finally:
            os.kill(started["a"].pid, signal.SIGCONT)
