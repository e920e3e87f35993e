"""Parts set aside (``<name>.<id>~<claim>.part``) are the download's parts too.

A run taken over from a frozen process writes a part of its own while that
process keeps its lock on the shared one. Such parts are listed by
``HttpSource.partial_files``, resumed by a later run (the best part it can
lock wins, the others it locked are removed) and removed once the
download is published, except while another live process holds one: that
part is never read, cut or removed. A real second process holds the lock
where it matters (``flock`` locks of one process do not contend across
its own open files the way a test needs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads._http_fetch import _ASIDE_AFTER
from regisseur.actors.downloads._partfile import PartFile, Validators
from regisseur.actors.downloads.http_errors import DownloadError
from tests.downloads.conftest import WAIT, Harness, HttpServer, Request, serve_bytes, sha256
from tests.downloads.helpers import holding_process, written_before_a_reboot

if TYPE_CHECKING:
    pass

BODY = bytes(range(256)) * 64  # 16 KiB
ID = "7" * 32
V1 = Validators('"v1"', None, len(BODY))

_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def held_by_another_process(path: Path) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """A second process holding ``path``'s ``flock`` until the block ends (or it is killed)."""
    return holding_process(_HOLDER, path)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL ``process`` and wait for it: the kernel has dropped its locks then."""
    process.send_signal(signal.SIGKILL)
    process.wait(WAIT)


def shared(harness: Harness) -> PartFile:
    harness.directory.mkdir(parents=True, exist_ok=True)
    return PartFile(harness.directory, ["data.bin"], ID)


def put(part: PartFile, data: bytes, offset: int, validators: Validators = V1) -> None:
    """A part an earlier run left: ``data``, of which ``offset`` bytes are recorded good."""
    part.path.write_bytes(data)
    part.save(validators, offset, complete=offset == validators.size)


def snapshot(part: PartFile) -> tuple[bytes, str]:
    return part.path.read_bytes(), part.meta_path.read_text()


def gated(body: bytes, requested: threading.Event, gate: threading.Event) -> object:
    def answer(request: Request) -> None:
        requested.set()
        gate.wait(WAIT)
        serve_bytes(request, body, etag='"v1"')

    return answer


# -- listed -----------------------------------------------------------------------------


def test_partial_files_lists_the_parts_set_aside_of_the_downloads_asked_for(
    harness: Harness, tmp_path: Path
) -> None:
    """Before: a part set aside was counted for no download (the CLI said
    fewer partial files were kept than there were)."""
    source = harness.source()
    folder = harness.directory
    folder.mkdir(parents=True)
    mine = PartFile(folder, ("a.bin",), "d1")
    aside = mine.aside(3)
    for part in (mine, aside, PartFile(folder, ("b.bin",), "d2").aside(4)):
        part.path.write_bytes(b"abc")
    # The shared part of a download whose id looks like d1's part set aside
    # under the old naming ("d1-3"): another download's, never d1's.
    other = PartFile(folder, ("a.bin",), "d1-3").path
    other.write_bytes(b"another download's")
    (folder / "c.bin.d1~5.part").symlink_to(tmp_path / "elsewhere")  # not a plain file
    (folder / "d.bin.d1~.part").write_bytes(b"")  # no run: not a part
    (folder / "e.bin.d1~x.part").write_bytes(b"")
    odd = PartFile(folder, ("f.bin",), "id with spaces").aside(2).path  # a hashed tag
    odd.write_bytes(b"")
    assert aside.path.name == "a.bin.d1~3.part"
    assert source.partial_files(["d1"]) == sorted([mine.path, aside.path])
    assert source.partial_files(["d1-3", "id with spaces"]) == sorted([other, odd])


# -- resumed ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_later_run_resumes_from_a_part_set_aside(
    harness: Harness, http_server: HttpServer
) -> None:
    """Before: fetched again from byte 0, and the part set aside stayed forever."""
    put(shared(harness).aside(1), BODY[:3000], 3000)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(
        harness.source(), url, download_id=ID, claim=2, extra={"sha256": sha256(BODY)}
    )
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin")[0].headers["Range"] == "bytes=3000-"
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_the_best_part_is_continued_and_the_others_removed(
    harness: Harness, http_server: HttpServer
) -> None:
    part = shared(harness)
    put(part, BODY[:1000], 1000)
    put(part.aside(1), BODY[:5000], 5000)
    put(part.aside(2), BODY[:2000] + b"unrecorded" * 500, 2000)
    written_before_a_reboot(part.aside(2).meta_path)  # the bytes past 2000 may be lost
    put(part.aside(3), BODY[:100], 9000)  # shorter than its record: not usable
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(
        harness.source(), url, download_id=ID, claim=4, extra={"sha256": sha256(BODY)}
    )
    assert Path(path).read_bytes() == BODY
    [seen] = http_server.seen("/data.bin")
    assert seen.headers["Range"] == "bytes=5000-"
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_complete_part_set_aside_is_published_without_a_request(
    harness: Harness, http_server: HttpServer
) -> None:
    part = shared(harness)
    put(part, BODY[:1000], 1000)
    put(part.aside(1), BODY, len(BODY))
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, claim=2)
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin") == []
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_first_run_looks_for_no_part_set_aside(
    harness: Harness, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an earlier run sets a part aside: a first claim does not scan the directory."""
    scans: list[object] = []
    monkeypatch.setattr(PartFile, "set_aside", lambda *args: scans.append(args) or [])
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    harness.fetch(harness.source(), url, download_id=ID, claim=1)
    assert scans == []


