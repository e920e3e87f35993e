"""A real PostgreSQL server on loopback for tests and benchmarks.

Use it as ``with postgres_server() as pg:`` (or ``with PostgresServer() as pg:``).
The object has:

* ``pg.base_url``: the SQLAlchemy URL of the server without a database, driver
  ``postgresql+psycopg`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:54321``);
* ``pg.url(dbname)``: the URL of one database on that server;
* ``pg.create_database()``: creates a database with a fresh unique name and
  returns its URL;
* ``pg.drop_database(url)``: ``DROP DATABASE ... WITH (FORCE)`` (open sessions
  on it are ended; a database that is already gone is fine).

Where the server comes from:

* if ``REGISSEUR_PG_URL`` is set, that server is used as it is (nothing is
  started or stopped; only the databases created here are dropped by callers).
  The URL's database, if any, is the one connected to for CREATE/DROP DATABASE
  (``postgres`` otherwise);
* otherwise a throwaway server is started: ``initdb`` into a fresh temporary
  directory, then ``pg_ctl start`` on 127.0.0.1 and a free port, with the
  settings of a fast test server (no fsync, no synchronous commit). The
  binaries are looked for in ``REGISSEUR_PG_BINDIR`` if set (and only there),
  else in ``pg_config --bindir``, the newest ``/usr/lib/postgresql/*/bin``,
  then on ``PATH``. PostgreSQL refuses to run as root, so as root the server
  runs as the ``postgres`` user (created by Debian's package) through
  ``runuser``, or as a system user ``regisseur-pg`` created for it.
  On exit it is stopped (``pg_ctl stop -m immediate``, then SIGKILL if that
  does not end it in time) and the directory is removed: no process outlives
  the context.

On failure: anything that keeps the server from being had (no binaries, no
psycopg, initdb or the start failing, with their output, or the server not
answering within ``READY_TIMEOUT`` seconds, ``EXTERNAL_READY_TIMEOUT`` for a
given one) raises ``PostgresUnavailable`` with the reason, after cleaning up
whatever was already started.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, make_url

from tests.polling import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = [
    "ENV_BINDIR",
    "ENV_URL",
    "PostgresServer",
    "PostgresUnavailable",
    "postgres_server",
]

ENV_URL = "REGISSEUR_PG_URL"
ENV_BINDIR = "REGISSEUR_PG_BINDIR"

DRIVER = "postgresql+psycopg"
SUPERUSER = "postgres"
READY_TIMEOUT = 30.0
EXTERNAL_READY_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
START_ATTEMPTS = 3
FALLBACK_USER = "regisseur-pg"

SERVER_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "max_parallel_workers_per_gather": "0",
    "log_min_messages": "warning",
}

_names = itertools.count()


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be had; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise PostgresUnavailable(
            f"psycopg is not installed ({exc}); install the 'test' or 'postgres' extra"
        ) from exc
    return psycopg


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _conninfo(url: URL) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresServer:
    """A PostgreSQL server for tests: the one in ``url`` or a throwaway one.

    ``url`` defaults to ``$REGISSEUR_PG_URL``; without either, entering the
    context starts a throwaway server (see the module docstring) and leaving
    it stops the server and removes its files. ``bindir`` overrides where the
    binaries are looked for. Entering raises ``PostgresUnavailable``.
    """

    def __init__(self, url: str | None = None, *, bindir: str | None = None) -> None:
        self._given = url if url is not None else os.environ.get(ENV_URL) or None
        self._bindir = bindir
        self._base: URL | None = None
        self._admin_db = SUPERUSER
        self._cluster: _Cluster | None = None

    # -- context -----------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Use the given server or start a throwaway one; waits until it answers."""
        _psycopg()
        if self._given is not None:
            url = _normalise(self._given)
            self._admin_db = url.database or SUPERUSER
            self._base = URL.create(  # .set(database=None) would keep the database
                url.drivername, url.username, url.password, url.host, url.port, None, url.query
            )
            _wait_ready(self._base.set(database=self._admin_db), EXTERNAL_READY_TIMEOUT, None)
            return
        cluster = _Cluster(self._bindir)
        self._cluster = cluster
        try:
            cluster.start()
        except BaseException:
            self.stop()
            raise
        self._base = URL.create(DRIVER, username=SUPERUSER, host="127.0.0.1", port=cluster.port)

    def stop(self) -> None:
        """Stop and remove a throwaway server; a given server is left alone."""
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.stop()

    def restart(self) -> None:
        """Stop a throwaway server abruptly (``-m immediate``) and start it again.

        Every open connection is cut, as in a crash or failover of the
        database. Only for a throwaway server (``RuntimeError`` otherwise).
        """
        if self._cluster is None:
            raise RuntimeError("only a throwaway server started here can be restarted")
        self._cluster.restart()

    def halt(self, *, kill: bool = False) -> None:
        """Take a throwaway server down until :meth:`resume` (connections cut).

        ``kill``: SIGKILL the server's processes (a crash) instead of
        ``pg_ctl stop -m immediate``.
        """
        if self._cluster is None:
            raise RuntimeError("only a throwaway server started here can be halted")
        self._cluster.halt(kill=kill)

    def resume(self) -> None:
        """Start a halted throwaway server again on the same port."""
        if self._cluster is None:
            raise RuntimeError("only a throwaway server started here can be resumed")
        self._cluster.resume()

    # -- API ---------------------------------------------------------------

    @property
    def external(self) -> bool:
        """True when the server is the one given by URL (not started here)."""
        return self._given is not None

    @property
    def base_url(self) -> str:
        """The server's SQLAlchemy URL without a database."""
        return self._base_url().render_as_string(hide_password=False)

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname`` on this server."""
        return self._base_url().set(database=dbname).render_as_string(hide_password=False)

    def create_database(self) -> str:
        """Create a database with a fresh unique name and return its URL."""
        name = f"regisseur_test_{os.getpid()}_{next(_names)}_{secrets.token_hex(3)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, ending its open sessions (gone already is fine)."""
        name = make_url(url).database
        if not name:
            raise ValueError(f"no database in {url!r}")
        self._admin(f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')

    def _base_url(self) -> URL:
        if self._base is None:
            raise RuntimeError("the PostgreSQL server is not started (use it as a context)")
        return self._base

    def _admin(self, statement: str) -> None:
        psycopg = _psycopg()
        target = self._base_url().set(database=self._admin_db)
        with psycopg.connect(_conninfo(target), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)


@contextlib.contextmanager
def postgres_server(
    url: str | None = None, *, bindir: str | None = None
) -> Iterator[PostgresServer]:
    """``with postgres_server() as pg:`` a started ``PostgresServer``, stopped after."""
    with PostgresServer(url, bindir=bindir) as server:
        yield server


def _identifier(name: str) -> str:
    if '"' in name or "\x00" in name:
        raise ValueError(f"unsupported database name {name!r}")
    return name


def _normalise(given: str) -> URL:
    try:
        url = make_url(given)
    except Exception as exc:
        raise PostgresUnavailable(f"{ENV_URL} is not a database URL: {exc}") from exc
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise PostgresUnavailable(f"{ENV_URL} is not a PostgreSQL URL: {_shown(url)}")
    return url.set(drivername=DRIVER)


def _wait_ready(url: URL, timeout: float, log: Path | None) -> None:
    """Connect until the server answers ``SELECT 1``, for at most ``timeout`` seconds."""
    psycopg = _psycopg()
    last: list[Exception] = []

    def answers() -> bool:
        try:
            with psycopg.connect(_conninfo(url), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            last[:] = [exc]
            return False
        return True

    try:
        wait_until(answers, timeout, "PostgreSQL", interval=0.1)
    except AssertionError:
        detail = f"; server log:\n{_tail(log)}" if log is not None else ""
        error = last[0] if last else None
        msg = f"PostgreSQL at {_shown(url)} did not answer within {timeout:.0f} s: {error}{detail}"
        raise PostgresUnavailable(msg) from None


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


def _find_bindir(override: str | None) -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    needed = ("initdb", "pg_ctl", "postgres")

    def complete(folder: Path) -> bool:
        return all(os.access(folder / name, os.X_OK) for name in needed)

    explicit = override if override is not None else os.environ.get(ENV_BINDIR)
    if explicit:
        if complete(Path(explicit)):
            return Path(explicit)
        raise PostgresUnavailable(
            f"no {', '.join(needed)} in {explicit} (from {ENV_BINDIR} or bindir=)"
        )
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
                stdin=subprocess.DEVNULL,
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for candidate in candidates:
        if complete(candidate):
            return candidate
    initdb = shutil.which("initdb")
    if initdb is not None and complete(Path(initdb).resolve().parent):
        return Path(initdb).resolve().parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via pg_config, "
        "/usr/lib/postgresql/*/bin or PATH; install PostgreSQL (Debian: apt-get install "
        f"postgresql) or set {ENV_URL} to a running server"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_user() -> pwd.struct_passwd:
    """The unprivileged user that runs the server when we are root."""
    for name in (SUPERUSER, FALLBACK_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                FALLBACK_USER,
            ],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return pwd.getpwnam(FALLBACK_USER)
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise PostgresUnavailable(
            f"running as root, no '{SUPERUSER}' user and could not create '{FALLBACK_USER}': "
            f"{exc} {stderr}".strip()
        ) from exc


def _traversable_by_others(folder: Path) -> bool:
    for part in [folder, *folder.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


class _Cluster:
    """One throwaway data directory and the server running on it."""

    def __init__(self, bindir: str | None) -> None:
        self._bindir_override = bindir
        self.port = 0
        self._root: Path | None = None
        self._user: pwd.struct_passwd | None = None
        self._bindir = Path()

    @property
    def _data(self) -> Path:
        assert self._root is not None
        return self._root / "data"

    @property
    def _log(self) -> Path:
        assert self._root is not None
        return self._root / "server.log"

    def start(self) -> None:
        self._bindir = _find_bindir(self._bindir_override)
        if os.geteuid() == 0:
            self._user = _server_user()
        parent = tempfile.gettempdir()
        if self._user is not None and not _traversable_by_others(Path(parent)):
            parent = "/tmp"  # the server user must reach the directory
        self._root = Path(tempfile.mkdtemp(prefix="regisseur-pg-", dir=parent))
        (self._root / "socket").mkdir()
        if self._user is not None:
            for path in (self._root, self._root / "socket"):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self._initdb()
        for attempt in range(START_ATTEMPTS):
            self.port = _free_port()
            if self._pg_ctl_start():
                break
            log = _tail(self._log)
            self._kill()
            if "could not bind" in log or "already in use" in log:
                if attempt + 1 < START_ATTEMPTS:
                    continue  # lost the port to someone else; try another
            raise PostgresUnavailable(f"pg_ctl start failed; server log:\n{log}")
        url = URL.create(DRIVER, username=SUPERUSER, host="127.0.0.1", port=self.port)
        _wait_ready(url.set(database=SUPERUSER), READY_TIMEOUT, self._log)

    def restart(self) -> None:
        """Stop the server at once (connections cut) and start it on the same port."""
        self.halt(kill=False)
        self.resume()

    def halt(self, *, kill: bool) -> None:
        """Stop the server at once: ``pg_ctl stop -m immediate``, or SIGKILL."""
        if kill:
            self._kill(children=True)
            return
        self._run(
            [self._bin("pg_ctl"), "stop", "-D", str(self._data), "-m", "immediate"]
            + ["-w", "-t", str(int(STOP_TIMEOUT))],
            timeout=STOP_TIMEOUT + 5,
        )

    def resume(self) -> None:
        """Start the stopped server again on the same port; waits until it answers."""
        if not self._pg_ctl_start():
            raise PostgresUnavailable(f"restart failed; server log:\n{_tail(self._log)}")
        url = URL.create(DRIVER, username=SUPERUSER, host="127.0.0.1", port=self.port)
        _wait_ready(url.set(database=SUPERUSER), READY_TIMEOUT, self._log)

    def stop(self) -> None:
        """Stop the server (bounded) and remove its directory."""
        if self._root is None:
            return
        try:
            if (self._data / "postmaster.pid").exists():
                try:
                    self._run(
                        [self._bin("pg_ctl"), "stop", "-D", str(self._data), "-m", "immediate"]
                        + ["-w", "-t", str(int(STOP_TIMEOUT))],
                        timeout=STOP_TIMEOUT + 5,
                    )
                except (OSError, subprocess.SubprocessError):
                    pass
                self._kill()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # -- steps -------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(self._bindir / name)

    def _initdb(self) -> None:
        command = [self._bin("initdb"), "-D", str(self._data), "-U", SUPERUSER]
        command += ["--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        try:
            done = self._run(command, timeout=COMMAND_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresUnavailable(f"initdb could not run: {exc}") from exc
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
            )

    def _pg_ctl_start(self) -> bool:
        assert self._root is not None
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self._root / 'socket'}",
            *(f"-c {key}={value}" for key, value in SERVER_SETTINGS.items()),
        ]
        command = [self._bin("pg_ctl"), "start", "-D", str(self._data), "-l", str(self._log)]
        command += ["-o", " ".join(options), "-w", "-t", str(int(READY_TIMEOUT))]
        # pg_ctl's output goes to a file, not a pipe: the server it leaves
        # running would otherwise hold the pipe open.
        output = self._root / "pg_ctl.out"
        try:
            with output.open("w", encoding="utf-8") as sink:
                done = subprocess.run(
                    self._as_server_user(command),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=READY_TIMEOUT + 10,
                    cwd=self._root,
                    env=_server_env(),
                    start_new_session=True,
                    check=False,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            with contextlib.suppress(OSError):
                with self._log.open("a", encoding="utf-8") as log:
                    log.write(f"\npg_ctl start: {exc}\n")
            return False
        if done.returncode != 0:
            with contextlib.suppress(OSError):
                with self._log.open("a", encoding="utf-8") as log:
                    log.write("\n" + output.read_text(encoding="utf-8", errors="replace"))
        return done.returncode == 0

    def _kill(self, *, children: bool = False) -> None:
        """SIGKILL the postmaster if it is still there, and wait (bounded) for it to go.

        ``children``: its backends too (found by parent pid), as in a crash
        of the whole server; they hold its shared memory otherwise.
        """
        try:
            pid = int((self._data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        pids = [pid, *(_children(pid) if children else ())]
        for each in pids:
            try:
                os.kill(each, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
        with contextlib.suppress(AssertionError):  # gone or not: the caller goes on
            wait_until(
                lambda: not any(_alive(each) for each in pids), STOP_TIMEOUT, "the server's end"
            )

    def _as_server_user(self, command: list[str]) -> list[str]:
        if self._user is None:
            return command
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailable(
                "running as root and no runuser to run PostgreSQL as another user"
            )
        return [runuser, "-u", self._user.pw_name, "--", *command]

    def _run(self, command: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_server_user(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self._root,
            env=_server_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )


def _children(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X")


def _server_env() -> dict[str, str]:
    """The environment for the server's commands: ours less libpq's PG* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env
