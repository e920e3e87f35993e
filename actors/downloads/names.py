"""Safe file names for downloaded files, and claiming a free one atomically.

Names come from untrusted places (a caller's ``original_filename``, a
server's ``Content-Disposition``, a URL path), so :func:`safe_filename`
turns any text into a single, portable path component:

* only the last component survives (``../../etc/passwd`` gives ``passwd``);
  no ``/`` or ``\\``, never ``.`` or ``..``, never an absolute path;
* control characters become spaces, invisible format characters (bidi
  overrides, zero-width joiners) and lone surrogates are dropped, and the
  characters Windows forbids (``<>:"|?*``) become ``_``;
* no leading dots (no hidden files), no leading or trailing spaces, no
  trailing dots;
* Windows device names (``CON``, ``NUL``, ``COM1``, ``LPT1``, … with any
  extension) get a ``_`` prefix;
* at most 255 bytes of UTF-8 (less when the caller reserves room for a
  suffix), cut at a character boundary, keeping the extension;
* never empty: ``"download"`` (or the caller's fallback) instead.

The result is NFC-normalised, and ``safe_filename`` of a safe name is that
name. :func:`move_into_place` then gives a finished file its final name
without ever overwriting: ``name.ext``, else ``name (1).ext``, … chosen with
a no-replace rename (Linux), else ``os.link`` (or an exclusive create), so
two threads or processes can never pick the same one. Everything here is
pure or works on the file system only, and is safe to call from any thread.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import threading
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from regisseur.actors.downloads._noreplace import rename_noreplace
from regisseur.messages.redaction import redact_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = [
    "FALLBACK_NAME",
    "MAX_NAME_BYTES",
    "NameNumbers",
    "choose_filename",
    "display_name_from_url",
    "is_inside",
    "is_text",
    "move_into_place",
    "name_from_content_disposition",
    "name_from_url",
    "numbered",
    "safe_filename",
    "split_extension",
]

#: The longest file name most file systems accept, in bytes.
MAX_NAME_BYTES = 255
#: The name used when nothing usable is left.
FALLBACK_NAME = "download"

_MAX_EXTENSION = 16  # characters, dot included: longer "extensions" are part of the stem
_MAX_NUMBER = 10_000  # numbered candidates tried before giving up
_FORBIDDEN = frozenset('<>:"|?*')
_SPACE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_DROPPED_CATEGORIES = frozenset({"Cf", "Cs"})
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789¹²³"}
)
_LINK_UNSUPPORTED = frozenset(
    code
    for code in (
        errno.EPERM,
        errno.EACCES,
        errno.EXDEV,
        errno.EMLINK,
        errno.ENOSYS,
        getattr(errno, "ENOTSUP", None),
        getattr(errno, "EOPNOTSUPP", None),
    )
    if code is not None
)


def _clean_char(char: str) -> str:
    category = unicodedata.category(char)
    if category in _SPACE_CATEGORIES:
        return " "
    if category in _DROPPED_CATEGORIES:
        return ""
    if char in _FORBIDDEN:
        return "_"
    return char


# What _clean_char makes of each ASCII character that it changes (the
# control characters, those Windows forbids), for str.translate: a name
# that is all ASCII (most are) is cleaned in one call, not a call a character.
_ASCII_CLEAN = str.maketrans(
    {
        chr(code): _clean_char(chr(code))
        for code in range(128)
        if _clean_char(chr(code)) != chr(code)
    }
)


def _clean(text: str) -> str:
    if text.isascii():
        return text.translate(_ASCII_CLEAN)
    return "".join(_clean_char(char) for char in text)


def _strip(name: str) -> str:
    """Drop leading/trailing whitespace, leading dots and trailing dots."""
    while True:
        stripped = name.strip().lstrip(".").rstrip(".")
        if stripped == name:
            return name
        name = stripped


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that fits ``limit`` bytes of UTF-8."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: max(limit, 0)].decode("utf-8", "ignore")


def split_extension(name: str) -> tuple[str, str]:
    """Split ``name`` into stem and extension (``.tar.gz`` counts as one).

    A name with no dot after its first character, or whose last "extension"
    is long or contains spaces, has no extension.
    """
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    extension = name[dot:]
    if (
        len(extension) > _MAX_EXTENSION
        or len(extension) == 1
        or any(c.isspace() for c in extension)
    ):
        return name, ""
    stem = name[:dot]
    if stem.lower().endswith(".tar") and len(stem) > 4:
        return stem[:-4], name[dot - 4 :]
    return stem, extension


def _fit(name: str, limit: int) -> str:
    """Cut ``name`` to ``limit`` bytes, keeping its extension when it can."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, extension = split_extension(name)
    room = limit - len(extension.encode("utf-8"))
    if extension and room >= limit // 2:
        stem = _cut(stem, room).rstrip()
        if stem:
            return stem + extension
    return _strip(_cut(name, limit))


