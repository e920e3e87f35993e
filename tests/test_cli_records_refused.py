"""``regisseur download`` and ``status`` when regisseur's checks refuse the records mid-run.

The records' ``-wal`` in ``DIR`` is replaced by a link while a run holds
it (whoever may write to ``DIR`` can). A connection open already goes on
with the file it has; a new one is refused (``sqlite_files``). The run
here is ``python -m regisseur.cli`` whose keeper loses its connection once
the link is there (as after an I/O error: the connection invalidated, the
pool emptied), so that its next write opens a new one. Real processes,
against a local server that holds each download after its first chunk
until the test releases it.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli_scripts import patched_cli
from tests.serving import answer_empty, answer_held, serving
from tests.test_cli_download import DB_NAME, FIRST, ROOT, WAIT, cli, ended, run, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

_NAMES = ("a.bin", "b.bin")


def _losing(then: str = "pass", *, swap_before_the_plan: bool = False) -> str:
    """The command line, whose download keeper loses its connection (as after
    an I/O error: invalidated, and the engine given a new pool, so that no
    connection opened before is handed out again) the first time it
    uses it after the -wal became a link, then runs ``then``: the next
    statement, or the next start, opens a new connection, which is refused.
    With ``swap_before_the_plan`` the run itself replaces the -wal by a link
    to its last argument once the system started, before it lists the
    records it plans from."""
    swap = (
        "import regisseur.cli.download as download\n"
        "target = sys.argv.pop()\n"
        "plan = download._plan\n"
        "def swapped(*args, **kwargs):\n"
        '    os.symlink(target, wal + ".planted")\n'
        '    os.replace(wal + ".planted", wal)\n'
        "    return plan(*args, **kwargs)\n"
        "download._plan = swapped\n"
    )
    return patched_cli(
        "import os, sys\n"
        "from regisseur.actors._resources import Resources\n"
        'out = sys.argv[sys.argv.index("-o") + 1]\n'
        'wal = os.path.join(os.path.realpath(out), ".regisseur-downloads.db-wal")\n'
        "connection_for = Resources.connection_for\n"
        "lost = []\n"
        "def losing(self, cell):\n"
        "    connection = connection_for(self, cell)\n"
        '    if cell.name == "download-keeper" and not lost and os.path.islink(wal):\n'
        "        lost.append(cell.name)\n"
        "        self._database.engine.dispose()\n"
        "        connection.invalidate()\n"
        f"        {then}\n"
        "    return connection\n"
        "Resources.connection_for = losing\n"
        f"{swap if swap_before_the_plan else ''}"
    )


_LOSES_ITS_CONNECTION = _losing()
# ... and crashes then (a bug of its own): it restarts.
_CRASHES = _losing('raise RuntimeError("a bug in the keeper")')


class _Held(http.server.BaseHTTPRequestHandler):
    """Each name in ``_NAMES``, with Range support; a full answer sends FIRST
    bytes, sets ``first[name]`` and holds until ``gates[name]`` is set."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        server = self.server
        name = self.path.rsplit("/", 1)[-1]
        if name not in _NAMES:
            answer_empty(self, 404)
            return
        answer_held(
            self,
            server.body,
            gate=server.gates[name],
            first=server.first[name],
            chunk=FIRST,
            wait=WAIT,
        )

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.body = os.urandom(3 * FIRST + 123)
        self.gates = {name: threading.Event() for name in _NAMES}
        self.first = {name: threading.Event() for name in _NAMES}
        super().__init__(("127.0.0.1", 0), _Held)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


@pytest.fixture
def held() -> Iterator[_Server]:
    server = _Server()

    def release() -> None:
        for gate in server.gates.values():
            gate.set()

    with serving(server, release=release, wait=WAIT):
        yield server


