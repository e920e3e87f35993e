"""Body readers that return after at most one socket read.

``http.client`` fills a whole buffer before it returns (256 KiB by
default), and urllib3 reads a chunked body a whole chunk at a time: a
server that sends one byte every few seconds would leave the copy loop
blind for minutes, with no progress, no low-speed check and no cancel
between bytes. These readers give the copy loop whatever one read of the
socket brought:

* :func:`plain_reader` for a body delimited by ``Content-Length`` or by
  the end of the connection, keeping ``http.client``'s own count of the
  body so that a finished body still frees the connection for reuse;
* :class:`SocketBody` for a body delimited by ``Content-Length`` on a plain
  or TLS socket: after the bytes ``http.client`` buffered, it reads the
  socket itself (one ``recv_into`` per read, no buffered reader and no
  ``SocketIO`` layer in between: a TLS body comes one 16 KiB record per
  read, so these layers cost per record; a plain socket's bytes that are
  already there are read with one ``readv`` of its descriptor, and only
  an empty socket is waited for), and settles ``http.client``'s count at
  the end;
* :class:`ChunkedReader` for ``Transfer-Encoding: chunked``, parsed
  strictly (hex sizes only, bounded lines and trailers, CRLF after each
  chunk); the connection is not reused after it.

Errors: a socket error or timeout as raised by the socket (``OSError``);
a broken framing as :class:`ChunkedError` (a ``ValueError``) saying what was
wrong. Runs on the worker thread that owns the response.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import socket
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client
    import io
    from collections.abc import Callable

__all__ = ["ChunkedError", "ChunkedReader", "SocketBody", "Stalled", "plain_reader"]

# Reading a socket's descriptor directly (see SocketBody): POSIX systems.
_DIRECT = hasattr(os, "readv") and hasattr(select, "poll")
_MAX_LINE = 4096  # a chunk-size line (extensions included) or a trailer line
_MAX_TRAILERS = 100
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ChunkedError(ValueError):
    """The chunked framing is broken (the message says how)."""


class Stalled(TimeoutError):
    """A read timed out after the socket's whole read timeout (not a short
    quiet): the server's pause is over its patience, the copy gives up."""


def plain_reader(body: http.client.HTTPResponse) -> Callable[[memoryview], int]:
    """``readinto`` for a non-chunked ``body``: at most one socket read per call.

    Like ``body.readinto``, never reads past ``Content-Length`` and closes
    the response when the body is complete or the connection ended (so
    ``body.isclosed()`` tells whether the connection may be reused).
    """
    fp = body.fp

    def readinto(view: memoryview) -> int:
        length = body.length
        if body.fp is None:
            return 0
        if length is not None:
            if length <= 0:
                return body.readinto(view[:0])  # closes the finished response
            view = view[:length]
        count = fp.readinto1(view)
        if not count:
            return body.readinto(view)  # the end: http.client notices and closes
        if length is not None:
            body.length = length - count
            if count == length:
                body.readinto(view[:0])
        return count

    return readinto