def _is_reserved(name: str) -> bool:
    return name.split(".", 1)[0].rstrip().upper() in _RESERVED


def _sanitize(name: str, limit: int) -> str:
    ascii_only = name.isascii()  # then already NFC, and still so once cleaned
    text = (name if ascii_only else unicodedata.normalize("NFC", name)).replace("\\", "/")
    parts = [part for part in text.split("/") if part.strip() not in ("", ".", "..")]
    text = parts[-1] if parts else ""
    text = _clean(text)
    text = _strip(text if ascii_only else unicodedata.normalize("NFC", text))
    text = _fit(text, limit)
    if _is_reserved(text):
        text = _fit("_" + text, limit)
    return text


def _check_limit(max_bytes: object) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 16:
        msg = f"max_bytes must be an int >= 16, got {max_bytes!r}"
        raise ValueError(msg)
    return max_bytes


def safe_filename(
    name: object, *, fallback: str = FALLBACK_NAME, max_bytes: int = MAX_NAME_BYTES
) -> str:
    """Return ``name`` as a safe, non-empty, single path component.

    ``max_bytes`` bounds the UTF-8 length (pass less than 255 to leave room
    for a suffix such as ``.part``). A ``name`` that is not a string, or
    leaves nothing usable, gives ``fallback`` (itself made safe, or
    ``"download"`` if even that is empty). See the module docstring for the
    rules.
    """
    return choose_filename(name, fallback, max_bytes=max_bytes)


def choose_filename(*candidates: object, max_bytes: int = MAX_NAME_BYTES) -> str:
    """The first candidate that leaves a usable name, made safe; else ``"download"``.

    ``None``, empty and unusable candidates (``".."``, ``"/"``) are skipped,
    so ``choose_filename(caller_name, server_name, url_name, display_name)``
    falls through to the next source of a name.
    """
    limit = _check_limit(max_bytes)
    for candidate in candidates:
        if isinstance(candidate, str):
            name = _sanitize(candidate, limit)
            if name:
                return name
    return FALLBACK_NAME


