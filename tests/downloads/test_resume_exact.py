"""A part whose meta file this boot of the machine wrote resumes at its size.

A run killed past its last checkpoint leaves more bytes in its part than
its meta file records; the kernel kept every one of them (a process death
loses none of what ``write`` or ``splice`` handed over). Before, a resume
cut them off and fetched them again. HttpSource's impl is called directly
with a hand-built context (conftest's ``Harness``); a real server on
127.0.0.1 answers. The parts are laid out as such a run leaves them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from regisseur.actors.downloads import _localfs, _partfile
from regisseur.actors.downloads._partfile import PartFile, Validators
from tests.downloads.conftest import Harness, HttpServer, sha256

BODY = os.urandom(16 * 1024)
ID = "5" * 32
V1 = Validators('"v1"', None, len(BODY))
THIS_BOOT = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def left(
    harness: Harness, data: bytes, offset: int, validators: Validators = V1, run: int | None = None
) -> PartFile:
    """The part a run of this boot left when it was killed: ``data``, of which
    its last checkpoint recorded ``offset`` bytes."""
    harness.directory.mkdir(parents=True, exist_ok=True)
    part = PartFile(harness.directory, ["data.bin"], ID, run)
    part.path.write_bytes(data)
    part.save(validators, offset)
    return part


def recorded_boot(part: PartFile) -> object:
    return json.loads(part.meta_path.read_text()).get("boot")


def fetch(harness: Harness, http_server: HttpServer, **options: object) -> list[str | None]:
    """Download ``BODY`` (its checksum asked for) into the part's directory;
    the ``Range`` of each request sent."""
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    extra = {"sha256": sha256(BODY)}
    path = harness.fetch(harness.source(**options), url, download_id=ID, extra=extra)
    assert Path(path).read_bytes() == BODY
    assert harness.files() == ["data.bin"]
    return [seen.headers.get("Range") for seen in http_server.seen("/data.bin")]


@pytest.mark.timeout(30)
def test_a_part_of_this_boot_resumes_at_its_size_not_at_its_checkpoint(
    harness: Harness, http_server: HttpServer
) -> None:
    part = left(harness, BODY[:5000], 3000)
    assert recorded_boot(part) == THIS_BOOT
    assert fetch(harness, http_server) == ["bytes=5000-"]
    assert harness.progress[0].transferred == 5000


@pytest.mark.timeout(30)
def test_a_part_of_this_boot_as_long_as_the_body_is_synced_and_published_without_a_request(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its last byte, before the fsync and the complete record:
    its bytes may be in the page cache alone, so the part is synced first."""
    part = left(harness, BODY, 3000)
    inode = part.path.stat().st_ino
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(_partfile.os, "fsync", fsync)
    assert fetch(harness, http_server, fsync=True) == []
    assert inode in synced


@pytest.mark.timeout(30)
def test_a_part_longer_than_the_body_resumes_at_its_checkpoint(
    harness: Harness, http_server: HttpServer
) -> None:
    """Not what a run of this body leaves: its size is not trusted."""
    part = left(harness, BODY + b"what no body has", 3000)
    assert recorded_boot(part) == THIS_BOOT
    assert fetch(harness, http_server) == ["bytes=3000-"]


@pytest.mark.timeout(30)
def test_without_a_known_size_the_resume_asks_for_the_parts_last_byte_again(
    harness: Harness, http_server: HttpServer
) -> None:
    """A chunked body (no length known) whose run was killed after its last
    byte: a range from the end would be refused (416) and start it over."""
    part = left(harness, BODY, 3000, Validators('"v1"', None, None))
    assert recorded_boot(part) == THIS_BOOT
    assert fetch(harness, http_server) == [f"bytes={len(BODY) - 1}-"]


@pytest.mark.timeout(30)
def test_where_there_is_no_boot_id_a_part_resumes_at_its_checkpoint(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A system without ``/proc/sys/kernel/random/boot_id``: a meta file is
    written without a boot, and trusted as far as its checkpoint."""
    monkeypatch.setattr(_partfile, "boot_id", lambda: None)
    part = left(harness, BODY[:5000], 3000)
    assert recorded_boot(part) is None
    assert fetch(harness, http_server) == ["bytes=3000-"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["nfs4", "cifs", "fuse.sshfs"])
def test_a_part_on_a_network_file_system_resumes_at_its_checkpoint(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Its server may drop bytes a killed writer left to write back (the file
    keeps its size, with zeros there): trusted only as far as its checkpoint."""
    monkeypatch.setattr(_localfs, "file_system_type", lambda device: kind)
    part = left(harness, BODY[:5000], 3000)
    assert recorded_boot(part) == THIS_BOOT
    assert fetch(harness, http_server) == ["bytes=3000-"]


def test_the_test_machines_own_file_system_is_known_and_local(tmp_path: Path) -> None:
    """The lookup in /proc/self/mountinfo finds the type of a real directory's
    file system (the resume at a part's size depends on it)."""
    device = os.stat(tmp_path).st_dev
    assert _localfs.file_system_type(device) not in (None, "")
    assert _localfs.keeps_dead_writers_bytes(device)


@pytest.mark.timeout(30)
def test_of_the_parts_set_aside_the_one_with_the_most_bytes_on_disk_is_continued(
    harness: Harness, http_server: HttpServer
) -> None:
    """Parts of this boot are weighed by their size, not their checkpoints."""
    left(harness, BODY[:5000], 5000)
    recorded_less = left(harness, BODY[:7000], 2000, run=1)
    assert recorded_boot(recorded_less) == THIS_BOOT
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    extra = {"sha256": sha256(BODY)}
    path = harness.fetch(harness.source(), url, download_id=ID, claim=2, extra=extra)
    assert Path(path).read_bytes() == BODY
    assert [s.headers["Range"] for s in http_server.seen("/data.bin")] == ["bytes=7000-"]
    assert harness.files() == ["data.bin"]


def test_a_source_looks_a_devices_file_system_up_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per device, not per download: /proc/self/mountinfo can be long."""
    looked: list[int] = []
    real = _localfs.file_system_type

    def counting(device: int) -> str | None:
        looked.append(device)
        return real(device)

    monkeypatch.setattr(_localfs, "file_system_type", counting)
    known = _localfs.FileSystems()
    device = os.stat(tmp_path).st_dev
    assert all(known.keep_dead_writers_bytes(device) for _ in range(3))
    assert looked == [device]