# -- held by a live process ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_part_set_aside_that_a_live_process_holds_is_never_touched(
    harness: Harness, http_server: HttpServer
) -> None:
    held = shared(harness).aside(1)
    put(held, BODY[:5000], 5000)
    before = snapshot(held)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    with held_by_another_process(held.path):
        path = harness.fetch(harness.source(), url, download_id=ID, claim=2)
        assert Path(path).read_bytes() == BODY
        assert "Range" not in http_server.seen("/data.bin")[0].headers
        assert snapshot(held) == before
    assert harness.files() == sorted(["data.bin", held.path.name, held.meta_path.name])


@pytest.mark.timeout(30)
def test_a_part_set_aside_whose_holder_dies_during_the_run_is_removed_once_published(
    harness: Harness, http_server: HttpServer
) -> None:
    """Held as the run began, free when it publishes: a leftover no one will resume."""
    held = shared(harness).aside(1)
    put(held, BODY[:5000], 5000)
    requested, gate = threading.Event(), http_server.gate()
    url = http_server.route("/data.bin", gated(BODY, requested, gate))
    with held_by_another_process(held.path) as holder:
        running = harness.start(harness.source(), url, download_id=ID, claim=2)
        assert requested.wait(WAIT)
        assert held.path.exists()
        kill(holder)
    gate.set()
    assert Path(running.result()).read_bytes() == BODY
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_run_writes_aside_from_a_held_shared_part_and_removes_it_once_free(
    harness: Harness, http_server: HttpServer
) -> None:
    """The shared part's holder (a frozen process, here one that just holds
    the lock) keeps it: the run waits, then writes a part of its own and
    publishes that. The holder killed meanwhile, its part goes too."""
    part = shared(harness)
    put(part, BODY[:3000], 3000)
    before = snapshot(part)
    requested, gate = threading.Event(), http_server.gate()
    url = http_server.route("/data.bin", gated(BODY, requested, gate))
    with held_by_another_process(part.path) as holder:
        running = harness.start(harness.source(), url, download_id=ID, claim=2)
        for _ in range(_ASIDE_AFTER - 1):  # each wait is one poll of the lock
            assert harness.timers.next_wait() == pytest.approx(0.2)
            harness.clock.advance(0.2)
        assert requested.wait(WAIT)
        assert snapshot(part) == before, "never written while held"
        assert harness.source().partial_files([ID]) == sorted([part.path, part.aside(2).path])
        kill(holder)
    gate.set()
    assert Path(running.result()).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
def test_a_part_set_aside_held_under_this_runs_number_moves_it_to_the_next(
    harness: Harness, http_server: HttpServer
) -> None:
    """Another node's frozen run may hold a part of the same number (local
    epochs of two nodes can meet). Before: the run polled that lock forever."""
    part = shared(harness)
    taken = part.aside(2)
    put(taken, BODY[:4000], 4000)
    before = snapshot(taken)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    with held_by_another_process(part.path), held_by_another_process(taken.path):
        running = harness.start(harness.source(), url, download_id=ID, claim=2)
        for _ in range(_ASIDE_AFTER - 1):
            assert harness.timers.next_wait() == pytest.approx(0.2)
            harness.clock.advance(0.2)
        assert Path(running.result()).read_bytes() == BODY
        assert snapshot(taken) == before
    names = harness.files()
    assert "data.bin" in names and taken.path.name in names
    assert part.aside(3).path.name not in names  # written, then published


# -- the safety rules of the shared part -----------------------------------------------------


