"""A ``.part`` belongs to one run: locked, resumed at its recorded offset, never via a symlink.

HttpSource's impl is called directly with a hand-built context (see
conftest's ``Harness``); a real server on 127.0.0.1 answers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from regisseur.actors.downloads import _localfs, _partfile
from regisseur.actors.downloads._http_fetch import _OWNER_CHECK_SECONDS
from regisseur.actors.downloads._partfile import PartFile, Validators
from regisseur.actors.downloads.errors import StaleClaimError
from tests.downloads.conftest import Harness, HttpServer, Request, serve_bytes, sha256
from tests.downloads.helpers import written_before_a_reboot

BODY = bytes(range(256)) * 64  # 16 KiB
ID = "7" * 32


def part_of(harness: Harness, name: str = "data.bin", download_id: str = ID) -> PartFile:
    harness.directory.mkdir(parents=True, exist_ok=True)
    return PartFile(harness.directory, [name], download_id)


@pytest.mark.timeout(30)
def test_after_a_reboot_resume_continues_at_the_recorded_offset_not_at_the_end_of_the_file(
    harness: Harness, http_server: HttpServer
) -> None:
    """Bytes past the recorded offset (written after the last checkpoint, in
    an earlier boot: they may never have reached the disk) are cut off."""
    part = part_of(harness)
    part.path.write_bytes(BODY[:3000] + b"unrecorded bytes" * 40)
    part.save(Validators('"v1"', None, len(BODY)), 3000)
    written_before_a_reboot(part.meta_path)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, extra={"sha256": sha256(BODY)})
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin")[0].headers["Range"] == "bytes=3000-"
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_part_shorter_than_its_recorded_offset_starts_over(
    harness: Harness, http_server: HttpServer
) -> None:
    part = part_of(harness)
    part.path.write_bytes(BODY[:1000])
    part.save(Validators('"v1"', None, len(BODY)), 3000)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers


@pytest.mark.timeout(30)
def test_a_complete_part_is_published_without_a_request(
    harness: Harness, http_server: HttpServer
) -> None:
    """Interrupted between the end of the body and the rename: nothing is fetched again."""
    part = part_of(harness)
    part.path.write_bytes(BODY)
    part.save(Validators('"v1"', None, len(BODY)), len(BODY), complete=True)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, extra={"sha256": sha256(BODY)})
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin") == []
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_the_meta_file_is_never_written_through_a_symlink(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """Planted while the request is under way (after any clean-up of the run)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    part = part_of(harness)

    def plant_then_answer(request: Request) -> None:
        part.meta_path.unlink(missing_ok=True)
        part.meta_path.symlink_to(victim)
        serve_bytes(request, BODY, etag='"v1"')

    url = http_server.route("/data.bin", plant_then_answer)
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert victim.read_text() == "precious"
    # A fresh run that found no meta file and wrote none does not look for
    # one again: what was planted meanwhile stays, as it was, beside it.
    assert harness.files() == ["data.bin", part.meta_path.name]
    assert part.meta_path.readlink() == victim


