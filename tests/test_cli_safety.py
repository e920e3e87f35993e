"""``regisseur download`` (the real entry point) on hostile ground: secrets, links, bounds.

A raw server on 127.0.0.1 (:class:`tests.reliability.test_hostile_http.RawServer`)
answers with exact bytes; each run is a subprocess of the installed CLI.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cli_scripts import patched_cli
from tests.reliability.test_hostile_http import OK, RawServer, http
from tests.reliability.test_http_safety import dribble, endless
from tests.test_cli_download import run

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = ".regisseur-downloads.db"
BODY = b"regisseur " * 1000
SIGNED = "?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=s1gn4ture&sig=s1g&access_token=t0ken"
SECRETS = ("s3cr3t-pw", "AKIAEXAMPLE", "s1gn4ture", "s1g&", "t0ken")


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    yield raw
    raw.close()


def _with_password(url: str) -> str:
    return url.replace("http://", "http://alice:s3cr3t-pw@")


# -- secrets ----------------------------------------------------------------------------


def test_no_password_or_signature_on_any_line_or_in_status(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: the password was printed on the downloading/done/FAILED lines, and
    the signature in the display name (the URL's last segment, query included)."""
    good = _with_password(server.route("/file.bin", http(OK, body=BODY))) + SIGNED
    bad = _with_password(server.route("/gone.bin", http("404 Not Found"))) + SIGNED
    out = tmp_path / "out"
    result = run("download", good, bad, "-o", str(out), "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    printed = result.stdout + result.stderr
    assert "downloading http://alice:[REDACTED]@127.0.0.1" in printed
    assert "done http://alice:[REDACTED]@127.0.0.1" in printed
    assert "FAILED http://alice:[REDACTED]@127.0.0.1" in printed
    assert "X-Amz-Signature=[REDACTED]" in printed
    assert (out / "file.bin").read_bytes() == BODY
    status = run("status", "--db", f"sqlite:///{out / DB_NAME}", "--json")
    assert status.returncode == 0, status.stderr
    table = run("status", "--db", f"sqlite:///{out / DB_NAME}")
    downloads = json.loads(status.stdout)["downloads"]
    assert sorted(d["filename"] for d in downloads) == ["file.bin", "gone.bin"]
    for text in (printed, status.stdout, table.stdout):
        for secret in SECRETS:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize(
    "secret_part",
    [
        ";jsessionid=s3ss10n",  # a Java servlet's session in the path
        "?PHPSESSID=s3ss10n",
        "?sid=s3ss10n",
        "?session=s3ss10n",
        "?session_id=s3ss10n",
        "?sessionid=s3ss10n",
    ],
)
def test_a_session_id_in_the_url_is_never_shown(
    server: RawServer, tmp_path: Path, secret_part: str
) -> None:
    """Before: a session id in a URL (as good as a password while the session
    lives) was printed on every line and shown by ``status``."""
    if secret_part.startswith(";"):  # part of the path the server sees
        url = server.route(f"/file.bin{secret_part}", http(OK, body=BODY))
    else:
        url = server.route("/file.bin", http(OK, body=BODY)) + secret_part
    out = tmp_path / "out"
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    status = run("status", str(out), "--json")
    assert status.returncode == 0, status.stderr
    for text in (result.stdout + result.stderr, status.stdout):
        assert "s3ss10n" not in text, text
        assert "=[REDACTED]" in text, text


# -- the records database in the output directory ---------------------------------------


def test_a_credential_in_the_urls_last_segment_never_becomes_a_file_name(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: ``file.bin;token=...`` (a path parameter) and ``access_token=...``
    named the files: the secret was on the done line, on stdout and in ``ls``."""
    urls = [
        server.route("/dl/file.bin;token=t0ken", http(OK, body=BODY)),
        server.route("/dl/access_token=t0ken", http(OK, body=BODY)),
    ]
    out = tmp_path / "out"
    result = run("download", *urls, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "t0ken" not in result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "access_token=[REDACTED]",
        "file.bin;token=[REDACTED]",
    ]
    status = run("status", str(out), "--json")
    assert status.returncode == 0, status.stderr
    assert "t0ken" not in status.stdout


def test_the_records_database_is_private(server: RawServer, tmp_path: Path) -> None:
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE((out / DB_NAME).stat().st_mode) == 0o600


def test_a_looser_records_database_of_an_earlier_run_is_made_private(
    server: RawServer, tmp_path: Path
) -> None:
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    sqlite3.connect(out / DB_NAME).close()
    (out / DB_NAME).chmod(0o644)
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE((out / DB_NAME).stat().st_mode) == 0o600


def test_a_dangling_link_in_place_of_the_database_is_refused(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: SQLite followed the link and created the database outside the directory."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.db"
    (out / DB_NAME).symlink_to(elsewhere)
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "symbolic link" in result.stderr and DB_NAME in result.stderr
    assert not elsewhere.exists()
    assert not (out / "file.bin").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another user: needs root")
def test_a_records_file_of_another_user_names_the_way_out(
    server: RawServer, tmp_path: Path
) -> None:
    """A folder others may write to (``/tmp``, sticky): another user's
    records file there is refused. Before, the error ended "remove it",
    which the user cannot do in a sticky folder; it also names ``--db``."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "shared"
    out.mkdir(mode=0o1777)
    sqlite3.connect(out / DB_NAME).close()
    os.chown(out / DB_NAME, 65534, 65534)
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "belongs to another user" in result.stderr
    assert "keep this run's records elsewhere: --db FILE" in result.stderr
    records = tmp_path / "mine.db"
    elsewhere = run("download", url, "-o", str(out), "--db", str(records), "--plain")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (out / "file.bin").read_bytes() == BODY


def _other_application(path: Path) -> tuple[Path, bytes]:
    """Another application's SQLite file (rollback journal), and its bytes."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE mine (v TEXT)")
    connection.close()
    return path, path.read_bytes()


def _untouched(other: Path, before: bytes) -> None:
    """Its bytes, its journal mode and its tables are as they were."""
    assert other.read_bytes() == before
    with sqlite3.connect(other) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    connection.close()
    assert tables == [("mine",)]


@pytest.mark.parametrize("which", ["", "-wal", "-journal"])
def test_a_link_to_another_applications_database_is_refused(
    server: RawServer, tmp_path: Path, which: str
) -> None:
    """Before: the other file got regisseur_* tables and WAL mode."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    other, before = _other_application(tmp_path / f"other-app{which}.db")
    (out / f"{DB_NAME}{which}").symlink_to(other)
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "symbolic link" in result.stderr
    _untouched(other, before)
    assert os.path.islink(out / f"{DB_NAME}{which}")


# `python -m regisseur.cli` with the records file swapped for a link to
# another application's database right after the CLI checked it: the window
# between that check and SQLite's own open, held wide open.
_SWAPPED_AFTER_THE_CHECK = patched_cli("""
import os, sys
import regisseur.actors.database as database
claim = database.claim_private_sqlite
def claim_then_swap(path):
    claimed = claim(path)
    os.unlink(path)
    os.symlink(os.environ["OTHER_DB"], path)
    return claimed
database.claim_private_sqlite = claim_then_swap
""")


def test_a_link_swapped_in_after_the_check_is_refused_before_any_write(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: SQLite followed the link, and the other application's file
    got regisseur_* tables and WAL mode."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    other, before = _other_application(tmp_path / "other-app.db")
    result = run(
        "download",
        url,
        "-o",
        str(out),
        script=_SWAPPED_AFTER_THE_CHECK,
        env={**os.environ, "OTHER_DB": str(other)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    _untouched(other, before)
    assert not (out / "file.bin").exists()


@pytest.mark.parametrize("option", ["?nofollow=1", "?nofollow=true", "?timeout=5&nofollow=1"])
def test_records_in_dir_named_with_nofollow_as_the_readme_advises_work(
    server: RawServer, tmp_path: Path, option: str
) -> None:
    """Before: the CLI added its own nofollow=1 to the user's, and the
    database refused the pair ('must be 1 or true, got ('1', '1')')."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = tmp_path / "out"
    out.mkdir()
    db = f"sqlite:///{out / DB_NAME}{option}"
    result = run("download", url, "-o", str(out), "--db", db, "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "file.bin").read_bytes() == BODY
    with sqlite3.connect(out / DB_NAME) as connection:
        assert connection.execute("SELECT count(*) FROM regisseur_downloads").fetchone() == (1,)


def test_a_directory_whose_name_is_not_utf8_is_refused_before_anything_is_written(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: 'cannot use the records database …: surrogates not allowed',
    exit 2; then, once the database opened there, the file was published
    and printed while its record stayed InProgress for good (the records
    keep paths as text, and a Latin-1 name is not)."""
    url = server.route("/file.bin", http(OK, body=BODY))
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    result = run("download", url, "-o", str(out), "--plain", errors="surrogateescape")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "caf\\xe9: the folder's path is not UTF-8 text" in result.stderr
    assert result.stdout == ""
    assert not out.exists()
    assert server.seen == [], "nothing was fetched"


def test_a_hard_link_to_another_applications_database_is_refused(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: a hard link was taken as the records file: the other application's
    database got regisseur_* tables, WAL mode and the URLs with their passwords."""
    url = _with_password(server.route("/file.bin", http(OK, body=BODY)))
    out = tmp_path / "out"
    out.mkdir()
    other, before = _other_application(tmp_path / "other-app.db")
    os.link(other, out / DB_NAME)
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hard link" in result.stderr
    _untouched(other, before)
    assert not (out / "file.bin").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
@pytest.mark.parametrize("which", ["", "-wal", "-journal"])
def test_a_records_file_of_another_user_is_refused(
    server: RawServer, tmp_path: Path, which: str
) -> None:
    """Before: a file another user left (mode 0666) in place of the records or of
    its -wal was used as it was: the password went into a file that user reads
    (a -wal is removed at the end, but read through a descriptor kept open)."""
    url = _with_password(server.route("/file.bin", http(OK, body=BODY)))
    out = tmp_path / "out"
    out.mkdir()
    planted = out / f"{DB_NAME}{which}"
    planted.touch()
    os.chown(planted, 65534, 65534)
    planted.chmod(0o666)
    with planted.open("rb") as held:  # as the other user would keep it open
        result = run("download", url, "-o", str(out), "--plain")
        written = held.read()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "belongs to another user" in result.stderr
    assert b"s3cr3t-pw" not in written
    assert planted.stat().st_uid == 65534
    assert not (out / "file.bin").exists()


# -- bounds ----------------------------------------------------------------------------------


def test_max_size_stops_an_endless_body(server: RawServer, tmp_path: Path) -> None:
    """Before: a body without Content-Length that never ends filled the disk."""
    url = server.route("/endless", endless(http(OK, length=False), b"x" * 65536))
    out = tmp_path / "out"
    result = run("download", url, "-o", str(out), "--plain", "--max-size", "1M")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {url}: body larger than the size limit of 1048576 bytes\n" in result.stderr
    # Nothing of the body is kept: only the records and the owners' lock folder.
    assert sorted(p.name for p in out.iterdir()) == [DB_NAME, f"{DB_NAME}-owners"]


def test_speed_limit_fails_a_dribbling_server(server: RawServer, tmp_path: Path) -> None:
    """Before: one byte every few seconds held the download forever."""
    url = server.route("/slow", dribble(http(OK, {"Content-Length": "5000"}), b"x" * 5000, 0.05))
    out = tmp_path / "out"
    result = run(
        "download", url, "-o", str(out), "--plain", "--retries", "0",
        "--speed-limit", "1K", "--speed-time", "0.5",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {url}: too slow: less than 1024 bytes/s during 0.5s" in result.stderr


def test_max_time_bounds_a_download(server: RawServer, tmp_path: Path) -> None:
    url = server.route("/slow", dribble(http(OK, {"Content-Length": "5000"}), b"x" * 5000, 0.05))
    out = tmp_path / "out"
    result = run("download", url, "-o", str(out), "--plain", "--max-time", "0.5")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED {url}: took longer than the time limit of 0.5 s (received " in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-size", "10X"), "--max-size: not a size: '10X'"),
        (("--max-size", "0"), "--max-size: must be at least 1 byte"),
        (("--speed-limit", "-5"), "--speed-limit: not a size: '-5'"),
        (("--speed-time", "0"), "--speed-time: must be a number of seconds > 0"),
        (("--max-time", "nan"), "--max-time: must be a number of seconds > 0"),
        (("--max-time", "soon"), "--max-time: not a number of seconds: 'soon'"),
        # Before: a traceback (OverflowError), or every download failed with one.
        (("--max-size", "9" * 400), "--max-size: must be at most 8 EiB"),
        (("--speed-limit", "9" * 20), "--speed-limit: must be at most 8 EiB"),
        (("--timeout", "1e10"), "--timeout: must be at most 9223372036 seconds"),
        (("--speed-time", "1e308"), "--speed-time: must be at most 9223372036 seconds"),
        # Before: "HttpSource 'http' retries must be between 0 and 100".
        (("--retries", "101"), "argument --retries: must be between 0 and 100, got 101"),
    ],
)
def test_bad_bounds_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = run("download", "http://127.0.0.1:1/x", "-o", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


# -- what reaches the terminal ---------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m"


def test_terminal_control_sequences_from_a_server_or_a_list_are_shown_not_obeyed(
    server: RawServer, tmp_path: Path
) -> None:
    """Before: a reason phrase (``404 ESC]0;pwned BEL ESC[2J``) and a URL in an -i
    list reached the terminal raw on the downloading, FAILED and status lines:
    the window retitled, the screen cleared."""
    head = f"HTTP/1.1 404 {ESCAPES}Gone\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    hostile = server.route("/hostile", head.encode("latin-1"))
    listed = tmp_path / "urls.txt"
    listed.write_text(server.url("/listed\x1b[31m.bin") + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("download", hostile, "-i", str(listed), "-o", str(out), "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    table = run("status", str(out))
    assert table.returncode == 0, table.stderr
    for printed in (result.stderr, table.stdout):
        assert not any(char in printed for char in "\x1b\x07\x9b"), printed
    assert "HTTP 404 \\x1b]0;pwned\\x07\\x1b[2J\\x9b31mGone" in result.stderr
    assert "listed\\x1b[31m.bin" in result.stderr
    assert "\\x1b]0;pwned" in table.stdout


#: Invisible characters that reorder or hide what a terminal shows (the
#: "Trojan Source" bidi overrides and isolates, zero-width characters).
BIDI = "\u202e\u2066\u200b\u200f"


def test_bidi_overrides_from_a_list_are_shown_not_obeyed(server: RawServer, tmp_path: Path) -> None:
    """Before: a right-to-left override in a URL of an -i list reached the
    terminal on the downloading, FAILED and status lines, so that
    ``/\\u202egnp.exe`` showed as ``/exe.png`` (file names already drop
    these characters). Each is shown as ``\\uNNNN``."""
    listed = tmp_path / "urls.txt"
    listed.write_text(server.url(f"/listed{BIDI}gnp.exe") + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("download", "-i", str(listed), "-o", str(out), "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    table = run("status", str(out))
    assert table.returncode == 0, table.stderr
    for printed in (result.stderr, table.stdout):
        assert not any(char in printed for char in BIDI), printed
        assert "listed\\u202e\\u2066\\u200b\\u200fgnp.exe" in printed, printed
