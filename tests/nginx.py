"""nginx on 127.0.0.1 with a config of our own: the real server no one here wrote.

One launcher for the tests that need such a server (``tests.serving.nginx``,
which skips a test where nginx is not installed) and for the benches that
measure against it (``bench/bench_small_files.py`` and those built on it,
which put the repository's root on ``sys.path`` to import this). The
config is tuned as a file server is (``sendfile``, long keep-alive), with
room for the caller's own directives.

Threads: the caller's; nginx runs as a process of its own (in the
foreground, ``daemon off``: stopping it is terminating that process).
Failures: ``RuntimeError`` naming nginx's ``error.log`` if it exits before
it listens, or does not listen within ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from typing import TYPE_CHECKING

from tests.polling import wait_until

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Nginx", "nginx_binary"]

_CONF = """\
{user}
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    {http}
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} {listen};
        root {root};
        {server}
    }}
}}
"""


def nginx_binary() -> str | None:
    """The nginx executable (on ``PATH`` or Debian's ``/usr/sbin``), or None."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


class Nginx:
    """nginx serving ``root`` on a free port of 127.0.0.1 until :meth:`stop`.

    ``http`` goes into the ``http`` block (default: no access log), ``listen``
    after the address (``ssl``), ``server`` into the server block
    (certificates, ``limit_rate``). ``prefix`` (a directory) holds its
    config, pid, logs and temporary files.
    """

    name = "nginx"

    def __init__(
        self,
        prefix: Path,
        root: Path,
        *,
        http: str = "access_log off;",
        listen: str = "",
        server: str = "",
        timeout: float = 20.0,
    ) -> None:
        binary = nginx_binary()
        if binary is None:
            msg = "nginx is not installed (apt-get install nginx-light)"
            raise RuntimeError(msg)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        prefix.mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(
            _CONF.format(
                user="user root;" if os.geteuid() == 0 else "",
                prefix=prefix,
                port=self.port,
                root=root,
                http=http,
                listen=listen,
                server=server,
            ),
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            if self.process.poll() is not None:
                msg = f"nginx exited with {self.process.returncode}: see {prefix}/error.log"
                raise RuntimeError(msg)
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return True
            return False

        try:
            wait_until(listening, timeout, f"nginx listening on 127.0.0.1:{self.port}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate nginx and wait for it (killed if it does not end in 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