def is_text(path: str) -> bool:
    """True if ``path`` is UTF-8 text, as download records keep file paths.

    A name in another encoding (``café`` in Latin-1) reaches Python with its
    undecodable bytes as surrogates: no database column of text holds it.
    """
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def numbered(name: str, number: int, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``"name (number).ext"`` for a safe ``name``, still within ``max_bytes``."""
    stem, extension = split_extension(name)
    label = f" ({number})"
    room = max_bytes - len(label.encode("utf-8")) - len(extension.encode("utf-8"))
    stem = _cut(stem, room).rstrip() or "_"
    return stem + label + extension


def _decode_extended(value: str) -> str | None:
    """Decode an RFC 8187 ``charset'language'percent-encoded`` value."""
    charset, _, rest = value.partition("'")
    _, _, encoded = rest.partition("'")
    charset = charset.strip().lower()
    if charset not in ("utf-8", "iso-8859-1", "latin-1", "us-ascii") or not rest:
        return None
    encoded = encoded.strip().strip('"')
    try:
        return unquote(encoded, encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError):
        return None


def _undo_latin1(text: str) -> str:
    """Header values arrive decoded as Latin-1; recover UTF-8 names sent raw."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


_PARAMETER = re.compile(
    r";\s*(?P<key>[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?P<value>\"(?:[^\"\\]|\\.)*\"?|[^;]*)"
)
_ESCAPE = re.compile(r"\\(.)")


def name_from_content_disposition(value: str | None) -> str | None:
    """The file name a ``Content-Disposition`` header suggests, unsanitised.

    ``filename*=UTF-8''…`` (RFC 6266/8187) wins over ``filename="…"``.
    Returns ``None`` when the header is absent or names no file; never
    raises on malformed input.
    """
    if not value:
        return None
    parameters: dict[str, str] = {}
    for match in _PARAMETER.finditer(";" + value):  # also a bare 'filename=...'
        raw = match.group("value").strip()
        if raw.startswith('"'):
            raw = _ESCAPE.sub(r"\1", raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:])
        parameters.setdefault(match.group("key").lower(), raw)
    extended = parameters.get("filename*")
    if extended:
        decoded = _decode_extended(extended)
        if decoded:
            return decoded
    plain = parameters.get("filename")
    return _undo_latin1(plain) if plain else None


