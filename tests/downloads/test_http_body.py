"""SocketBody's direct reads of a plain socket, against what another thread
does to that socket meanwhile (the cases ``recv_into`` handled by itself)."""

from __future__ import annotations

import errno
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from regisseur.actors.downloads._http_body import SocketBody
from tests.downloads.conftest import WAIT
from tests.polling import wait_until

_POLL_SYSCALLS = {"7", "271"}  # poll, ppoll (x86_64)


def polling(thread: threading.Thread) -> bool:
    """True while ``thread`` (of this process) waits in poll."""
    syscall = Path(f"/proc/self/task/{thread.native_id}/syscall").read_text()
    return syscall.split(" ", 1)[0] in _POLL_SYSCALLS


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="poll's number is x86_64's")
def test_a_socket_closed_while_a_read_waits_never_reads_the_next_owner_of_its_descriptor() -> None:
    """Another thread closes the socket while a read waits for its bytes, and
    its descriptor's number goes to another socket with bytes waiting: the
    read fails (EBADF, as ``recv_into`` does), the other socket's bytes stay
    where they are."""
    ours, server = socket.socketpair()
    ours.settimeout(WAIT)
    stub: Any = SimpleNamespace(fp=SimpleNamespace(read1=None, peek=None))
    body = SocketBody.after_splice(stub, ours, 100)
    body.listen(1.0)  # the quiet: the poll wakes at its end, the number reused by then
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(body.then(memoryview(bytearray(100))))
        except OSError as exc:
            outcome.append(exc)

    number = ours.fileno()
    reader = threading.Thread(target=read)
    reader.start()
    other, sender = socket.socketpair()
    duplicated = False
    try:
        wait_until(lambda: polling(reader), WAIT, "the read waits in poll")
        ours.close()
        os.dup2(other.fileno(), number)  # the number now leads to another socket
        duplicated = True
        sender.sendall(b"not yours")
        reader.join(WAIT)
        assert not reader.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], OSError)
        assert outcome[0].errno == errno.EBADF
        assert other.recv(100) == b"not yours"
    finally:
        ours.close()  # the reader's, if an assertion came first
        reader.join(WAIT)
        if duplicated:
            os.close(number)  # the copy dup2 made
        for sock in (other, sender, server):
            sock.close()
