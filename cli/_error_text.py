"""A download's error shown beside its URL, without saying the URL again.

A record's error names the URL at its end, so that it stands alone (in
``status --json``, in logs): ``HTTP 404 Not Found: URL``, ``truncated:
received 10 of 20 bytes from URL``, either followed by ``(after N
attempts)`` after retries. Where a line or a table row shows the URL
already (a ``FAILED`` line, ``status``'s table), that ending is dropped. A
different URL at the end (where a redirect led) is kept.
"""

from __future__ import annotations

import re

__all__ = ["beside_url"]


def beside_url(error: str, url: str) -> str:
    """``error`` without its closing mention of ``url`` (both as shown: redacted)."""
    match = re.fullmatch(rf"(.*?)(?::| from) {re.escape(url)}( \(after \d+ attempts\))?", error)
    if match is None:
        return error
    return match.group(1) + (match.group(2) or "")