@pytest.mark.timeout(30)
def test_links_named_as_parts_set_aside_are_never_followed(
    harness: Harness, http_server: HttpServer, tmp_path: Path
) -> None:
    part = shared(harness)
    victim = tmp_path / "victim.bin"
    victim.write_bytes(BODY[:5000] + b"v" * 100)
    linked = tmp_path / "linked.bin"
    linked.write_bytes(BODY[:6000])
    symlinked, hard = part.aside(1), part.aside(2)
    symlinked.path.symlink_to(victim)
    symlinked.save(V1, 5000)
    os.link(linked, hard.path)
    hard.save(V1, 6000)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, claim=3)
    assert Path(path).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert victim.read_bytes() == BODY[:5000] + b"v" * 100
    assert linked.read_bytes() == BODY[:6000]
    assert linked.stat().st_nlink == 1  # the planted name is gone, the file as it was
    assert not hard.path.exists()
    assert symlinked.path.is_symlink()  # not a part: neither followed nor removed


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
def test_another_users_part_set_aside_is_neither_resumed_nor_removed(
    harness: Harness, http_server: HttpServer
) -> None:
    planted = shared(harness).aside(1)
    put(planted, BODY[:5000], 5000)
    os.chown(planted.path, 4242, 4242)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, claim=2)
    assert Path(path).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert planted.path.read_bytes() == BODY[:5000]


# -- look-alikes and other users' files ---------------------------------------------------


@pytest.mark.timeout(30)
def test_a_file_named_like_a_part_set_aside_under_another_name_is_left_alone(
    harness: Harness, http_server: HttpServer
) -> None:
    """A name that ends like this download's part set aside (``.<id>~<n>.part``)
    but starts with another name than the download's is no part of it: a
    file of the user's, or another download's, published under a name its
    server chose. Before: a later run truncated and removed it."""
    part = shared(harness)
    put(part.aside(1), BODY[:3000], 3000)  # a part set aside: still resumed
    notes = harness.directory / f"notes.{ID}~2.part"
    notes.write_bytes(b"the user's own notes")
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, claim=3)
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin")[0].headers["Range"] == "bytes=3000-"
    assert notes.read_bytes() == b"the user's own notes"
    assert harness.files() == sorted(["data.bin", notes.name])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("run", [1, 12345678901234567890])
def test_a_part_set_aside_with_a_name_near_the_limit_is_resumed(
    harness: Harness, http_server: HttpServer, run: int
) -> None:
    """The base of a long name is cut to leave room for the suffix, whose
    length depends on the run's number: each part set aside is found by its
    own name."""
    name = "n" * 300 + ".bin"
    part = PartFile(harness.directory, [name], ID).aside(run)
    harness.directory.mkdir(parents=True, exist_ok=True)
    put(part, BODY[:3000], 3000)
    assert len(os.fsencode(part.temporary_path.name)) <= 255
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, claim=2, original_filename=name)
    assert Path(path).read_bytes() == BODY
    assert http_server.seen("/data.bin")[0].headers["Range"] == "bytes=3000-"
    assert harness.files() == [Path(path).name]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")


@pytest.mark.timeout(30)
@needs_root
def test_another_users_file_under_the_shared_parts_name_is_never_resumed_nor_published(
    harness: Harness, http_server: HttpServer
) -> None:
    """Before: resumed from the other user's bytes, and the published file
    was theirs (its owner could change it after the checks)."""
    planted = shared(harness)
    put(planted, b"X" * 5000, 5000)
    os.chown(planted.path, 4242, 4242)
    before = snapshot(planted)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = Path(harness.fetch(harness.source(), url, download_id=ID, claim=1))
    assert path.read_bytes() == BODY
    assert path.stat().st_uid == os.geteuid()
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert snapshot(planted) == before
    assert planted.path.stat().st_uid == 4242


@pytest.mark.timeout(30)
@needs_root
def test_another_users_file_under_the_name_a_run_sets_aside_to_is_never_written(
    harness: Harness, http_server: HttpServer
) -> None:
    """The shared part held (a frozen run), the run writes aside: a file of
    another user planted under that name is passed over like a held one.
    Before: resumed from its bytes and published as the download."""
    part = shared(harness)
    planted = part.aside(2)
    put(planted, b"X" * 5000, 5000)
    os.chown(planted.path, 4242, 4242)
    before = snapshot(planted)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    with held_by_another_process(part.path):
        running = harness.start(harness.source(), url, download_id=ID, claim=2)
        for _ in range(_ASIDE_AFTER - 1):
            assert harness.timers.next_wait() == pytest.approx(0.2)
            harness.clock.advance(0.2)
        path = Path(running.result())
    assert path.read_bytes() == BODY
    assert path.stat().st_uid == os.geteuid()
    assert "Range" not in http_server.seen("/data.bin")[0].headers
    assert snapshot(planted) == before


