"""Zero-copy body copies on Linux: socket → pipe → file with ``splice(2)``.

The usual copy loop moves every byte twice through user space (``recv``
into a buffer, ``write`` out of it) and holds the GIL between the two.
``splice`` moves the bytes inside the kernel instead: from the socket into
a pipe, then from the pipe into the file's page cache. For a plain HTTP
body that is about 40% less CPU per byte, and the GIL is free throughout.

Used only where it is safe:

* CPython on an OS with ``os.splice`` (Linux);
* a plain TCP socket (never TLS: the socket would hold encrypted bytes);
* the caller has drained what the ``http.client`` reader had buffered,
  so the socket's next byte is the body's next byte.

Threads: a :class:`Splicer` belongs to one download on one worker thread.

Failures: a socket that cannot be spliced raises :class:`SpliceUnsupported`
before any byte has moved, or where splice stalls on a readable socket (TCP
urgent data): nothing is lost and the caller copies the rest the usual way
(from the same, empty, reader). A file that cannot be spliced into is
written with ``os.write`` instead, from the pipe, without losing a byte. A
failed write (a full disk) raises :class:`WriteFailed`. A read that waits
longer than the socket's timeout raises ``TimeoutError``; any other
``OSError`` is the socket's.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import socket
import sys
from typing import Any

__all__ = ["MIN_BYTES", "SpliceUnsupported", "Splicer", "WriteFailed", "plain_socket"]

#: Bodies shorter than this are copied the usual way (a pipe is not free).
MIN_BYTES = 1024 * 1024
#: Bytes moved per call: one pipe's capacity (raised to 1 MiB if allowed).
STEP = 1024 * 1024
_F_SETPIPE_SZ = 1031  # Linux fcntl; not exported by the fcntl module before 3.10 on all builds
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}
_AVAILABLE = sys.implementation.name == "cpython" and hasattr(os, "splice")


class SpliceUnsupported(Exception):
    """Splicing from this socket does not work; nothing was moved by this call."""


class WriteFailed(Exception):
    """Writing to the file failed (a full disk, say): ``error`` says why.

    Kept apart from ``OSError`` so a caller never mistakes it for a network
    error worth a retry.
    """

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def plain_socket(reader: Any) -> socket.socket | None:
    """The plain TCP socket under ``reader`` (an ``http.client`` body reader).

    ``None`` where splicing is not available or not safe: no ``os.splice``,
    not CPython, or anything but a plain ``socket.socket`` (a TLS socket's
    bytes are ciphertext).
    """
    if not _AVAILABLE:
        return None
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if type(sock) is not socket.socket or sock.fileno() < 0:
        return None
    return sock


class Splicer:
    """Moves bytes from one socket to one file descriptor through a pipe.

    Make one with :meth:`open`; it needs a pipe of ``STEP`` bytes (with the
    default 64 KiB pipe, splice costs more CPU than the copy loop it
    replaces).
    """

    def __init__(self, sock: socket.socket, file_fd: int, pipe: tuple[int, int]) -> None:
        self._sock = sock
        self._file_fd = file_fd
        self._read_end, self._write_end = pipe
        self._moved_any = False
        self._file_splices = True

    @classmethod
    def open(cls, sock: socket.socket, file_fd: int) -> Splicer | None:
        """A splicer with a ``STEP``-byte pipe, or ``None`` if the pipe cannot be had.

        An unprivileged user past ``/proc/sys/fs/pipe-user-pages-soft`` (64 MiB
        of pipes, about 64 downloads at once) is refused a large pipe; those
        downloads take the copy loop. So does a process out of descriptors.
        """
        import fcntl  # POSIX only, like os.splice

        try:
            pipe = os.pipe()
        except OSError:
            return None
        try:
            fcntl.fcntl(pipe[1], _F_SETPIPE_SZ, STEP)
        except OSError:
            for fd in pipe:
                os.close(fd)
            return None
        return cls(sock, file_fd, pipe)

    def close(self) -> None:
        """Close the pipe (idempotent)."""
        for fd in (self._read_end, self._write_end):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read_end = self._write_end = -1

    def __enter__(self) -> Splicer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def move(self, count: int) -> int:
        """Move up to ``count`` bytes from the socket to the file; 0 at end of stream.

        Waits for data up to the socket's timeout (``TimeoutError`` after
        it); a socket shut down by another thread ends the wait (0 or an
        ``OSError``). Every byte taken from the socket is in the file when
        this returns.
        """
        sock_fd = self._sock.fileno()
        timeout = self._sock.gettimeout()
        readable = False
        while True:
            try:
                moved = os.splice(
                    sock_fd, self._write_end, count, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
                )
            except BlockingIOError:
                if readable:
                    # Readable, yet nothing to splice: TCP urgent data stops
                    # splice (recv skips it). Copy the rest instead of spinning.
                    msg = "the socket is readable but splice moves nothing"
                    raise SpliceUnsupported(msg) from None
                self._wait(sock_fd, timeout)
                readable = True
                continue
            except OSError as exc:
                if not self._moved_any and exc.errno in _UNSUPPORTED:
                    raise SpliceUnsupported(str(exc)) from exc
                raise
            break
        self._moved_any = True
        if moved:
            self._drain(moved)
        return moved

    def _wait(self, sock_fd: int, timeout: float | None) -> None:
        poller = select.poll()
        poller.register(sock_fd, select.POLLIN | select.POLLPRI)
        if not poller.poll(None if timeout is None else math.ceil(timeout * 1000)):
            msg = "timed out reading the body"
            raise TimeoutError(msg)

    def _drain(self, count: int) -> None:
        """Write the ``count`` bytes now in the pipe to the file."""
        try:
            while count:
                if self._file_splices:
                    try:
                        written = os.splice(
                            self._read_end, self._file_fd, count, flags=os.SPLICE_F_MOVE
                        )
                        if written:
                            count -= written
                            continue
                        self._file_splices = False  # nothing moved: write it instead
                    except OSError as exc:
                        if exc.errno not in _UNSUPPORTED:
                            raise
                        self._file_splices = False  # e.g. a file system without splice_write
                data = os.read(self._read_end, count)
                if not data:  # never expected: the bytes were just spliced in
                    raise OSError(errno.EIO, "the pipe ran dry before the file got its bytes")
                view = memoryview(data)
                while view:
                    view = view[os.write(self._file_fd, view) :]
                count -= len(data)
        except OSError as exc:
            raise WriteFailed(exc) from exc
