"""The ``.part`` file of one download and the validators kept beside it.

A download writes ``<safe name>.<download id>.part`` in the download
directory: the id keeps two downloads of the same name apart and lets a
re-run of the same download (after a stop) find its bytes. The whole id is
used, not a prefix: the facade's ids share their first 20 characters within
one system (a per-system prefix, then a counter). An id that is long or not
plain ``[0-9A-Za-z_-]`` is replaced by a hash of it. The name part is known
before any request (the caller's file name, else the URL's, else the display
name), so it never depends on the server's answer.

Next to it, ``<part>.meta`` holds the server's validators and how far the
part is known good, as a small JSON object ``{"etag", "last_modified",
"size", "offset", "complete", "boot"}``: written after the first chunk of
a body, again at checkpoints while the body streams (after the bytes up
to ``offset`` were flushed), and when the body is complete. ``boot`` is
the id of the kernel's boot that wrote it (``_boot``; absent where there
is none, and in files of earlier versions). A
small body (see ``_http_fetch``) has no meta file while it streams: one is
written only if its run ends without the whole body (a stop, a retry, a
kept partial), so a crash mid-way restarts it from byte 0. A
separate file rather than the part's name because ETags are long and may
hold any character, and rather than extended attributes because not every
file system has them. The meta file is written like the part: never
through a symlink (a temporary name opened with ``O_EXCL|O_NOFOLLOW``, then
an atomic ``os.replace``).

Parts set aside: a run taken over from a frozen process, which keeps its
lock on the shared part, writes ``<safe name>.<tag>~<claim>.part`` instead
(:meth:`PartFile.aside`; ``~`` is never in a tag, so no download's shared
part has such a name). They are this download's parts as much as the
shared one: :func:`parts_of` lists them, a later run resumes from the best
one it can lock (:meth:`PartFile.set_aside`), and the run that publishes
removes those it can lock; one another live process holds is never
touched. A run takes as such only a name its own :meth:`PartFile.aside`
gives (the download's base name, tag and a number): any name may end like
one (a file of the user's, another download published under a name its
server chose), and such a file is no part of the download.

Ownership: the run that uses a part holds an exclusive ``flock`` on it for
the whole run (:meth:`PartFile.lock`); the kernel drops it when the process
dies, so a part whose lock is free has no live writer. A resume continues
at the offset recorded in the meta file, checked against the part's actual
size (``fstat`` of the locked, no-follow descriptor, never the target of a
symlink): a part shorter than its record is not resumed. A part without a
readable meta file of this user (or one without an offset) is never
resumed: its origin is unknown.

Past the recorded offset: a run writes its body in order, from the offset
it resumed at (the part cut there first), through one descriptor, with
``write`` or ``splice``; a short write (a full disk) is never followed by
a later byte. So whatever size a process leaves, killed at any point, the
part holds the body's bytes up to it, in the kernel's page cache if not
yet on disk. Only a reboot can lose them (the checkpoints are not fsynced
either; after a power loss the last one is the best guess there is). A
meta file written in the boot running now (``boot``) therefore resumes at
the part's size: a run killed (SIGKILL, a crash, a second Ctrl-C), taken
over, or stopped by a full disk fetches again none of what it wrote. Not
past the size the validators record (a longer part is resumed at its
offset, as before), and where that size is unknown one byte short of the
part's end: a range that starts at the end of the body would be refused
(416) and start the download over. Another boot's meta file (a reboot, or
a part on a network file system another machine wrote), one without a
boot, a system without a boot id, or a part on a network or FUSE file
system (whose server may drop bytes a dead writer left to write back,
see ``_localfs``): at the recorded offset, bytes past it cut off.

Used by one worker thread at a time (the download's).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
from typing import TYPE_CHECKING, Any, NamedTuple

from regisseur.actors.downloads._boot import boot_id
from regisseur.actors.downloads._localfs import FileSystems, keeps_dead_writers_bytes
from regisseur.actors.downloads.names import MAX_NAME_BYTES, choose_filename

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

__all__ = [
    "PART_SUFFIX",
    "CompareStopped",
    "PartFile",
    "PartInUseError",
    "PartNotOwnedError",
    "PartSyncError",
    "ResumePoint",
    "Validators",
    "downloads_with_parts",
    "part_tag",
    "parts_of",
]

PART_SUFFIX = ".part"
META_SUFFIX = ".meta"
_TEMPORARY_SUFFIX = ".tmp"
_MAX_ID_CHARS = 40
_PLAIN_ID = re.compile(rf"[0-9A-Za-z_-]{{1,{_MAX_ID_CHARS}}}")
_ASIDE = "~"  # between the tag and the run in a part set aside (never in a tag)
_RUN = re.compile(r"[0-9]{1,20}")
_HASH_BLOCK = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


class Validators(NamedTuple):
    """What the server said identifies the file's version, and its size."""

    etag: str | None
    last_modified: str | None
    size: int | None

    def if_range(self) -> str | None:
        """The ``If-Range`` value: a strong ETag, else Last-Modified, else None."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified or None

    def changed(self, other: Validators) -> list[str]:
        """The fields known on both sides that differ (``"ETag"``, ``"size"``, …)."""
        pairs = (
            ("ETag", self.etag, other.etag),
            ("Last-Modified", self.last_modified, other.last_modified),
            ("size", self.size, other.size),
        )
        return [label for label, a, b in pairs if a is not None and b is not None and a != b]


def part_tag(download_id: str) -> str:
    """The download's tag in its part name: the id, or a hash of an unusual one."""
    if _PLAIN_ID.fullmatch(download_id):
        return download_id
    return "h" + hashlib.sha256(download_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _tag_of(name: str) -> tuple[str, int | None] | None:
    """The tag of a part's file name and the run of a part set aside (None for
    a shared part); None if ``name`` is not a part's (``<base>.<tag>.part``,
    ``<base>.<tag>~<run>.part``)."""
    if not name.endswith(PART_SUFFIX):
        return None
    base, dot, last = name[: -len(PART_SUFFIX)].rpartition(".")
    if not (base and dot and last):
        return None
    tag, mark, run = last.partition(_ASIDE)
    if not mark:
        return tag, None
    return (tag, int(run)) if tag and _RUN.fullmatch(run) else None


def parts_of(directory: Path, download_ids: Iterable[str]) -> list[Path]:
    """The part files in ``directory`` that belong to ``download_ids``: the
    shared ones and those set aside (plain files of this user, sorted; none
    if the directory cannot be read). Parts of other downloads, another
    live run's among them, are not listed."""
    tags = {part_tag(i) for i in download_ids}
    return sorted(path for path, _ in _scan(directory, tags, aside_only=False)) if tags else []


def downloads_with_parts(directory: Path, download_ids: Iterable[str]) -> set[str]:
    """Of ``download_ids``, those with a part in ``directory`` (as :func:`parts_of`
    finds them), in one look at the directory however many ids are asked about."""
    by_tag = {part_tag(i): i for i in download_ids}
    if not by_tag:
        return set()
    return {by_tag[tag] for tag in _tags_found(directory, set(by_tag))}


def _tags_found(directory: Path, tags: set[str]) -> set[str]:
    found: set[str] = set()
    for path, _ in _scan(directory, tags, aside_only=False):
        parsed = _tag_of(path.name)
        if parsed is not None:
            found.add(parsed[0])
    return found


def _scan(directory: Path, tags: set[str], *, aside_only: bool) -> list[tuple[Path, int | None]]:
    """The plain files of this user in ``directory`` named as parts of ``tags``
    (``aside_only``: parts set aside alone), each with its run (None: a
    shared part); [] if the directory cannot be read. Another user's file
    is no part (see ``PartNotOwnedError``): neither counted nor opened."""
    found: list[tuple[Path, int | None]] = []
    me = os.geteuid()
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                parsed = _tag_of(entry.name)
                if parsed is None or parsed[0] not in tags or (aside_only and parsed[1] is None):
                    continue
                if _plain_file_of(entry, me):
                    found.append((directory / entry.name, parsed[1]))
    except OSError:
        return []
    return found


def _plain_file_of(entry: os.DirEntry[str], uid: int) -> bool:
    """True if ``entry`` is a plain file (not a link) of ``uid``; False if it is gone."""
    try:
        return (
            entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == uid
        )
    except OSError:
        return False


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class CompareStopped(Exception):
    """:meth:`PartFile.same_as` was told to stop before it knew the answer."""


class PartInUseError(OSError):
    """Another live run holds the part's lock (the caller waits or gives up)."""


class PartNotOwnedError(OSError):
    """The file under the part's name belongs to another user.

    Its owner can change its bytes at any time, after every check (and a
    file published from it stays theirs): it is never resumed, written,
    cut, removed or published; waiting for it is pointless.
    """


class PartSyncError(OSError):
    """An ``fsync`` of the part failed (same ``errno`` and text as the cause).

    Told apart from a failed write: after a failed writeback the kernel may
    drop the pages it could not write, so the bytes the part holds are not
    known good, whatever the error (see ``_http_fetch``: such a part is
    never kept for a re-run).
    """


class ResumePoint(NamedTuple):
    """Where a run continues: ``offset`` bytes are good; ``validators`` None: fresh."""

    offset: int
    validators: Validators | None
    complete: bool  # the whole body is in the part: publish it, fetch nothing


class PartWriter:
    """The locked part's descriptor, written at its position (what the copy
    loops use of a file).

    Unbuffered: the copy loops hand over their own full buffers, and a
    buffered file object would cost two system calls more to make for
    each download (its ``fstat`` and ``lseek``), each letting the GIL go.
    :meth:`write` writes everything it is given or raises the ``OSError``
    (a full disk after a partial write leaves those bytes in the part, at
    its position). Closing it leaves the descriptor, and its lock, open:
    the part's own :meth:`PartFile.unlock` closes that. Used by the one
    thread that holds the lock.
    """

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes | memoryview) -> int:
        """Write all of ``data`` at the descriptor's position; its length."""
        fd = self._fd
        done = os.write(fd, data)
        total = len(data)
        if done < total:
            view = memoryview(data)
            while done < total:
                count = os.write(fd, view[done:])
                if not count:  # never for a file; no endless loop if it were
                    raise OSError(errno.EIO, "the part accepted no bytes")
                done += count
        return total

    def flush(self) -> None:
        """Nothing to do: every write went to the descriptor."""

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Nothing to do: the descriptor is the lock's (see the class)."""

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PartFile:
    """``path`` (the ``.part``) and ``meta_path`` (its ``.meta``) of a download."""

    def __init__(
        self,
        directory: Path,
        names: Sequence[str | None],
        download_id: str,
        run: int | None = None,
        file_systems: FileSystems | None = None,
    ) -> None:
        """``names``: where the name may come from, best first (see ``choose_filename``).

        ``run``: a part of this run of the download alone (``<name>.<id>~<run>.part``),
        beside the shared one; see :meth:`aside`. ``file_systems``: the
        owner's answers of whether a file system keeps a dead writer's bytes
        (else looked up at each question).
        """
        self._directory, self._names, self._download_id = directory, tuple(names), download_id
        self._file_systems = file_systems
        tag = part_tag(download_id) if run is None else f"{part_tag(download_id)}{_ASIDE}{run}"
        suffix = f".{tag}{PART_SUFFIX}"
        room = MAX_NAME_BYTES - len(suffix) - len(META_SUFFIX) - len(_TEMPORARY_SUFFIX)
        base = choose_filename(*names, max_bytes=room)
        self._name(directory / f"{base}{suffix}")
        self._fd: int | None = None  # the locked part, while this run holds it
        # What this run knows without asking the file system again (each
        # system call lets the GIL go, which costs most with many workers).
        # Only the run holding the lock writes these files, so what it saw
        # stays true until it unlocks; False means "not known".
        self._empty = False  # the locked part has no bytes and nothing was handed out
        self._meta_absent = False  # the meta file's open just said ENOENT
        self._fresh = False  # the part had no bytes when this run locked it

    def _name(self, path: Path) -> None:
        self.path = path
        self.meta_path = path.with_name(f"{path.name}{META_SUFFIX}")
        self.temporary_path = path.with_name(f"{path.name}{META_SUFFIX}{_TEMPORARY_SUFFIX}")

    @classmethod
    def found(cls, path: Path, download_id: str) -> PartFile:
        """The part at ``path`` of ``download_id`` (a fresh object, not locked)."""
        part = cls(path.parent, (), download_id)
        part._name(path)
        return part

    def aside(self, run: int) -> PartFile:
        """A part of run ``run`` alone, for when a stale run holds the shared one.

        A run that was taken over from a frozen process cannot get the shared
        part's lock until that process wakes (a stopped process keeps its
        locks); it writes its own part from byte 0 instead. The stale run,
        once awake, is fenced: it publishes nothing and removes its part.
        A later run of the download finds this one with :meth:`set_aside`.
        """
        return PartFile(self._directory, self._names, self._download_id, run, self._file_systems)

    def set_aside(self) -> list[PartFile]:
        """The parts of this download set aside in its directory (not locked,
        sorted by path; none if the directory cannot be read). One scan.

        Only the name :meth:`aside` gives for its number counts: another
        that ends the same way (``notes.<id>~2.part``, a file of the user's
        or another download's published under a name its server chose) is
        no part of this download, and is never opened. Called on the part
        made from the download's names (not one :meth:`found`).
        """
        tag = part_tag(self._download_id)
        bases: dict[int, str] = {}  # the base name by the suffix's length (see __init__)
        found: list[PartFile] = []
        for path, run in _scan(self._directory, {tag}, aside_only=True):
            if run is None:
                continue
            suffix = f".{tag}{_ASIDE}{run}{PART_SUFFIX}"
            base = bases.get(len(suffix))
            if base is None:
                base = bases[len(suffix)] = self.aside(run).path.name[: -len(suffix)]
            if path.name == base + suffix:
                found.append(self.aside(run))
        return sorted(found, key=lambda part: part.path)

    # -- ownership -------------------------------------------------------------
    @property
    def locked(self) -> bool:
        """True while this object holds the part's lock."""
        return self._fd is not None

    def lock(self, *, create: bool = True) -> None:
        """Open (create) the part without following a symlink and lock it for this run.

        A symlink planted under the part's name is removed, never followed;
        so is a hard link (a file with another name) or anything but a
        plain file found there once locked: a fresh part takes its place
        (with ``create`` False: ``FileNotFoundError``, as for a part that
        is not there). Raises ``PartInUseError`` when another live run
        holds the lock, ``PartNotOwnedError`` when the file there belongs
        to another user (left as it is), and ``OSError`` when the part
        cannot be opened.
        """
        if self._fd is not None:
            return
        flags = os.O_RDWR | _NOFOLLOW | (os.O_CREAT if create else 0)
        for _ in range(3):
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP and self.path.is_symlink():
                    self.path.unlink()  # the link itself, never its target
                    continue
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    msg = f"{self.path} is being written by another run"
                    raise PartInUseError(errno.EBUSY, msg) from None
                raise
            # The holder before us may have removed or renamed it meanwhile:
            # keep the lock only if the name still leads to this very file.
            try:
                now = os.lstat(self.path)
            except FileNotFoundError:
                now = None
            held = os.fstat(fd)
            same = now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
            if same and (not stat.S_ISREG(held.st_mode) or held.st_nlink != 1):
                # Planted: a hard link (another name of a file elsewhere,
                # which a resume would cut and overwrite) or a FIFO (the
                # body would go to whoever reads it). The name goes; the
                # file it led to is left as it was.
                os.close(fd)
                self.path.unlink()
                continue
            if same and held.st_uid != os.geteuid():
                os.close(fd)
                msg = f"it belongs to another user (uid {held.st_uid})"
                raise PartNotOwnedError(errno.EPERM, msg, str(self.path))
            if same:
                self._fd = fd
                self._empty = self._fresh = held.st_size == 0
                return
            os.close(fd)
        msg = f"{self.path} keeps changing under this run"
        raise PartInUseError(errno.EBUSY, msg)

    def unlock(self) -> None:
        """Give the part's lock up (idempotent); the file stays as it is."""
        fd, self._fd = self._fd, None
        self._empty = self._meta_absent = self._fresh = False
        if fd is not None:
            os.close(fd)

    # -- state -----------------------------------------------------------------
    def size(self) -> int:
        """Bytes in the part (0 if there is none or it is not a plain file)."""
        try:
            info = os.fstat(self._fd) if self._fd is not None else os.lstat(self.path)
        except FileNotFoundError:
            return 0
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    def _meta(self) -> dict[str, Any] | None:
        try:
            # Non-blocking: a FIFO planted here would wait for a writer forever.
            fd = os.open(self.meta_path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
        except FileNotFoundError:
            self._meta_absent = self._fd is not None  # known only while locked
            return None
        except OSError:  # a planted symlink (ELOOP), a directory, ...: removed by discard
            return None
        try:
            info = os.fstat(fd)
            # A FIFO, a device: removed by discard. Another user's file (put
            # in place of this run's, or beside a part that has none) says
            # whatever its owner wants about bytes that are not theirs: how
            # many are good, that the body is complete.
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                os.close(fd)
                return None
            with open(fd, "rb") as file:
                meta = json.loads(file.read(65536).decode("utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def load(self) -> Validators | None:
        """The stored validators, or ``None`` if missing or unreadable."""
        meta = self._meta()
        return None if meta is None else _validators(meta)

    def save(self, validators: Validators, offset: int = 0, *, complete: bool = False) -> None:
        """Record ``validators`` and that the first ``offset`` bytes are good.

        Written to ``<meta>.tmp`` (created anew with ``O_EXCL|O_NOFOLLOW``:
        one left by a killed run, or planted, is removed first, never
        written through) and moved over the meta file with ``os.replace``,
        which replaces a symlink there rather than writing through it. Only
        the run holding the part's lock writes it, so one name suffices.
        The boot it is written in goes with it (see the module docstring).
        """
        data: dict[str, Any] = dict(validators._asdict(), offset=offset, complete=complete)
        boot = boot_id()
        if boot is not None:
            data["boot"] = boot
        temporary = self.temporary_path
        self._meta_absent = False
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        try:
            fd = os.open(temporary, flags, 0o644)
        except FileExistsError:
            temporary.unlink()
            fd = os.open(temporary, flags, 0o644)
        try:
            with open(fd, "wb") as file:
                file.write(json.dumps(data).encode("utf-8"))
            os.replace(temporary, self.meta_path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if isinstance(exc, OSError) and exc.filename is None:
                # A write's error names no file: this one is the meta file's
                # (not the part's, whose writes it is saved among).
                raise OSError(exc.errno, exc.strerror, str(self.meta_path)) from exc
            raise

    def checkpoint(
        self,
        file: PartWriter,
        validators: Validators,
        *,
        sync: bool,
        complete: bool = False,
        record: bool = True,
    ) -> None:
        """Flush ``file`` (fsync with ``sync``), then record its position
        (unless ``record`` is False: a small body keeps no meta file).

        Position 0 is not recorded: a resume never starts from a meta file
        that says no byte is good (see ``_usable_point``), and a run killed
        while saving it would leave its temporary beside an empty part, which
        no later run removes (see :meth:`remove_meta`).
        """
        file.flush()
        if sync:
            self.sync(file.fileno())
        if record:
            position = os.lseek(file.fileno(), 0, os.SEEK_CUR)
            if position:
                self.save(validators, position, complete=complete)

    def sync(self, fd: int | None = None) -> None:
        """``fsync`` the part (through ``fd``, else the locked descriptor);
        ``PartSyncError`` if that fails."""
        fd = self._fd if fd is None else fd
        if fd is None:
            msg = f"{self.path} is not locked by this run"
            raise RuntimeError(msg)
        try:
            os.fsync(fd)
        except OSError as exc:
            raise PartSyncError(exc.errno, exc.strerror, exc.filename) from exc

    def discard(self) -> None:
        """Empty the part and remove its meta file.

        While this run holds the lock the part is truncated in place (the
        lock stays on it); otherwise both files are removed.
        """
        if self._fd is not None:
            if not self._empty:
                os.ftruncate(self._fd, 0)
            if self._meta_absent:
                # No meta: nothing to remove. A temporary a killed run left is
                # no harm (a save replaces it; the publish removes both).
                return
        else:
            self.path.unlink(missing_ok=True)
        self.remove_meta()

    def remove(self) -> None:
        """Remove the part and its meta files (any may be missing)."""
        self.path.unlink(missing_ok=True)
        self.remove_meta()

    def remove_meta(self) -> None:
        """Remove the meta file and its temporary (after a publish, or with the part).

        Both are asked for even when this run wrote none, except when this
        run knows there are none of its kind: it locked the part empty,
        found no meta file while holding the lock, and saved none. (A
        temporary a killed run left comes with bytes in the part: that run
        saved after its body's first chunk. A file another user puts there
        meanwhile is never read as this part's meta: see ``_meta``.) Two
        failing ``unlink`` calls less for every fresh small download.
        """
        if self._fd is not None and self._fresh and self._meta_absent:
            return
        self.meta_path.unlink(missing_ok=True)
        self.temporary_path.unlink(missing_ok=True)
        self._meta_absent = False

    def resume_point(self) -> ResumePoint:
        """Where to continue; ``(0, None, False)`` after discarding an unusable part.

        Usable: readable validators and an offset (the bytes known good)
        that the part's actual size covers. The offset is the part's size
        when this boot wrote the meta file (see the module docstring).
        Complete: marked so, or as long as the size the validators record.
        """
        point = self._usable_point()
        if point is None:
            self.discard()
            return ResumePoint(0, None, False)
        return point

    def kept_offset(self) -> int | None:
        """The bytes a later run would resume from, or None; changes nothing.

        Only while this run holds the lock and the part's name still leads
        to the locked file (after a publish it leads elsewhere, or nowhere),
        and only for a usable resume point with at least one byte.
        """
        fd = self._fd
        if fd is None:
            return None
        try:
            if not os.path.samestat(os.lstat(self.path), os.fstat(fd)):
                return None
        except OSError:
            return None
        point = self._usable_point()
        return point.offset if point is not None and point.offset else None

    def _usable_point(self) -> ResumePoint | None:
        """The resume point the meta file and the part's size allow, or None."""
        meta = self._meta()
        if meta is None:
            return None
        validators = _validators(meta)
        offset = meta.get("offset")
        if validators is None or not _count(offset) or not offset:
            return None
        size = self.size()
        known = validators.size
        if size < offset or (known is not None and offset > known):
            return None
        if meta.get("complete") is True:
            return ResumePoint(offset, validators, True)
        if size > offset and _this_boot(meta) and self._size_kept():
            # Every byte up to the size is the body's (see the module docstring).
            if known is None:
                offset = size - 1  # a byte left to ask for: a range from the end is refused
            elif size <= known:
                offset = size
        return ResumePoint(offset, validators, offset == known)

    def size_tells_complete(self) -> bool:
        """True if a resume in this boot takes this part, once it has the size
        its meta file (written in this boot) records, for complete: where the
        system has a boot id and the part is on a local file system. A body
        of known size that ended then needs no record of that (the publish
        follows at once; a run killed before it leaves a part the next one
        publishes without a request)."""
        return boot_id() is not None and self._size_kept()

    def _size_kept(self) -> bool:
        """True if the part's file system keeps what a dead writer wrote (``_localfs``)."""
        try:
            info = os.fstat(self._fd) if self._fd is not None else os.lstat(self.path)
        except OSError:
            return False
        if self._file_systems is not None:
            return self._file_systems.keep_dead_writers_bytes(info.st_dev)
        return keeps_dead_writers_bytes(info.st_dev)

    def open(self, offset: int) -> PartWriter:
        """The locked part for writing at ``offset`` (anything after it is cut off)."""
        if self._fd is None:
            self.lock()
        fd = self._fd
        assert fd is not None
        if not (self._empty and offset == 0):  # else: empty, and never written or moved in
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        self._empty = False
        return PartWriter(fd)

    def same_as(self, other: Path, stop: Callable[[], bool] | None = None) -> bool:
        """True if the plain file ``other`` holds exactly the part's bytes.

        Read through the part's locked descriptor and ``other`` opened
        without following a symlink (a FIFO, a directory or a device is
        never the same); False on any error. Called with the lock held.
        Only a file of this user with no other name qualifies (or the part
        itself, under a second name): whoever owns ``other``, or can reach it
        by another name, could change its bytes right after the comparison,
        and the download (its sha256 checked on the part) would record them.
        ``stop``: asked before each block (a large file takes as long to read
        as to write); ``CompareStopped`` when it says so.
        """
        fd = self._fd
        if fd is None:
            return False
        try:
            theirs = os.open(other, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
        except OSError:
            return False
        try:
            mine, info = os.fstat(fd), os.fstat(theirs)
            if not stat.S_ISREG(info.st_mode) or info.st_size != mine.st_size:
                return False
            if os.path.samestat(mine, info):
                return True
            if info.st_uid != os.geteuid() or info.st_nlink != 1:
                return False
            position = 0
            while position < mine.st_size:
                if stop is not None and stop():
                    raise CompareStopped(str(other))
                block = os.pread(fd, _HASH_BLOCK, position)
                if not block or os.pread(theirs, len(block), position) != block:
                    return False
                position += len(block)
            return True
        except OSError:
            return False
        finally:
            os.close(theirs)

    def sha256(self, length: int) -> hashlib._Hash:
        """A SHA-256 hasher fed with the first ``length`` bytes of the part."""
        hasher = hashlib.sha256()
        if not length:
            return hasher
        own = self._fd is None
        fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW) if own else self._fd
        assert fd is not None
        try:
            position = 0
            while position < length:
                block = os.pread(fd, min(length - position, _HASH_BLOCK), position)
                if not block:
                    break
                hasher.update(block)
                position += len(block)
        finally:
            if own:
                os.close(fd)
        return hasher


def _validators(meta: dict[str, Any]) -> Validators | None:
    """The validators a meta file's object records, or None if its size is unusable."""
    size = meta.get("size")
    if not _count(size, none_ok=True):
        return None
    return Validators(_text(meta.get("etag")), _text(meta.get("last_modified")), size)


def _this_boot(meta: dict[str, Any]) -> bool:
    """True if ``meta`` was written in the boot running now (never where there is no boot id)."""
    boot = boot_id()
    return boot is not None and meta.get("boot") == boot


def _count(value: Any, *, none_ok: bool = False) -> bool:
    """True for an int >= 0 (or None with ``none_ok``)."""
    if value is None:
        return none_ok
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0
