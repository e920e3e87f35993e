"""The head of an HTTP answer (status line and headers), read as a downloader must.

``http.client`` reads a head with two shortcuts that cost a downloader its
files:

* A connection that closes in the middle of the headers ends them as if
  the blank line had come: without a ``Content-Length`` the answer is
  then a body read to the close, an empty one, and a server that died
  mid-answer left a ``done`` file of 0 bytes (curl and wget do the same;
  aria2c fails). :class:`HeadResponse` fails such an answer instead
  (``RemoteDisconnected``, a connection error that is retried).
* Only ``100 Continue`` is passed over: any other informational answer
  (``103 Early Hints``, sent before the real answer by CDNs and servers
  that push preload links) was taken as the answer, a failure ``HTTP 103
  Early Hints``, and the real answer stayed in the connection for the
  next request on it. :class:`HeadResponse` passes over every ``1xx``
  answer but ``101 Switching Protocols`` (never asked for), at most
  :data:`MOST_INFORMATIONAL` of them, as curl and wget do.

The HttpSource's connections (``_http_session``) build their answers with
it; a proxied request goes through ``requests``' own connections, without
it.

Threads: the thread that sends the request reads the answer (one per
connection at a time). Failures: ``http.client`` exceptions, which
urllib3 and ``requests`` turn into a ``ConnectionError``.
"""

from __future__ import annotations

import http.client
from typing import Any

__all__ = ["MOST_INFORMATIONAL", "HeadResponse"]

#: The most informational (1xx) answers passed over before the real one.
MOST_INFORMATIONAL = 32


class _Lines:
    """A stand-in for an answer's file while its head is read: remembers the last line."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.last: bytes | None = None

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.raw.readline(limit)
        self.last = line
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class HeadResponse(http.client.HTTPResponse):
    """``http.client``'s answer, whose head must end with its blank line, past any ``1xx``."""

    def begin(self) -> None:
        if self.headers is not None:  # read already
            return
        lines = _Lines(self.fp)
        self.fp = lines
        try:
            super().begin()
        finally:
            if self.fp is lines:  # (None once http.client closed it)
                self.fp = lines.raw
        if lines.last == b"":  # the head ended at the close, not at its blank line
            self._close_conn()
            msg = "the connection closed in the middle of the headers"
            raise http.client.RemoteDisconnected(msg)

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MOST_INFORMATIONAL):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # its own headers: not the answer's
            if isinstance(self.fp, _Lines) and self.fp.last == b"":
                break  # closed after it: the next status line raises
        else:
            msg = f"more than {MOST_INFORMATIONAL} informational (1xx) answers"
            raise http.client.HTTPException(msg)
        return super()._read_status()  # type: ignore[misc, no-any-return]