def _swap_wal_for_a_link(out_dir: Path, target: Path) -> Path:
    """Put a link to ``target`` in place of the records' ``-wal``, in one rename."""
    wal = out_dir / f"{DB_NAME}-wal"
    planted = out_dir / "planted"
    planted.symlink_to(target)
    os.replace(planted, wal)
    return wal


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", [_LOSES_ITS_CONNECTION, _CRASHES], ids=["lost", "restart"])
def test_a_records_file_refused_mid_run_stops_the_run_and_keeps_the_parts(
    held: _Server, tmp_path: Path, script: str
) -> None:
    """Before: the keeper's new connection raised the checks' DatabaseError
    through its handler; the keeper crashed and restarted (the records it
    held in memory lost), and the run waited on. Now the write is refused
    as a full disk refuses it: the run stops after its grace with exit 1
    and one line naming the file, the part of the download still running
    is kept, and ``status`` refuses the records meanwhile. Once the link is
    gone, the same command finishes both downloads. A keeper restarted
    meanwhile (a crash of its own) cannot load the records: its refused
    start stops the run the same way (before, the run waited on)."""
    out_dir = tmp_path / "out"
    urls = [held.url(name) for name in _NAMES]
    command = [*cli("download", *urls, "-o", str(out_dir), "--plain", "-j", "2")]
    command[1:3] = ["-c", script]  # python -c SCRIPT download ...
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    target = tmp_path / "elsewhere"
    try:
        for name in _NAMES:
            assert held.first[name].wait(WAIT), f"{name} never started"
        wait_until(
            lambda: sum(p.stat().st_size >= FIRST for p in out_dir.glob("*.part")) == 2,
            "the first chunk in both .part files",
        )
        wal = _swap_wal_for_a_link(out_dir, target)

        status = run("status", str(out_dir))
        assert status.returncode == 1, status.stdout + status.stderr
        assert status.stderr == (
            f"regisseur status: refusing to open the database {str(out_dir / DB_NAME)!r}: "
            f"{str(wal)!r} is a symbolic link (SQLite would follow it out of the directory); "
            "remove it\n"
        )

        held.gates["a.bin"].set()  # a.bin ends; its end cannot be recorded
        code, out, err = ended(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == 1, out + err
    assert "Traceback" not in err
    refused = (
        f"regisseur download: cannot write to the records database {out_dir / DB_NAME}: "
        f"refusing to open the database {str(out_dir / DB_NAME)!r}: {str(wal)!r} is a "
        "symbolic link (SQLite would follow it out of the directory); remove it; stopped: "
        f"1 partial file(s) kept in {out_dir}; run the same command again to resume\n"
    )
    assert err.endswith(refused), err
    assert out == "", "nothing is listed as delivered by a run that stopped"
    assert [p.name for p in out_dir.glob("b.bin.*.part")] != [], "the running one's part is kept"
    assert not target.exists(), "nothing went through the link"

    if wal.is_symlink():  # SQLite removes the -wal by name as the run ends
        wal.unlink()
    again = run("download", *urls, "-o", str(out_dir), "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    for name in _NAMES:
        assert (out_dir / name).read_bytes() == held.body
    left = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(DB_NAME))
    assert left == ["a.bin", "b.bin"], (left, err, again.stderr)


# The -wal replaced by a link between the records' open (checked) and the
# keeper's first connection: the pool's idle connections closed, so that the
# keeper opens a new one.
_SWAPPED_BEFORE_THE_KEEPER = patched_cli("""
import os, sys
from regisseur.actors.downloads.keeper import KeeperActor
out = sys.argv[sys.argv.index("-o") + 1]
wal = os.path.join(os.path.realpath(out), ".regisseur-downloads.db-wal")
target = sys.argv.pop()
start = KeeperActor.on_start
def swapped(self):
    if not os.path.islink(wal):
        os.symlink(target, wal + ".planted")
        os.replace(wal + ".planted", wal)
        self.system.database.engine.dispose()
    start(self)
KeeperActor.on_start = swapped
""")


@pytest.mark.timeout(60)
def test_a_keeper_refused_at_its_first_start_says_which_file_and_why(
    held: _Server, tmp_path: Path
) -> None:
    """Before: ``cannot start: download-keeper: ...``; now the line names the
    records database, as for any other refusal of it, and nothing runs."""
    out_dir = tmp_path / "out"
    target = tmp_path / "elsewhere"
    url = held.url("a.bin")
    result = run(
        "download", url, "-o", str(out_dir), "--plain", str(target),
        script=_SWAPPED_BEFORE_THE_KEEPER,
    )  # fmt: skip
    database = out_dir / DB_NAME
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        f"regisseur download: cannot use the records database {database}: refusing to open "
        f"the database {str(database)!r}: {str(database) + '-wal'!r} is a symbolic link "
        "(SQLite would follow it out of the directory); remove it\n"
    )
    assert result.stdout == ""
    assert not held.first["a.bin"].is_set(), "nothing was downloaded"
    assert not target.exists()


# The -wal replaced by a link once the system has started, before the run
# lists the records it plans from: the keeper's read opens a new connection.
_SWAPPED_BEFORE_THE_PLAN = _losing(swap_before_the_plan=True)


@pytest.mark.timeout(60)
def test_a_read_the_records_refuse_is_one_line_in_their_words(
    held: _Server, tmp_path: Path
) -> None:
    """Before: ``StatementError: (regisseur.actors.database.DatabaseError) ...``
    and the SQL statement, over several lines."""
    out_dir = tmp_path / "out"
    target = tmp_path / "elsewhere"
    result = run(
        "download", held.url("a.bin"), "-o", str(out_dir), "--plain", str(target),
        script=_SWAPPED_BEFORE_THE_PLAN,
    )  # fmt: skip
    database = out_dir / DB_NAME
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == (
        f"regisseur download: cannot use the records database {database}: refusing to open "
        f"the database {str(database)!r}: {str(database) + '-wal'!r} is a symbolic link "
        "(SQLite would follow it out of the directory); remove it\n"
    )
    assert not held.first["a.bin"].is_set(), "nothing was downloaded"
    assert not target.exists()
