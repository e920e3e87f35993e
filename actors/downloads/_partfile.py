"""The ``.part`` file of one download and the validators kept beside it.

A download writes ``<safe name>.<download id>.part`` in the download
directory: the id keeps two downloads of the same name apart and lets a
re-run of the same download (after a stop) find its bytes. The whole id is
used, not a prefix: the facade's ids share their first 20 characters within
one system (a per-system prefix, then a counter). An id that is long or not
plain ``[0-9A-Za-z_-]`` is replaced by a hash of it. The name part is known
before any request (the caller's file name, else the URL's, else the display
name), so it never depends on the server's answer.

Next to it, ``<part>.meta`` holds the server's validators as a small JSON
object ``{"etag", "last_modified", "size"}``, written before the first
byte of a fresh body. A separate file rather than the part's name because
ETags are long and may hold any character, and rather than extended
attributes because not every file system has them. A ``.part`` without a
readable meta file is never resumed (its origin is unknown).

Used by one worker thread at a time (the download's).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from regisseur.actors.downloads.names import MAX_NAME_BYTES, choose_filename

if TYPE_CHECKING:
    import io
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["PART_SUFFIX", "PartFile", "Validators", "part_tag"]

PART_SUFFIX = ".part"
META_SUFFIX = ".meta"
_MAX_ID_CHARS = 40
_PLAIN_ID = re.compile(rf"[0-9A-Za-z_-]{{1,{_MAX_ID_CHARS}}}")
_HASH_BLOCK = 1024 * 1024


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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class PartFile:
    """``path`` (the ``.part``) and ``meta_path`` (its ``.meta``) of a download."""

    def __init__(self, directory: Path, names: Sequence[str | None], download_id: str) -> None:
        """``names``: where the name may come from, best first (see ``choose_filename``)."""
        suffix = f".{part_tag(download_id)}{PART_SUFFIX}"
        room = MAX_NAME_BYTES - len(suffix) - len(META_SUFFIX)
        base = choose_filename(*names, max_bytes=room)
        self.path = directory / f"{base}{suffix}"
        self.meta_path = directory / f"{base}{suffix}{META_SUFFIX}"

    def size(self) -> int:
        """Bytes in the part file (0 if there is none)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def load(self) -> Validators | None:
        """The stored validators, or ``None`` if missing or unreadable."""
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        size = meta.get("size")
        if isinstance(size, bool) or not isinstance(size, (int, type(None))) or (size or 0) < 0:
            return None
        return Validators(_text(meta.get("etag")), _text(meta.get("last_modified")), size)

    def save(self, validators: Validators) -> None:
        """Store ``validators`` (before the first byte of a fresh body)."""
        self.meta_path.write_text(json.dumps(validators._asdict()), encoding="utf-8")

    def discard(self) -> None:
        """Remove the part file and its meta file (either may be missing)."""
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    def resume_point(self) -> tuple[int, Validators | None]:
        """``(offset, validators)`` to resume from; ``(0, None)`` after discarding.

        A part is resumable when it is non-empty, has readable validators and
        is shorter than the size they record.
        """
        size = self.size()
        validators = self.load() if size else None
        if validators is None or (validators.size is not None and size >= validators.size):
            self.discard()
            return 0, None
        return size, validators

    def open(self, *, append: bool) -> io.BufferedWriter:
        """Open the part for writing (at its end, or emptied), never via a symlink.

        Appending seeks to the end rather than using ``O_APPEND``: one
        writer owns the part, and ``splice(2)`` refuses append-mode files.
        """
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        if not append:
            flags |= os.O_TRUNC
        fd = os.open(self.path, flags, 0o644)
        try:
            if append:
                os.lseek(fd, 0, os.SEEK_END)
            return open(fd, "wb")
        except BaseException:
            os.close(fd)
            raise

    def sha256(self, length: int) -> hashlib._Hash:
        """A SHA-256 hasher fed with the first ``length`` bytes of the part."""
        hasher = hashlib.sha256()
        if not length:
            return hasher
        with self.path.open("rb") as existing:
            remaining = length
            while remaining:
                block = existing.read(min(remaining, _HASH_BLOCK))
                if not block:
                    break
                hasher.update(block)
                remaining -= len(block)
        return hasher