@pytest.mark.timeout(30)
def test_the_size_of_a_symlinks_target_is_never_a_range_offset(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """A symlink planted as the part: its target is neither measured nor written."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"v" * 5000)
    part = part_of(harness)
    part.path.symlink_to(victim)
    part.save(Validators('"v1"', None, len(BODY)), 5000)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert victim.read_bytes() == b"v" * 5000
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_run_that_lost_ownership_publishes_nothing(
    harness: Harness, http_server: HttpServer
) -> None:
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    with pytest.raises(StaleClaimError):
        harness.fetch(harness.source(), url, download_id=ID, check_owner=lambda: False)
    assert harness.files() == []  # no file published, its part removed


@pytest.mark.timeout(30)
def test_a_part_held_by_a_live_run_is_never_written_by_a_stale_one(
    harness: Harness, http_server: HttpServer
) -> None:
    holder = part_of(harness)
    holder.lock()
    try:
        holder.path.write_bytes(b"the holder's bytes")
        url = http_server.file("/data.bin", BODY, etag='"v1"')
        with pytest.raises(StaleClaimError):
            harness.fetch(harness.source(), url, download_id=ID, check_owner=lambda: False)
        assert holder.path.read_bytes() == b"the holder's bytes"
        assert http_server.seen("/data.bin") == []
    finally:
        holder.unlock()


@pytest.mark.timeout(30)
def test_the_owner_waits_for_a_part_a_stale_run_still_holds(
    harness: Harness, http_server: HttpServer
) -> None:
    stale = part_of(harness)
    stale.lock()
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    running = harness.start(harness.source(), url, download_id=ID)
    try:
        assert harness.timers.next_wait() == pytest.approx(0.2)  # polling the lock
        assert http_server.seen("/data.bin") == []
    finally:
        stale.remove()
        stale.unlock()
    harness.clock.advance(0.2)
    assert Path(running.result()).read_bytes() == BODY
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_lock_is_released_when_its_holder_closes(tmp_path: Path) -> None:
    first = PartFile(tmp_path, ["x.bin"], ID)
    second = PartFile(tmp_path, ["x.bin"], ID)
    first.lock()
    errors: list[BaseException] = []

    def try_lock() -> None:
        try:
            second.lock()
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=try_lock)
    thread.start()
    thread.join(5)
    assert len(errors) == 1 and "another run" in str(errors[0])
    first.unlock()
    second.lock()
    second.unlock()


@pytest.mark.timeout(30)
def test_a_leftover_or_planted_meta_temporary_is_replaced_not_followed(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    part = part_of(harness)
    part.path.write_bytes(BODY[:100])  # the killed run's bytes (it saved after them)
    part.temporary_path.symlink_to(victim)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert victim.read_text() == "precious"
    assert harness.files() == ["data.bin"]  # no .part, .meta or .tmp left


@pytest.mark.timeout(30)
def test_a_temporary_planted_beside_a_fresh_part_is_never_followed(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """Planted before a run that starts from nothing (no part, no meta file):
    a run killed while saving a meta file leaves its part with bytes, so
    this one is nobody's; it is left as it was (never followed or written)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    part = part_of(harness)
    part.path.unlink(missing_ok=True)
    part.temporary_path.symlink_to(victim)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert victim.read_text() == "precious"
    assert part.temporary_path.readlink() == victim
    assert not part.path.exists()


@pytest.mark.timeout(30)
def test_a_hard_link_planted_as_the_part_is_never_written_through(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    """Before: a hard link put in place of an interrupted run's part (another name
    of any file on the file system) was resumed: the file was cut to the recorded
    offset, the body written into it, and it was published as the download."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"v" * 5000)
    part = part_of(harness)
    os.link(victim, part.path)
    part.save(Validators('"v1"', None, len(BODY)), 3000)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert victim.read_bytes() == b"v" * 5000
    assert victim.stat().st_nlink == 1
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_fifo_planted_as_the_part_is_replaced_by_a_file(
    harness: Harness, http_server: HttpServer
) -> None:
    """Before: the body went into the pipe (to whoever reads it) and the download
    was published as a FIFO."""
    part = part_of(harness)
    os.mkfifo(part.path)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = Path(harness.fetch(harness.source(), url, download_id=ID))
    assert path.is_file()
    assert path.read_bytes() == BODY


@pytest.mark.timeout(30)
def test_a_fifo_planted_as_the_meta_file_does_not_block_the_download(
    harness: Harness, http_server: HttpServer
) -> None:
    """Before: opening the meta file to read it waited forever for a writer."""
    part = part_of(harness)
    part.path.write_bytes(BODY[:3000])
    os.mkfifo(part.meta_path)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    assert Path(harness.fetch(harness.source(), url, download_id=ID)).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert harness.files() == ["data.bin"]


def test_the_owner_locks_never_go_through_a_planted_link(tmp_path: Path) -> None:
    """Before: a link in place of ``<database>-owners`` was followed: ``plan.lock`` and
    the owner's lock file were made (and could be held) in the link's target."""
    import errno

    from regisseur.actors.downloads._owners import OwnerLock, planning

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    locks = tmp_path / "records.db-owners"
    locks.symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link") as refused, planning(locks, lambda: None):
        pass
    assert refused.value.errno == errno.ELOOP
    with pytest.raises(OSError, match="symbolic link"):
        OwnerLock(locks, "host:1:s:abcd").acquire()
    assert list(elsewhere.iterdir()) == []
    locks.unlink()
    with planning(locks, lambda: None):  # a real directory is made, private
        assert locks.is_dir()
        assert locks.stat().st_mode & 0o777 == 0o700


MIB = 1024 * 1024


@pytest.mark.timeout(30)
def test_a_fast_download_asks_whether_it_still_owns_the_download_once(
    harness: Harness, http_server: HttpServer
) -> None:
    """Checkpoints ask at most every few seconds; the publish always asks.

    Each ask is a round trip to the keeper: at every checkpoint they cost a
    fast download about a tenth of its throughput.
    """
    body = bytes(range(256)) * (320 * 1024)  # 80 MiB: three checkpoints
    url = http_server.file("/big.bin", body, etag='"v1"')
    asked: list[bool] = []

    def owner() -> bool:
        asked.append(True)
        return True

    path = harness.fetch(harness.source(), url, download_id=ID, check_owner=owner)
    assert Path(path).read_bytes() == body
    assert len(asked) == 1, "once, before publishing (the clock did not move)"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["local", "no-boot-id", "network-fs"])
def test_a_fast_body_records_its_good_length_every_32_mib_not_every_few(
    harness: Harness,
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """Each record of the part's length creates a file (0.5 ms of CPU): at
    loopback speed one every 4 MiB took a third of the copy's CPU. A resume in the same boot
    continues at the part's size anyway; the records are for after a reboot."""
    body = bytes(range(256)) * (80 * 1024)  # 20 MiB
    url = http_server.file("/big.bin", body, etag='"v1"')
    offsets: list[int] = []
    save = PartFile.save

    def counting(part: PartFile, validators: Validators, offset: int = 0, **kw: bool) -> None:
        offsets.append(offset)
        save(part, validators, offset, **kw)

    monkeypatch.setattr(PartFile, "save", counting)
    # Where a part's size is never trusted, only its records: not Linux, or
    # a file system whose server may drop what a dead writer left behind.
    if where == "no-boot-id":
        monkeypatch.setattr(_partfile, "boot_id", lambda: None)
    elif where == "network-fs":
        monkeypatch.setattr(_localfs, "file_system_type", lambda device: "nfs4")
    path = harness.fetch(harness.source(), url, download_id=ID)
    assert Path(path).read_bytes() == body
    # After its first chunk (resumable from then on), none before its first
    # byte (a record of no good byte resumes nothing); at its end only where
    # the part's size cannot say it is complete.
    assert 0 < offsets[0] < 4 * MIB
    assert offsets[1:] == ([] if where == "local" else [len(body)])


@pytest.mark.timeout(30)
def test_a_run_taken_over_midway_stops_at_its_next_checkpoint_once_the_interval_passed(
    harness: Harness, http_server: HttpServer
) -> None:
    """A stale run does not stream the rest of a large body before it finds out."""
    body = bytes(range(256)) * (192 * 1024)  # 48 MiB
    requested = threading.Event()
    gate = http_server.gate()
    sent = [0]

    def answer_after_the_gate(request: Request) -> None:
        requested.set()
        gate.wait(30)
        request.head(200, {"Content-Length": str(len(body)), "ETag": '"v1"'})
        try:
            for start in range(0, len(body), MIB):
                request.write(body[start : start + MIB])
                sent[0] = start + MIB
        except OSError:  # the client went away
            request.close()

    url = http_server.route("/big.bin", answer_after_the_gate)
    owned = [True]
    running = harness.start(harness.source(), url, download_id=ID, check_owner=lambda: owned[0])
    assert requested.wait(30), "the request never came"
    owned[0] = False  # another run took the download over ...
    harness.clock.advance(_OWNER_CHECK_SECONDS)  # ... and the interval passed
    gate.set()
    with pytest.raises(StaleClaimError):
        running.result()
    assert harness.files() == [], "nothing published, the part removed"
    assert sent[0] < len(body), "stopped at a checkpoint, not at the end of the body"