@pytest.mark.timeout(30)
@needs_root
def test_a_run_without_a_claim_fails_naming_another_users_file_under_its_parts_name(
    harness: Harness, http_server: HttpServer
) -> None:
    """Without a claim a run never writes aside: it says what is in its way."""
    planted = shared(harness)
    put(planted, b"X" * 5000, 5000)
    os.chown(planted.path, 4242, 4242)
    before = snapshot(planted)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    with pytest.raises(DownloadError, match=r"belongs to another user \(uid 4242\)") as caught:
        harness.fetch(harness.source(), url, download_id=ID, claim=0)
    assert str(planted.path) in str(caught.value)
    assert http_server.seen("/data.bin") == []
    assert snapshot(planted) == before


@pytest.mark.timeout(30)
@needs_root
@pytest.mark.parametrize("aside", [False, True])
def test_a_meta_file_of_another_user_is_never_trusted(
    harness: Harness, http_server: HttpServer, aside: bool
) -> None:
    """This user's part with 5000 good bytes of 16 KiB; another user replaced
    its meta file with one that says the body is complete at 5000 bytes.
    Before: the 5000 bytes were published, without a request, as the download."""
    part = shared(harness).aside(1) if aside else shared(harness)
    put(part, BODY[:5000], 5000, Validators('"v1"', None, 5000))
    os.chown(part.meta_path, 4242, 4242)
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(harness.source(), url, download_id=ID, claim=2)
    assert Path(path).read_bytes() == BODY
    assert "Range" not in http_server.seen("/data.bin")[0].headers


@needs_root
def test_partial_files_lists_no_file_of_another_user(harness: Harness) -> None:
    """What a stopped CLI run counts as its partial files kept: never a file
    another user put under a part's name (a run neither resumes nor removes
    it). Before: counted."""
    mine = shared(harness).aside(3)
    mine.path.write_bytes(b"abc")
    for theirs in (mine.aside(4), PartFile(harness.directory, ["other.bin"], ID)):
        theirs.path.write_bytes(b"abc")
        os.chown(theirs.path, 4242, 4242)
    assert harness.source().partial_files([ID]) == [mine.path]


# -- complete parts of another version ------------------------------------------------------

NEW = bytes(reversed(BODY))  # the file as the server has it now
V2 = Validators('"v2"', None, len(NEW))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["shared", "aside"])
def test_a_complete_part_of_another_version_is_fetched_again_when_the_sha256_says_so(
    harness: Harness, http_server: HttpServer, where: str
) -> None:
    """A part complete with the old version's bytes (its run was killed
    before it published; a part set aside wins over a shared part with
    fewer bytes) and the user asks for the new version's sha256. Before:
    'sha256 mismatch' without a request, the download failed."""
    part = shared(harness)
    if where == "aside":
        put(part, NEW[:9000], 9000, V2)
        part = part.aside(1)
    put(part, BODY, len(BODY))
    url = http_server.file("/data.bin", NEW, etag='"v2"')
    path = harness.fetch(
        harness.source(), url, download_id=ID, claim=2, extra={"sha256": sha256(NEW)}
    )
    assert Path(path).read_bytes() == NEW
    assert harness.files() == ["data.bin"]


@pytest.mark.timeout(30)
@needs_root
def test_names_taken_by_another_user_cost_no_ownership_check_each(
    harness: Harness, http_server: HttpServer
) -> None:
    """Another user who sees a part's name can plant files under the names
    a run would set aside to, as many as they like. Each is passed over at
    once; the ownership check (a database round trip in cluster mode) is
    asked before waiting and before publishing, not per name. Before: once
    per name."""
    part = shared(harness)
    for planted in (part, *(part.aside(run) for run in range(2, 42))):
        planted.path.write_bytes(b"X")
        os.chown(planted.path, 4242, 4242)
    checks: list[int] = []
    url = http_server.file("/data.bin", BODY, etag='"v1"')
    path = harness.fetch(
        harness.source(),
        url,
        download_id=ID,
        claim=2,
        check_owner=lambda: checks.append(1) is None,
    )
    assert Path(path).read_bytes() == BODY
    assert len(checks) <= 2
