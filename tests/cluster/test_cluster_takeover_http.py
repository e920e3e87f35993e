"""A download taken over from a killed node resumes from the shared ``.part`` file.

Node ``a`` (a child process) downloads a file from a server in this process
into a directory it shares with node ``b``; the server sends half of the body
and holds the rest. ``a`` is killed with SIGKILL; once its lease has expired,
``b`` claims the download and asks for the rest with ``Range`` and
``If-Range`` from the part's last byte (its ``.meta``, which may record
less, was written in this boot of the machine: every byte ``a`` wrote is
in the part); the file ends complete and byte-identical, stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from typing import TYPE_CHECKING

import pytest

from regisseur.messages.downloads import DownloadState
from tests.cluster.helpers import client, close_all, http_pair, wait_until
from tests.downloads.conftest import HttpServer, Request, serve_bytes

if TYPE_CHECKING:
    from pathlib import Path

BODY = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32)  # 12 MiB
HALF = len(BODY) // 2
ETAG = '"v1"'


@pytest.mark.timeout(90)
def test_a_taken_over_download_resumes_from_the_shared_part_file(
    pg_url: str, http_server: HttpServer, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    half_sent = threading.Event()
    hold = http_server.gate()

    def first(request: Request) -> None:
        request.head(200, {"Content-Length": str(len(BODY)), "ETag": ETAG})
        request.write(BODY[:HALF])
        half_sent.set()
        hold.wait(60)  # until the test ends: the killed node never reads on
        with contextlib.suppress(OSError):
            request.write(BODY[HALF:])

    url = http_server.sequence("/big.bin", first, lambda r: serve_bytes(r, BODY, etag=ETAG))
    a, b = http_pair(pg_url, tmp_path, shared, lease_ttl=1.5)
    try:
        a.launch()
        a.wait_ready()
        with client(pg_url) as front:
            download_id = front.downloads.submit("http", url, "big.bin")
            assert half_sent.wait(30), "node a never fetched the file"
            part = wait_until(
                lambda: next((p for p in shared.glob("*.part") if p.stat().st_size >= HALF), None),
                30,
                "half of the body in the shared .part file",
            )
            a.kill()  # SIGKILL: no clean stop, no release
            meta = part.with_name(part.name + ".meta")
            recorded = json.loads(meta.read_text())["offset"]
            assert 0 < recorded <= HALF == part.stat().st_size
            b.launch()
            b.wait_ready()
            record = front.downloads.wait(download_id, timeout=30)
            assert record.state is DownloadState.SUCCEEDED, record.error
            assert record.file_path is not None
            assert (shared / "big.bin").read_bytes() == BODY
            assert not part.exists()
            assert sorted(p.name for p in shared.iterdir()) == ["big.bin"]

        requests = http_server.seen("/big.bin")
        assert len(requests) == 2, [r.headers for r in requests]
        resumed = requests[1].headers
        assert resumed.get("Range") == f"bytes={HALF}-"
        assert resumed.get("If-Range") == ETAG
    finally:
        close_all([a, b])
