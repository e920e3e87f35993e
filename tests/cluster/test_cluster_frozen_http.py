"""A node frozen in the middle of a small HTTP body, past its lease, publishes nothing.

Node ``a`` (a child process) fetches a 16 KiB file (a *small* body: no
``.meta`` file while it streams) into a directory it shares with node
``b``; the server sends half of it and holds the rest. ``a`` is frozen
with SIGSTOP; ``b`` starts, reaps ``a`` once its lease expired, takes the
download over and publishes it. Then the server sends the rest of
``a``'s body while ``a`` is still frozen, and ``a`` is woken (SIGCONT)
with all of it in its socket: ``a`` must publish nothing over ``b``'s
file, nor beside it, and the record stays ``b``'s success.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from typing import TYPE_CHECKING

import pytest

from regisseur.messages.downloads import DownloadState
from tests.cluster.helpers import client, close_all, http_pair, wait_until
from tests.downloads.conftest import HttpServer, Request, serve_bytes

if TYPE_CHECKING:
    from pathlib import Path

BODY = hashlib.sha256(b"small").digest() * (16 * 1024 // 32)  # 16 KiB
HALF = len(BODY) // 2
ETAG = '"v1"'
LEASE = 1.5


@pytest.mark.timeout(90)
def test_a_node_frozen_mid_small_body_past_its_lease_publishes_nothing_once_woken(
    pg_url: str, http_server: HttpServer, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    half_sent, rest_sent = threading.Event(), threading.Event()
    hold = http_server.gate()

    def first(request: Request) -> None:  # node a's request
        request.head(200, {"Content-Length": str(len(BODY)), "ETag": ETAG})
        request.write(BODY[:HALF])
        half_sent.set()
        hold.wait(60)  # until a is woken
        request.write(BODY[HALF:])
        rest_sent.set()

    url = http_server.sequence("/small.bin", first, lambda r: serve_bytes(r, BODY, etag=ETAG))
    a, b = http_pair(pg_url, tmp_path, shared, lease_ttl=LEASE)
    try:
        a.launch()
        a.wait_ready()
        with client(pg_url) as front:
            download_id = front.downloads.submit("http", url, "small.bin")
            assert half_sent.wait(30), "node a never fetched the file"
            os.kill(a.pid, signal.SIGSTOP)  # frozen holding its half body
            b.launch()
            b.wait_ready()
            record = front.downloads.wait(download_id, timeout=30)  # b, after a's lease
            assert record.state is DownloadState.SUCCEEDED, record.error
            assert (shared / "small.bin").read_bytes() == BODY

            # The rest goes into a's socket while a is frozen (it fits the
            # buffers): woken, a finds its whole body there. Sent after the
            # wake-up instead, it raced a's fence, which may shut the socket
            # down first (then the server's write fails: ~1 run in 8 here).
            hold.set()
            assert rest_sent.wait(30), "the server never sent node a the rest of its body"
            os.kill(a.pid, signal.SIGCONT)
            # What a leaves behind once its run ended: its part file gone.
            wait_until(lambda: not list(shared.glob("*.part*")), 30, "node a's part file to go")
            assert sorted(p.name for p in shared.iterdir()) == ["small.bin"]
            assert (shared / "small.bin").read_bytes() == BODY
            after = front.downloads.status(download_id)
            assert after.state is DownloadState.SUCCEEDED
            assert after.file_path == record.file_path
        assert len(http_server.seen("/small.bin")) == 2
    finally:
        close_all([a, b])


def _stopped(pid: int) -> bool:
    """True once process ``pid`` is stopped (state ``T`` in /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.timeout(90)
def test_a_node_frozen_after_its_publish_leaves_one_file_to_the_node_that_takes_over(
    pg_url: str, http_server: HttpServer, tmp_path: Path
) -> None:
    """Node ``a`` publishes small.bin and is frozen before its record says so,
    past its lease. ``b`` takes the download over (a later claim), fetches it
    again, finds the very bytes already in place and records that file: no
    ``small (1).bin``. Woken, ``a`` changes nothing."""
    shared = tmp_path / "shared"
    shared.mkdir()
    url = http_server.file("/small.bin", BODY, etag=ETAG)
    a, b = http_pair(pg_url, tmp_path, shared, lease_ttl=LEASE, freeze_a=True)
    try:
        a.launch()
        a.wait_ready()
        with client(pg_url) as front:
            download_id = front.downloads.submit("http", url, "small.bin")
            wait_until(lambda: _stopped(a.pid), 30, "node a frozen after its publish")
            assert sorted(p.name for p in shared.iterdir()) == ["small.bin"]
            assert front.downloads.status(download_id).state is DownloadState.IN_PROGRESS
            b.launch()
            b.wait_ready()
            record = front.downloads.wait(download_id, timeout=30)  # b, after a's lease
            assert record.state is DownloadState.SUCCEEDED, record.error
            assert record.file_path == str(shared.resolve() / "small.bin")
            assert sorted(p.name for p in shared.iterdir()) == ["small.bin"]
            os.kill(a.pid, signal.SIGCONT)
            wait_until(lambda: not _stopped(a.pid), 30, "node a running again")
            after = front.downloads.status(download_id)
            assert (after.state, after.file_path) == (DownloadState.SUCCEEDED, record.file_path)
        assert len(http_server.seen("/small.bin")) == 2, "fetched by a, then by b"
        assert sorted(p.name for p in shared.iterdir()) == ["small.bin"]
        assert (shared / "small.bin").read_bytes() == BODY
    finally:
        if a.alive():
            os.kill(a.pid, signal.SIGCONT)
        close_all([a, b])
