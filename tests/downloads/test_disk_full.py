"""A download the local disk refuses (full, over quota) keeps its part for a retry.

ENOSPC is injected at the part's writes by a writer that takes ``room``
bytes and refuses the rest, as a full file system does (a short write, then
``ENOSPC``); a retry of the same download, once there is room, resumes
with a ``Range`` request from the offset the part's meta file recorded.
Before, the part and its meta were removed and a re-run started at byte 0.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import _partfile
from regisseur.actors.downloads._partfile import PartFile, PartWriter
from regisseur.actors.downloads.errors import UnknownDownloadError
from regisseur.actors.downloads.http import HttpSource
from regisseur.actors.downloads.http_errors import DownloadError
from regisseur.messages.downloads import DownloadState
from tests.downloads.conftest import WAIT, Harness, HttpServer, sha256

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

BODY = os.urandom(2 * 1024 * 1024 + 123)
ROOM = 1024 * 1024 + 7  # what the disk takes of the part before it is full
KEPT = re.compile(r"; (\d+) bytes kept for a re-run$")


class _Disk:
    """The part's writes: ``room`` bytes go through, then ``error`` (None: all go)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: int | None = errno.ENOSPC) -> None:
        self.room = ROOM
        self.error = error
        real = PartFile.open
        disk = self

        class _Full(PartWriter):
            # A full file system takes what fits (a short write), then
            # refuses: what PartWriter.write raises after its short write.
            def write(self, data: Any) -> int:
                if disk.error is None:
                    return super().write(data)
                left = disk.room - os.lseek(self.fileno(), 0, os.SEEK_CUR)
                if left <= 0:
                    raise OSError(disk.error, os.strerror(disk.error))
                if len(data) > left:
                    super().write(memoryview(data)[:left])
                    raise OSError(disk.error, os.strerror(disk.error))
                return super().write(data)

        def open_part(part: PartFile, offset: int) -> PartWriter:
            return _Full(real(part, offset).fileno())

        monkeypatch.setattr(PartFile, "open", open_part)


def _part(directory: Path, download_id: str) -> Path:
    return directory / f"big.bin.{download_id}.part"


def test_a_full_disk_keeps_the_part_and_a_retry_resumes_it(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _Disk(monkeypatch)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    download_id = "f" * 32
    # sha256: the copy loop (no splice), and the resumed file is checked whole.
    extra = {"sha256": sha256(BODY)}
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url, download_id=download_id, extra=extra)
    part = _part(harness.directory, download_id)
    text = str(info.value)
    assert text.startswith(f"cannot write {str(part)!r}: No space left on device; ")
    found = KEPT.search(text)
    assert found is not None, text
    kept = int(found.group(1))
    assert 0 < kept <= ROOM
    assert part.stat().st_size >= kept
    assert Path(f"{part}.meta").is_file()
    assert len(http_server.seen("/big.bin")) == 1  # not retried while the disk is full

    disk.error = None  # space was freed
    path = harness.fetch(harness.source(), url, download_id=download_id, extra=extra, claim=2)
    assert Path(path).read_bytes() == BODY
    again = http_server.seen("/big.bin")[1]
    assert again.headers["Range"] == f"bytes={kept}-"
    assert harness.files() == ["big.bin"]