class SocketBody:
    """The rest of a ``Content-Length`` body, read from the socket under ``http.client``.

    Make one with :meth:`open` (``None`` where the reader is not over a
    plain or TLS socket, or the length is unknown). :meth:`first` reads
    what ``http.client`` buffered, :attr:`then` reads the socket itself;
    the caller never asks either for bytes past :attr:`end` (where the copy
    stops, counted like ``received``: the body's end, or the caller's if
    that comes first), and switches to :attr:`then` only
    after :meth:`first` returned fewer bytes than asked: ``read1`` never
    fills the buffer, so it is empty then. A read that filled its view
    leaves that open (the buffer may hold more, or it was a socket read),
    so the next :meth:`first` waits for the next bytes into the buffer
    first (as a read waits) and returns just those.
    After the copy, :meth:`settle` gives ``http.client`` its count back, so
    a whole body frees the connection for reuse and a short one does not
    (nor one followed by bytes the TLS socket already holds: the pool's
    check for a dropped connection only sees the file descriptor).

    :meth:`listen` makes both readers give up (``TimeoutError``) after a
    short quiet, so the caller can write what it holds while a server
    stalls; :attr:`patience` is how long the socket may stay quiet in all
    (its own read timeout), and :meth:`settle` gives it that timeout back.
    On a plain socket read directly, :meth:`listen` shortens only
    :attr:`then`'s wait (no timeout is set), so :meth:`first` waits all of
    :attr:`patience` and raises :class:`Stalled` when it is over (the
    caller's buffer is empty whenever :meth:`first` reads: nothing waits
    to be written).
    A quiet in :meth:`first` leaves ``http.client``'s buffer empty (it read
    the socket only because the buffer was), so :attr:`then` goes on.
    """

    def __init__(
        self, body: http.client.HTTPResponse, sock: socket.socket, body_end: int, end: int
    ) -> None:
        self._body = body
        self._sock = sock
        self._timeout = sock.gettimeout()
        self._listening = False
        self.patience = math.inf if self._timeout is None else self._timeout
        self._read1 = body.fp.read1
        self._peek = body.fp.peek
        self._filled = False
        self._body_end = body_end
        self.then: Callable[[memoryview], int] = sock.recv_into
        self._poll: Callable[[float], list[tuple[int, int]]] | None = None
        if _DIRECT and type(sock) is socket.socket and self._timeout:
            # A plain socket with a timeout is non-blocking underneath: its
            # bytes are read with one readv when they are there already
            # (recv_into polls first, and listen() would set the timeout
            # twice, one system call each), polled for only when it is empty.
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            self._poll = poller.poll
            self._wait_ms = self._timeout * 1000
            self.then = self._read
        self.end = end
        # The reader of the first reads: http.client's buffer, unless known empty.
        self.start: Callable[[memoryview], int] | None = self.first if body_end >= 0 else None

    @classmethod
    def open(
        cls, body: http.client.HTTPResponse, received: int, end: int | None
    ) -> SocketBody | None:
        """For ``body`` whose bytes so far are ``received``, to be copied up to
        ``end`` at most (``None``: to its end); ``None`` if it cannot."""
        length = body.length
        sock = getattr(getattr(body.fp, "raw", None), "_sock", None)
        if length is None or not isinstance(sock, socket.socket):
            return None
        if type(sock) not in (socket.socket, ssl.SSLSocket):
            return None  # a subclass may read differently
        body_end = received + length
        return cls(body, sock, body_end, body_end if end is None else min(end, body_end))

    @classmethod
    def after_splice(
        cls, body: http.client.HTTPResponse, sock: socket.socket, end: int
    ) -> SocketBody:
        """The rest of ``body`` up to ``end`` after a splice began it on ``sock``.

        ``http.client``'s buffer is empty then (the splice path takes it
        first, with ``read1``) and its count is behind (the splice read past
        it), so :attr:`start` is None (only :attr:`then` reads), and
        :meth:`settle` never frees the connection: it closes with the
        response, as after a splice.
        """
        return cls(body, sock, -1, end)

    def listen(self, quiet: float) -> None:
        """From now on a read gives up after ``quiet`` seconds without a byte."""
        if quiet < self.patience:
            if self._poll is not None:
                self._wait_ms = quiet * 1000
                return
            self._sock.settimeout(quiet)
            self._listening = True

    def _read(self, view: memoryview) -> int:
        """One read of the plain socket (``recv_into`` style): what is there,
        else what comes within the read's time (``TimeoutError`` if nothing).

        The descriptor is asked of the socket before every read (-1 once it
        is closed: ``EBADF``, as ``recv_into`` raises): closed by another
        thread while the poll waits, its number may already lead to another
        socket or file, whose bytes are not this body's.
        """
        sock = self._sock
        while True:
            try:
                return os.readv(sock.fileno(), (view,))
            except BlockingIOError:
                pass
            assert self._poll is not None
            if not self._poll(self._wait_ms):
                raise TimeoutError("timed out")

    def first(self, view: memoryview) -> int:
        """Buffered bytes if there are any, else one socket read (``readinto`` style).

        :class:`Stalled` if that read timed out on a plain socket read
        directly: :meth:`listen` left its timeout as it was, so the read
        waited all of :attr:`patience` (not a quiet).
        """
        try:
            if self._filled:
                self._peek(1)
            data = self._read1(len(view))
        except TimeoutError as exc:
            if self._poll is None or isinstance(exc, Stalled):
                raise
            raise Stalled(*exc.args) from exc
        count = len(data)
        view[:count] = data
        self._filled = count == len(view)
        return count

    def settle(self, received: int) -> None:
        """The copy stopped at ``received``: give the socket its timeout back,
        tell ``http.client`` what is left (it closes the response once nothing
        is, unless more bytes follow)."""
        if self._listening:
            self._listening = False
            with contextlib.suppress(OSError):  # closed: it is not used again
                self._sock.settimeout(self._timeout)
        body = self._body
        if body.fp is None or self._body_end < 0:  # < 0: after a splice, never reused
            return
        body.length = max(0, self._body_end - received)
        if body.length:
            return
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # bytes past the body: the response stays open, its connection unused
        body.readinto(memoryview(bytearray(0)))  # closes the finished response


class ChunkedReader:
    """``readinto`` over a chunked body read from ``fp`` (the response's reader)."""

    def __init__(self, fp: io.BufferedReader) -> None:
        self._fp = fp
        self._left = 0  # bytes left in the current chunk
        self.done = False

    def readinto(self, view: memoryview) -> int:
        """Read some of the body into ``view``; 0 at its end. One socket read at most,
        but for the few bytes of framing around a chunk."""
        if self.done:
            return 0
        if not self._left:
            self._left = self._size()
            if not self._left:
                self._trailers()
                self.done = True
                return 0
        count = self._fp.readinto1(view[: min(len(view), self._left)])
        if not count:
            raise ChunkedError("Response ended prematurely")
        self._left -= count
        if not self._left and self._fp.read(2) != b"\r\n":
            raise ChunkedError("no CRLF after a chunk")
        return count

    def _line(self) -> bytes:
        line = self._fp.readline(_MAX_LINE + 1)
        if not line:
            raise ChunkedError("Response ended prematurely")
        if len(line) > _MAX_LINE or not line.endswith(b"\n"):
            raise ChunkedError("chunk size line too long, or cut")
        return line.rstrip(b"\r\n")

    def _size(self) -> int:
        line = self._line()
        size = line.split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(size):
            raise ChunkedError(f"invalid chunk size {size[:20].decode('latin-1')}")
        return int(size, 16)

    def _trailers(self) -> None:
        for _ in range(_MAX_TRAILERS):
            line = self._fp.readline(_MAX_LINE + 1)
            if not line.strip(b"\r\n"):  # the blank line, or the end (taken as it)
                return
            if len(line) > _MAX_LINE:
                raise ChunkedError("trailer line too long")
        raise ChunkedError("too many trailer lines")
