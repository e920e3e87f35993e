"""``regisseur download`` / ``status`` (the real entry point) on cases of the kinds issue 15 lists.

Each run is a subprocess of the installed CLI against a raw server on
127.0.0.1 (:class:`tests.reliability.test_hostile_http.RawServer`): secrets
in forms a server decodes, a records database named with ``--db`` through
a planted link, output and database places the user cannot use.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.reliability.test_hostile_http import OK, RawServer, http
from tests.test_cli_download import run as run_cli
from tests.test_cli_safety import run

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = ".regisseur-downloads.db"
BODY = b"review " * 500


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    yield raw
    raw.close()


# -- secrets a server reads after percent-decoding ----------------------------------------


def test_percent_encoded_credential_names_are_redacted_everywhere(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: ``%54oken=``, ``api%5Fkey=``, ``to%6Ben=`` and ``token%3D...`` (names the
    server decodes to token/api_key) were printed raw and stored in status --json."""
    good = server.route("/file.bin", http(OK, body=BODY)) + "?%54oken=s3cr3t-a;api%5Fkey=s3cr3t-b"
    bad = server.route("/gone.bin", http("404 Not Found")) + "?x=1&to%6Ben=s3cr3t-c#sig=s3cr3t-d"
    odd = server.route("/odd.bin", http(OK, body=BODY)) + "?token%3Ds3cr3t-e&sig=s3(cr3t-f)"
    out = tmp_path / "out"
    result = run("download", good, bad, odd, "-o", str(out), "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    status = run("status", str(out), "--json")
    table = run("status", str(out))
    assert status.returncode == 0, status.stderr
    shown = result.stdout + result.stderr + status.stdout + table.stdout
    assert "s3cr3t" not in shown
    assert "cr3t" not in shown
    assert "%54oken=[REDACTED]" in result.stderr
    assert "token%3D[REDACTED]" in result.stderr
    downloads = json.loads(status.stdout)["downloads"]
    assert [d["state"] for d in downloads] == [
        "Completed, Succeeded",
        "Errored",
        "Completed, Succeeded",
    ]
    # The records keep the URL as given: a resume needs it.
    with sqlite3.connect(out / DB_NAME) as connection:
        stored = {row[0] for row in connection.execute("SELECT target_id FROM regisseur_downloads")}
    assert good in stored


def test_a_token_given_as_the_user_name_is_redacted(server: RawServer, tmp_path: Path) -> None:
    """Before: ``https://<token>@host/...`` (a user name without a password, the way
    tokens are put in URLs) was printed and listed as it is."""
    url = server.route("/file.bin", http(OK, body=BODY)).replace("://", "://ghp_s3cr3t@")
    out = tmp_path / "out"
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stderr
    status = run("status", str(out), "--json")
    shown = result.stdout + result.stderr + status.stdout
    assert "s3cr3t" not in shown
    assert "http://[REDACTED]@127.0.0.1" in result.stderr


# -- a records database named with --db inside the output directory ---------------------


def _other_application(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")


def _tables_and_mode(path: Path) -> tuple[list[str], str]:
    with sqlite3.connect(path) as connection:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master ORDER BY name")]
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    return names, mode


@pytest.mark.parametrize("form", ["path", "relative", "url"])
def test_db_named_in_the_output_directory_is_never_opened_through_a_link(
    server: RawServer, tmp_path: Path, form: str
) -> None:
    """Before: ``--db DIR/x.db`` (a link planted in DIR to another application's SQLite
    file) got regisseur's tables added and WAL switched on; only the default name was
    checked."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "app.db"
    _other_application(victim)
    (out / "records.db").symlink_to(victim)
    named = {
        "path": str(out / "records.db"),
        "relative": os.path.relpath(out / "records.db", ROOT),
        "url": f"sqlite:///{out / 'records.db'}",
    }[form]
    result = run("download", url, "-o", str(out), "--db", named)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "records.db" in result.stderr
    assert "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert _tables_and_mode(victim) == (["notes"], "delete")
    assert server.seen == []  # refused before anything was fetched


def test_db_named_in_the_output_directory_is_private(server: RawServer, tmp_path: Path) -> None:
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    loose = out / "records.db"
    _other_application(loose)
    loose.chmod(0o644)
    result = run("download", url, "-o", str(out), "--db", str(loose))
    assert result.returncode == 0, result.stderr
    assert loose.stat().st_mode & 0o777 == 0o600


# -- places this user cannot use ----------------------------------------------------------


def _unprivileged() -> list[str]:
    """A prefix that runs the CLI where file modes bind (root ignores them), else skip.

    As root: ``unshare --user`` (a user namespace without capabilities over
    the files, so their owner's mode bits apply), when the machine allows it.
    """
    if os.geteuid() != 0:
        return []
    probe = subprocess.run(
        ["unshare", "--user", sys.executable, "-c", "import regisseur.cli"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("running as root and `unshare --user` is not available")
    return ["unshare", "--user"]


def _run_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_unprivileged(), sys.executable, "-m", "regisseur.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("-o under a closed directory", "cannot create {closed}/out: permission denied"),
        ("--db in a read-only directory", "cannot write to {readonly} (for the records database"),
        ("--db a read-only file", "cannot write to the records database {readonly_db}: permission"),
    ],
)
def test_places_the_user_cannot_write_get_a_plain_error(
    server: RawServer, tmp_path: Path, case: str, expected: str
) -> None:
    """Before: a traceback (PermissionError from looking at -o under a directory the user
    may not search) or ``PermissionError: [Errno 13] ...-owners`` with exit code 1."""
    url = server.route("/file.bin", http(OK, body=BODY))
    closed = tmp_path / "closed"
    closed.mkdir()
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly_db = tmp_path / "records.db"
    _other_application(readonly_db)
    out = tmp_path / "out"
    args = {
        "-o under a closed directory": ["-o", str(closed / "out")],
        "--db in a read-only directory": ["-o", str(out), "--db", str(readonly / "r.db")],
        "--db a read-only file": ["-o", str(out), "--db", str(readonly_db)],
    }[case]
    closed.chmod(0o000)
    readonly.chmod(0o555)
    readonly_db.chmod(0o444)
    try:
        result = _run_unprivileged("download", url, *args)
    finally:
        closed.chmod(0o700)
        readonly.chmod(0o700)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Errno" not in result.stderr
    shown = expected.format(closed=closed, readonly=readonly, readonly_db=readonly_db)
    assert shown in result.stderr
    assert server.seen == []


# -- regisseur status on a database it cannot read ---------------------------------------


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c script ARGS`` (a CLI run under a changed import system), to its end."""
    return run_cli(*args, script=script)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_status_of_an_unreachable_database_says_why_in_plain_words() -> None:
    """Before: ``OperationalError: (psycopg.OperationalError) ...`` and a sqlalche.me link."""
    url = f"postgresql://alice:s3cr3t-pw@127.0.0.1:{_free_port()}/records"
    result = run("status", "--db", url)
    assert result.returncode == 1
    assert "Connection refused" in result.stderr
    assert "postgresql://alice:[REDACTED]@127.0.0.1" in result.stderr
    for jargon in ("OperationalError", "sqlalche.me", "Background on this error", "s3cr3t"):
        assert jargon not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# As if psycopg were not installed (it is, for the cluster tests): the
# import of its module fails as it does in a venv without the extra.
_WITHOUT_PSYCOPG = (
    "import runpy, sys\n"
    "sys.modules['psycopg'] = None\n"
    "sys.modules['psycopg2'] = None\n"
    "sys.argv[0] = 'regisseur'\n"
    "runpy.run_module('regisseur.cli', run_name='__main__')\n"
)


@pytest.mark.parametrize("command", ["download", "status"])
def test_a_database_driver_that_is_not_installed_is_named_with_its_fix(
    command: str, tmp_path: Path
) -> None:
    """Before: ``cannot use the records database postgresql://...: No module
    named 'psycopg'``, which does not say what to install."""
    url = f"postgresql://alice:s3cr3t-pw@127.0.0.1:{_free_port()}/records"
    args = [command, "--db", url]
    if command == "download":
        args += ["-o", str(tmp_path), "http://127.0.0.1:9/a.bin"]
    result = run_script(_WITHOUT_PSYCOPG, *args)
    assert result.returncode in (1, 2), result.stderr
    assert "the PostgreSQL driver is not installed" in result.stderr, result.stderr
    assert "pip install 'regisseur[postgres]'" in result.stderr
    assert "postgresql://alice:[REDACTED]@127.0.0.1" in result.stderr
    assert "s3cr3t" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_status_of_an_unreadable_records_file_says_permission_denied(tmp_path: Path) -> None:
    """Before: ``OperationalError: (sqlite3.OperationalError) unable to open database file``."""
    out = tmp_path / "out"
    out.mkdir()
    records = out / DB_NAME
    _other_application(records)
    records.chmod(0o000)
    result = _run_unprivileged("status", str(out))
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == f"regisseur status: cannot read {records}: permission denied"


def test_a_link_in_place_of_the_owner_locks_directory_is_refused(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: ``DIR/.regisseur-downloads.db-owners`` planted as a link made the run
    create its lock files (``plan.lock``, ``<owner>.lock``) in the link's target, a
    directory whoever planted it chooses (and may hold the locks in)."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / f"{DB_NAME}-owners").symlink_to(elsewhere)
    result = run("download", url, "-o", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{DB_NAME}-owners" in result.stderr
    assert "symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []
    assert server.seen == []


def test_status_json_gives_every_time_in_iso_8601_utc(server: RawServer, tmp_path: Path) -> None:
    """Before: the downloads' times were ISO 8601, the events' ``time`` epoch seconds."""
    from datetime import datetime, timedelta, timezone

    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    assert run("download", url, "-o", str(out), "-q").returncode == 0
    result = run("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    times = [d[k] for d in data["downloads"] for k in ("created_at", "updated_at")]
    times += [e["time"] for e in data["events"]]
    assert data["events"]
    now = datetime.now(timezone.utc)
    for text in times:
        moment = datetime.fromisoformat(text)
        assert moment.utcoffset() == timedelta(0), text
        assert abs(now - moment) < timedelta(minutes=5), text
    table = run("status", str(out), "--events", "5")  # the starts and stops listed too
    assert table.returncode == 0, table.stderr
    assert "ChildStopped" in table.stdout  # the last five are stops


@pytest.mark.parametrize("agent", ["", " ", "two\nlines", "tab\tand\rreturn"])
def test_a_bad_user_agent_is_named_by_its_option(agent: str, tmp_path: Path) -> None:
    """Before: ``HttpSource 'http': user_agent must be one line of text`` (the library's words)."""
    result = run("download", "--user-agent", agent, "http://127.0.0.1:9/x", "-o", str(tmp_path))
    assert result.returncode == 2
    assert "argument --user-agent" in result.stderr
    assert "HttpSource" not in result.stderr
    assert "user_agent" not in result.stderr


def _database_urls() -> list[str]:
    port = _free_port()
    return [
        f"postgresql://alice:s3cr3t-pw@127.0.0.1:{port}/records",  # nobody listens
        "postgresql://alice:s3cr3t-pw@127.0.0.1:99999/records",  # no such port
        f"postgresql+nodriver://alice:s3cr3t-pw@127.0.0.1:{port}/records",  # no such driver
        "postgresql://alice:s3cr3t-pw@[::1/records",  # not a URL
        f"mysql://alice:s3cr3t-pw@127.0.0.1:{port}/records",  # a driver not installed
    ]


@pytest.mark.parametrize("command", ["download", "status"])
def test_a_records_database_it_cannot_use_is_one_line_without_its_password(
    command: str, tmp_path: Path
) -> None:
    """Before: ``download --db`` printed ``cannot use the records database
    postgresql://alice:<password>@...``; ``status --db`` with an unknown driver ended in
    a traceback, and with a malformed URL said ``invalid literal for int()``."""
    for url in _database_urls():
        args = (
            ["http://127.0.0.1:9/x", "-o", str(tmp_path / "out")] if command == "download" else []
        )
        result = run(command, *args, "--db", url)
        assert result.returncode in (1, 2), (url, result.stderr)
        assert "s3cr3t" not in result.stdout + result.stderr, url
        assert "Traceback" not in result.stderr, url
        assert "invalid literal" not in result.stderr, url
        assert result.stderr.startswith(f"regisseur {command}: "), (url, result.stderr)
        assert "alice:[REDACTED]@" in result.stderr, (url, result.stderr)


@pytest.mark.parametrize("header", ["Range: bytes=0-99", "if-range: x"])
def test_a_header_the_downloader_sets_itself_is_refused_naming_it(
    header: str, tmp_path: Path
) -> None:
    """Before: ``--header 'Range: bytes=0-99'`` was sent, and the download failed with
    ``HTTP 206 Partial Content``."""
    result = run("download", "--header", header, "http://127.0.0.1:9/x", "-o", str(tmp_path))
    assert result.returncode == 2
    name = header.partition(":")[0]
    assert f"argument --header: {name!r} is set by regisseur itself" in result.stderr