def test_a_full_disk_that_refuses_the_meta_file_too_keeps_every_byte_of_the_part(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full disk the last update of ``<part>.meta`` fails as well: it
    records the checkpoint before (the first chunk). The part's size is the
    body's bytes up to the refused write, and its meta file is of this boot:
    the retry resumes there. Before, it resumed at the checkpoint and
    fetched the rest of the part again."""
    disk = _Disk(monkeypatch)
    save = PartFile.save

    def refused_once_full(part: PartFile, *args: Any, **options: Any) -> None:
        if disk.error is not None and part.size() >= disk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(part.temporary_path))
        save(part, *args, **options)

    monkeypatch.setattr(PartFile, "save", refused_once_full)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    download_id = "m" * 32
    extra = {"sha256": sha256(BODY)}
    with pytest.raises(DownloadError, match=KEPT) as info:
        harness.fetch(harness.source(), url, download_id=download_id, extra=extra)
    found = KEPT.search(str(info.value))
    assert found is not None
    part = _part(harness.directory, download_id)
    recorded = json.loads(Path(f"{part}.meta").read_text())["offset"]
    assert recorded < ROOM == part.stat().st_size == int(found.group(1))

    disk.error = None
    path = harness.fetch(harness.source(), url, download_id=download_id, extra=extra, claim=2)
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/big.bin")[1].headers["Range"] == f"bytes={ROOM}-"


@pytest.mark.parametrize("error", [errno.EDQUOT])
def test_over_quota_is_kept_like_a_full_disk(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    _Disk(monkeypatch, error)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    with pytest.raises(DownloadError, match=KEPT):
        harness.fetch(harness.source(), url, download_id="q" * 32, extra={"sha256": sha256(BODY)})
    assert _part(harness.directory, "q" * 32).exists()


@pytest.mark.parametrize("error", [errno.EIO, errno.EROFS])
def test_other_write_errors_remove_the_part_as_before(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    """An I/O error may have lost pages written before it; a file system gone
    read-only was judged unsafe by the kernel: neither part is resumed."""
    _Disk(monkeypatch, error)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(), url, download_id="e" * 32, extra={"sha256": sha256(BODY)})
    assert "kept" not in str(info.value)
    assert harness.files() == []


def test_a_failed_fsync_is_never_kept(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk reported by fsync (NFS, thin volumes): the pages it could
    not write may be gone, so the part's bytes are not known good."""

    def refuse(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_partfile.os, "fsync", refuse)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    with pytest.raises(DownloadError) as info:
        harness.fetch(harness.source(fsync=True), url, download_id="s" * 32)
    assert "kept" not in str(info.value)
    assert harness.files() == []


def _system(
    system_factory: Callable[..., ActorSystem], directory: Path, *, database: bool
) -> ActorSystem:
    options: dict[str, Any] = {} if database else {"database_url": None}
    source = HttpSource(directory=directory, retries=0)
    return system_factory(download_sources=[source], **options)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("database", [True, False])
def test_retry_resumes_an_errored_download_under_its_id(
    system_factory: Callable[..., ActorSystem],
    tmp_path: Path,
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    database: bool,  # noqa: FBT001
) -> None:
    disk = _Disk(monkeypatch)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    system = _system(system_factory, tmp_path, database=database)
    downloads = system.downloads
    download_id = downloads.submit("http", url, "big.bin", extra={"sha256": sha256(BODY)})
    failed = downloads.wait(download_id, WAIT)
    assert failed.state is DownloadState.ERRORED
    found = KEPT.search(failed.error or "")
    assert found is not None, failed.error
    kept = int(found.group(1))

    disk.error = None
    assert downloads.retry(download_id) is True
    assert downloads.retry(download_id) is False  # not ended: nothing to do
    done = downloads.wait(download_id, WAIT)
    assert done.state is DownloadState.SUCCEEDED, done.error
    assert Path(done.file_path or "").read_bytes() == BODY
    assert http_server.seen("/big.bin")[1].headers["Range"] == f"bytes={kept}-"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".part", ".meta")) == []

    with pytest.raises(ValueError, match="only an errored or cancelled download can be retried"):
        downloads.retry(download_id)
    with pytest.raises(UnknownDownloadError):
        downloads.retry("no-such-download")


@pytest.mark.timeout(60)
def test_of_two_systems_retrying_one_download_one_reopens_it(
    system_factory: Callable[..., ActorSystem],
    tmp_path: Path,
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes on one records database (two systems here): the reopen
    is a conditional write, so only one runs the download and its part."""
    disk = _Disk(monkeypatch)
    url = http_server.file("/big.bin", BODY, etag='"v1"')
    database = f"sqlite:///{tmp_path / 'records.db'}"
    first = system_factory(
        download_sources=[HttpSource(directory=tmp_path, retries=0)], database_url=database
    )
    download_id = first.downloads.submit("http", url, "big.bin", extra={"sha256": sha256(BODY)})
    assert first.downloads.wait(download_id, WAIT).state is DownloadState.ERRORED
    second = system_factory(
        download_sources=[HttpSource(directory=tmp_path, retries=0)], database_url=database
    )
    disk.error = None
    assert second.downloads.retry(download_id) is True
    assert first.downloads.retry(download_id) is False  # reopened already, by the other
    done = second.downloads.wait(download_id, WAIT)
    assert done.state is DownloadState.SUCCEEDED, done.error
    assert len(http_server.seen("/big.bin")) == 2  # one run resumed it, once