def name_from_url(url: str) -> str | None:
    """The last segment of ``url``'s path, percent-decoded and redacted, or ``None``.

    Redacted because it becomes a file's name (shown on the CLI's lines and
    stdout, listed by anyone who can read the directory): a credential in
    it (``file.bin;token=...``, ``access_token=...``, ``%74oken%3D...``)
    is replaced by ``[REDACTED]``. The query never takes part.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    segment = path.rsplit("/", 1)[-1]
    return redact_text(unquote(segment, errors="replace")) or None


def display_name_from_url(url: str) -> str:
    """A short name to show for ``url``: its last path segment that is not blank.

    Never the query string or the fragment (where signed URLs keep their
    signatures), percent-decoded, redacted; the host when the path has no
    such segment, the redacted URL when it cannot be parsed. Never blank
    (``submit()`` refuses a blank name: ``http://host/%20`` ended a whole
    ``regisseur download`` run with ``display_name must not be empty``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return redact_text(url)
    for segment in reversed(parts.path.split("/")):
        name = unquote(segment, errors="replace")
        if name.strip():
            return redact_text(name)
    return redact_text(host or url)


def is_inside(directory: Path, path: Path) -> bool:
    """True if ``path`` (resolved, symlinks followed) lies inside ``directory``."""
    root = directory.resolve()
    resolved = path.resolve()
    return resolved != root and resolved.is_relative_to(root)


def move_into_place(
    source: Path,
    directory: Path,
    name: str,
    *,
    root: Path | None = None,
    same: Callable[[Path], bool] | None = None,
    numbers: NameNumbers | None = None,
) -> Path:
    """Move the file ``source`` into ``directory`` as ``name``, never overwriting.

    Tries ``name``, then ``numbered(name, 1)``, ``numbered(name, 2)``, … and
    returns the path it took (with ``numbers``, after ``name`` the search
    starts past the number last claimed for it there: see ``NameNumbers``). Each
    candidate is claimed atomically: a rename that never replaces
    (``renameat2(RENAME_NOREPLACE)``, one system call), else a hard link
    then an unlink of ``source`` (the file appears complete under its final
    name), or where the file system has no hard links an exclusive create
    followed by ``os.replace``.
    ``source`` must be in ``directory`` (same file system). Raises
    ``ValueError`` if a candidate would leave ``directory`` and
    ``FileExistsError`` if no free name is found. ``root``: ``directory``
    already resolved by the caller (it is resolved here otherwise).
    ``same``: a test of a taken candidate; where it holds (the candidate
    already is this file, as an earlier run published it), ``source`` is
    removed and that candidate returned (then every candidate is tried in
    turn, ``numbers`` or not).
    """
    if root is None:
        root = directory.resolve()
    ways = _Ways()
    if same is not None:
        numbers = None
    for number in _candidates(root, name, numbers):
        if number > _MAX_NUMBER:
            msg = f"no free file name like {name!r} in {root}"
            raise FileExistsError(errno.EEXIST, msg)
        candidate = name if number == 0 else numbered(name, number)
        target = root / candidate
        # ``root`` is resolved and ``target`` must not exist, so resolving it
        # would give ``root / candidate``: one component, directly inside.
        if target.parent != root or candidate in (".", ".."):
            msg = f"file name {candidate!r} would leave {root}"
            raise ValueError(msg)
        if ways.place(source, target):
            if number and numbers is not None:
                numbers.claimed(root, name, number)
            return target
        if same is not None and same(target):
            os.unlink(source)
            return target
    raise AssertionError("unreachable")  # pragma: no cover


def _candidates(root: Path, name: str, numbers: NameNumbers | None) -> Iterator[int]:
    """The numbers to try for ``name`` in ``root``: 0 (the name itself, taken
    again once it is free), then from where ``numbers`` says the search
    starts, else from 1; from 1 again once that runs out (a number skipped
    is free, or was taken since)."""
    yield 0
    start = 1 if numbers is None else numbers.start(root, name)
    if 1 < start <= _MAX_NUMBER:
        yield from range(start, _MAX_NUMBER + 1)
    yield from itertools.count(1)


class NameNumbers:
    """Where the search for a free numbered name starts, per directory and name.

    Before, the n-th file of one name tried all the n taken names before
    it: 3,000 files named ``download`` (``/download?id=N``) cost 4.5
    million renames, 58 s. This keeps the number after the last one
    claimed for each (resolved directory, name), the last ``keep`` names
    (the oldest is forgotten first). A hint only: every claim is still
    atomic, so two sources, threads or processes never take one name.
    Owned by a source (``HttpSource.name_numbers``) and shared by its
    workers: any thread.
    """

    def __init__(self, keep: int = 1024) -> None:
        self._next: dict[tuple[Path, str], int] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, root: Path, name: str) -> int:
        """The number the search for ``name`` in ``root`` starts at (1: none kept)."""
        with self._lock:
            return self._next.get((root, name), 1)

    def claimed(self, root: Path, name: str, number: int) -> None:
        """``numbered(name, number)`` was just claimed in ``root``."""
        key = (root, name)
        with self._lock:
            if number + 1 > self._next.get(key, 0):
                self._next.pop(key, None)  # re-inserted last: the newest
                self._next[key] = number + 1
                while len(self._next) > self._keep:
                    del self._next[next(iter(self._next))]


class _Ways:
    """How :func:`move_into_place` claims a name on this file system; it
    falls back to the next way once one proves unsupported."""

    def __init__(self) -> None:
        self.rename = True
        self.links = True

    def place(self, source: Path, target: Path) -> bool:
        """Move ``source`` to ``target`` unless something is there (False).

        No lexists() first: each way refuses any existing entry itself (a
        dangling symlink included), atomically.
        """
        if self.rename:
            try:
                if rename_noreplace(source, target):
                    return True
            except FileExistsError:
                return False
            self.rename = False  # unsupported here: the ways below
        if self.links:
            try:
                os.link(source, target, follow_symlinks=False)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _LINK_UNSUPPORTED:
                    raise
                self.links = False
            else:
                os.unlink(source)
                return True
        try:
            _claim_exclusive(target)
        except FileExistsError:
            return False
        os.replace(source, target)
        return True


def _claim_exclusive(target: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(target, flags, 0o644))
