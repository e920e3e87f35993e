"""Errors in the words a person acts on.

``beside_url``: a download's error shown beside its URL, without saying the URL again.

A record's error names the URL at its end, so that it stands alone (in
``status --json``, in logs): ``HTTP 404 Not Found: URL``, ``truncated:
received 10 of 20 bytes from URL``, either followed by ``(after N
attempts)`` after retries. Where a line or a table row shows the URL
already (a ``FAILED`` line, ``status``'s table), that ending is dropped. A
different URL at the end (where a redirect led) is kept.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["beside_url", "missing_driver", "raised_from"]

# The drivers regisseur has an extra for: the fix is that extra.
_EXTRAS = {
    "psycopg": ("PostgreSQL", "postgres"),
    "psycopg2": ("PostgreSQL", "postgres"),
}


#: What a source adds after the URL: ``(after 4 attempts)``, ``(after 1
#: attempt; the next would start in 300 s, past the time limit of 5 s)``.
_AFTER = r"( \(after \d+ attempts?[^()]*\))?"


def beside_url(error: str, url: str) -> str:
    """``error`` without its closing mention of ``url`` (both as shown: redacted)."""
    match = re.fullmatch(rf"(.*?)(?::| from) {re.escape(url)}{_AFTER}", error)
    if match is None:
        return error
    return match.group(1) + (match.group(2) or "")


def raised_from(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then each exception it was raised from or while handling
    (``raise ... from``, an error in an ``except`` or ``finally``, the
    ``cause`` a ``StartupError`` keeps), nearest first; 20 at most, never
    one twice."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 20 and current not in seen:
        seen.append(current)
        yield current
        inner = getattr(current, "cause", None)  # StartupError keeps its cause here
        if not isinstance(inner, BaseException):
            inner = current.__cause__ or current.__context__
        current = inner


def missing_driver(exc: BaseException) -> str | None:
    """What to install when ``exc`` (or an exception it was raised from) is a
    database driver that cannot be imported, or None. ``No module named
    'psycopg'`` alone does not say that ``pip install 'regisseur[postgres]'``
    is the fix."""
    for current in raised_from(exc):
        if isinstance(current, ImportError) and current.name:
            module = current.name.split(".")[0]
            if module in _EXTRAS:
                database, extra = _EXTRAS[module]
                return (
                    f"the {database} driver is not installed (no module {module!r}): "
                    f"pip install 'regisseur[{extra}]'"
                )
            return (
                f"its database driver is not installed (no module {module!r}): "
                "install the package that provides it"
            )
    return None
