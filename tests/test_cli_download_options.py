"""``regisseur download``'s options, run as a subprocess against a local server.

URL lists (``-i``), what goes to stdout and stderr (``-q``), request
headers, ``--version``, clear errors for an unusable ``-o``, URLs with
spaces, and what "already downloaded" checks on disk.
"""

from __future__ import annotations

import http.server
import os
import re
import socket
import threading
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy

from tests.serving import serving
from tests.test_cli_download import run

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = ".regisseur-downloads.db"
pytestmark = pytest.mark.timeout(120)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, dict(self.headers.items())))
        if self.path.endswith("busy.bin"):  # always 503, retry at once (or in 1 s)
            self.send_response(503)
            self.send_header("Retry-After", "1" if self.path.endswith("/slow-busy.bin") else "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.endswith("/short.bin"):  # promises 5000 bytes, sends 1000, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"s" * 1000)
            self.close_connection = True
            return
        body = self.server.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def serve(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _headers in self.seen]


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server()
    with serving(server):
        yield server


# -- URL lists ---------------------------------------------------------------------


def _download_list(tmp_path: Path, listing: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``download -i`` of a file holding ``listing``, into ``tmp_path/out``: it succeeded."""
    urls = tmp_path / "urls.txt"
    urls.write_text(listing)
    out = tmp_path / "out"
    result = run("download", "-i", str(urls), "-o", str(out), "--plain")
    assert result.returncode == 0, result.stderr
    return result, out


def test_input_file_skips_blank_lines_and_comments(server: _Server, tmp_path: Path) -> None:
    a, b, c = (server.serve(f"/{n}.txt", n.encode() * 100) for n in "abc")
    result, out = _download_list(
        tmp_path, f"# my list\n{a}\n\n   {b}  \n# {c} is not wanted\n{a}\n"
    )
    assert sorted(server.paths()) == ["/a.txt", "/b.txt"]
    assert result.stdout.splitlines() == [str(out / "a.txt"), str(out / "b.txt")]


def test_a_comment_after_a_url_on_its_line_is_skipped(server: _Server, tmp_path: Path) -> None:
    """Before: ``URL  # the mirror`` was fetched as ``URL%20%20#%20the%20mirror``
    (a 404, the comment percent-encoded into the path). A ``#`` after
    whitespace starts a comment; one inside a URL is its fragment."""
    a, b = server.serve("/a.txt", b"a" * 10), server.serve("/b.txt", b"b" * 10)
    result, out = _download_list(tmp_path, f"{a}  # the first\n{b}#part\t# the second\n")
    assert sorted(server.paths()) == ["/a.txt", "/b.txt"]
    assert result.stdout.splitlines() == [str(out / "a.txt"), str(out / "b.txt")]
    assert "%20" not in result.stderr


def test_a_url_and_the_same_with_a_fragment_are_one_download(
    server: _Server, tmp_path: Path
) -> None:
    """The fragment is never sent (curl and wget drop it). Before, ``a.bin``
    and ``a.bin#x`` were two downloads of one file, the second saved as
    ``a (1).bin``, and a later run naming it ``a.bin#y`` fetched it again."""
    url = server.serve("/a.bin", b"a" * 100)
    first = run("download", url, f"{url}#x", "-o", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{tmp_path / 'a.bin'}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(DB_NAME)) == ["a.bin"]
    again = run("download", f"{url}#y", "-o", str(tmp_path), "--plain")
    assert again.returncode == 0, again.stderr
    assert f"already downloaded {url} -> {tmp_path / 'a.bin'}" in again.stderr
    assert server.paths() == ["/a.bin"]


def test_input_from_stdin_and_arguments_together(server: _Server, tmp_path: Path) -> None:
    a, b = server.serve("/a.txt", b"a"), server.serve("/b.txt", b"b")
    result = run("download", a, "-i", "-", "-o", str(tmp_path), stdin=f"{b}\n{a}\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# nothing here\n\n", "no URLs in -i"),
        (None, "cannot read -i"),
        (b"\xff\xfe\x00bad", "not UTF-8 text"),
    ],
)
def test_unusable_input_files_exit_2(tmp_path: Path, content: Any, message: str) -> None:
    listing = tmp_path / "urls.txt"
    if isinstance(content, str):
        listing.write_text(content)
    elif isinstance(content, bytes):
        listing.write_bytes(content)
    out = tmp_path / "out"
    result = run("download", "-i", str(listing), "-o", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists(), "nothing started"


def test_no_urls_at_all_exit_2(tmp_path: Path) -> None:
    result = run("download", "-o", str(tmp_path))
    assert result.returncode == 2
    assert "no URLs: give them as arguments or in a file with -i FILE" in result.stderr


# -- what goes where ------------------------------------------------------------------


def test_progress_on_stderr_results_on_stdout(server: _Server, tmp_path: Path) -> None:
    good, gone = server.serve("/good.bin", os.urandom(5000)), server.url("/gone.bin")
    result = run("download", good, gone, "-o", str(tmp_path), "--plain")
    assert result.returncode == 1
    assert result.stdout == f"{tmp_path / 'good.bin'}\n"
    assert f"downloading {good}" in result.stderr
    assert f"done {good} -> {tmp_path / 'good.bin'}" in result.stderr
    assert f"FAILED {gone}: HTTP 404" in result.stderr
    assert "1 of 2 download(s) done" in result.stderr


def test_quiet_prints_only_failures_and_results(server: _Server, tmp_path: Path) -> None:
    good, gone = server.serve("/good.bin", b"x" * 5000), server.url("/gone.bin")
    result = run("download", "-q", good, "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (f"{tmp_path / 'good.bin'}\n", "")
    again = run("download", "--quiet", good, gone, "-o", str(tmp_path))
    assert again.returncode == 1
    assert again.stdout == f"{tmp_path / 'good.bin'}\n"
    assert again.stderr.splitlines() == [f"FAILED {gone}: HTTP 404 Not Found"]


def test_a_mixed_batch_says_each_failure_once_and_lists_only_the_files(
    server: _Server, tmp_path: Path
) -> None:
    """What a script reads after a batch: stdout the files, stderr one line a
    failure, each naming its URL once, also after retries (the attempts were
    appended after the URL the error ends with, and "bytes from URL" kept it)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/refused.bin"
    good, gone = server.serve("/good.bin", b"x" * 5000), server.url("/gone.bin")
    busy, short = server.url("/busy.bin"), server.url("/short.bin")
    listed = "\n".join([good, gone, refused, busy, short]) + "\n"
    result = run("download", "-q", "-i", "-", "-o", str(tmp_path), "--retries", "1", stdin=listed)
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"{tmp_path / 'good.bin'}\n"
    assert result.stderr.splitlines() == [
        f"FAILED {gone}: HTTP 404 Not Found",
        f"FAILED {refused}: connection failed (Connection refused) (after 2 attempts)",
        f"FAILED {busy}: HTTP 503 Service Unavailable (after 2 attempts)",
        f"FAILED {short}: truncated: received 1000 of 5000 bytes (after 2 attempts)",
    ]


def test_each_retry_is_a_line_so_a_waiting_run_does_not_look_stuck(
    server: _Server, tmp_path: Path
) -> None:
    """Before: a retry was said nowhere; a server answering 429 with a long
    ``Retry-After`` held the run silent for minutes (300 s a retry)."""
    busy = server.url("/busy.bin").replace("http://", "http://alice:t0ken@")
    result = run("download", busy, "-o", str(tmp_path), "--retries", "2", "--plain")
    assert result.returncode == 1, result.stderr
    shown = busy.replace("t0ken", "[REDACTED]")  # the URL's password
    lines = result.stderr.splitlines()
    for attempt in (2, 3):
        line = f"retrying {shown} in 0 s (attempt {attempt} of 3): HTTP 503 Service Unavailable"
        assert line in lines, result.stderr
    assert "t0ken" not in result.stderr
    assert lines[-2] == f"FAILED {shown}: HTTP 503 Service Unavailable (after 3 attempts)"


# A program that calls main() beside a system of its own, whose download
# retries every second (503, Retry-After: 1) while main() runs (2 s at least).
_BESIDE = """
import logging, signal, sys, threading
from regisseur.actors import ActorSystem
from regisseur.actors.downloads.http import HttpSource
from regisseur.cli import main

theirs, mine, folder, their_folder = sys.argv[1:]
retries = []
retried = threading.Event()

class Count(logging.Handler):
    def emit(self, record):
        if getattr(record, "event", None) == "download_retry":
            retries.append(record.fields["url"])
            retried.set()

logging.getLogger("regisseur").addHandler(Count())
source = HttpSource("app", directory=their_folder, retries=100)
with ActorSystem(name="app", database_url=None, download_sources=[source]) as own:
    download_id = own.downloads.submit("app", theirs, "theirs.bin")
    assert retried.wait(30), "the program's own download never retried"
    before = retries.count(theirs)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    code = main(["download", mine, "-o", folder, "--retries", "2", "--plain"])
    during = retries.count(theirs) - before
    kept = signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    own.downloads.cancel(download_id)
print(f"exit {code}, their retries meanwhile: {during}, mask kept: {kept}", file=sys.stderr)
"""


def test_a_program_calling_main_beside_its_own_system_sees_only_the_runs_retries(
    server: _Server, tmp_path: Path
) -> None:
    """Before: the retry lines came from the process-wide ``regisseur``
    logger, so the run showed the retries of the program's own system too.
    The caller's signal mask is as it was after main() (its system's
    threads block the signals, not the caller's)."""
    theirs = server.url("/theirs/slow-busy.bin")
    mine = server.url("/mine/slow-busy.bin")
    result = run(theirs, mine, str(tmp_path / "mine"), str(tmp_path / "theirs"), script=_BESIDE)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    said = re.fullmatch(r"exit (\d+), their retries meanwhile: (\d+), mask kept: (\w+)", lines[-1])
    assert said is not None, result.stderr
    code, during, kept = said.groups()
    assert kept == "True", "main() left the caller's signal mask changed"
    assert code == "1", result.stderr
    assert int(during) > 0, "the program's own system did not retry while main() ran"
    assert "retrying " + theirs not in result.stderr
    for attempt in (2, 3):
        line = f"retrying {mine} in 1 s (attempt {attempt} of 3): HTTP 503 Service Unavailable"
        assert line in lines, result.stderr
    assert sum(line.startswith("retrying ") for line in lines) == 2, result.stderr


# A program that turns off the thread fields of its log records (a documented
# logging switch: ``logging.logThreads``) and then calls main().
_NO_THREAD_FIELDS = """
import logging, sys
from regisseur.cli import main

logging.logThreads = False
sys.exit(main(["download", sys.argv[1], "-o", sys.argv[2], "--retries", "1", "--plain"]))
"""


def test_the_retry_lines_show_when_log_records_carry_no_thread(
    server: _Server, tmp_path: Path
) -> None:
    """Before: the run told its own retries by the record's ``thread``, which
    is None when the program set ``logging.logThreads = False``: no retry
    line at all. The handler runs on the thread that logged, so it asks that."""
    busy = server.url("/busy.bin")
    result = run(busy, str(tmp_path), script=_NO_THREAD_FIELDS)
    assert result.returncode == 1, result.stderr
    line = f"retrying {busy} in 0 s (attempt 2 of 2): HTTP 503 Service Unavailable"
    assert line in result.stderr.splitlines(), result.stderr


@pytest.mark.parametrize("where", [(), ("download",)])
def test_version(where: tuple[str, ...]) -> None:
    result = run(*where, "--version")
    assert result.returncode == 0
    assert result.stdout == f"regisseur {version('regisseur')}\n"


# -- request headers ----------------------------------------------------------------


def test_headers_and_user_agent_are_sent(server: _Server, tmp_path: Path) -> None:
    url = server.serve("/h.bin", b"h")
    plain = run("download", url, "-o", str(tmp_path / "1"))
    assert plain.returncode == 0, plain.stderr
    custom = run(
        "download",
        url,
        "-o",
        str(tmp_path / "2"),
        "--header",
        "Authorization: Bearer s3cret",
        "--header=X-Trace:  42 ",
        "--user-agent",
        "mirror-bot/1.0",
    )
    assert custom.returncode == 0, custom.stderr
    (_, first), (_, second) = server.seen
    assert first["User-Agent"] == f"regisseur/{version('regisseur')}"
    assert second["User-Agent"] == "mirror-bot/1.0"
    assert (second["Authorization"], second["X-Trace"]) == ("Bearer s3cret", "42")
    assert "s3cret" not in custom.stdout + custom.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--header", "Bearer s3cret"), "expected 'Name: value'"),
        (("--header", "Bad Name: s3cret"), "'Bad Name' is not a valid HTTP header name"),
        (("--header", "X-A: 1", "--header", "x-a: s3cret"), "--header x-a is given twice"),
        (
            ("--header", "User-Agent: a", "--user-agent", "b"),
            "--user-agent and --header 'User-Agent: ...' both set",
        ),
        # Before: accepted; each download then FAILED as a "malformed URL" whose
        # text held the value.
        (
            ("--header", "Authorization: Bearer s3cret\u20ac"),
            "the value of header 'Authorization' has a character that is not Latin-1",
        ),
        (("--header", "X-A: s3cret\x1b"), "the value of header 'X-A' has a control character"),
        (("--user-agent", "s3cret/\u20ac"), "--user-agent: has a character that is not Latin-1"),
        # Before: sent; the next download on the connection then failed (HTTP 400).
        (("--header", "Content-Length: 5"), "'Content-Length' frames a request body"),
        (("--header", "Transfer-Encoding: s3cret"), "'Transfer-Encoding' frames a request body"),
    ],
)
def test_bad_headers_exit_2_without_echoing_the_value(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run("download", "http://127.0.0.1:9/x", *args, "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "s3cret" not in result.stderr
    assert not (tmp_path / "out").exists()


# -- timeouts ------------------------------------------------------------------------


def test_timeout_bounds_a_server_that_never_answers(tmp_path: Path) -> None:
    """Before: ``--timeout`` (wget's, curl's ``--connect-timeout``) was refused, exit 2."""
    import socket
    import time

    with socket.socket() as silent:  # the kernel accepts; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/never.bin"
        started = time.monotonic()
        result = run("download", url, "-o", str(tmp_path), "--retries", "0", "--timeout", "0.5")
        took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert f"FAILED {url}: no response within 0.5s\n" in result.stderr
    assert took < 20, "the default read timeout is 30 s: --timeout was not applied"


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be a number of seconds > 0"), ("soon", "not a number of seconds: 'soon'")],
)
def test_bad_timeouts_exit_2(tmp_path: Path, value: str, message: str) -> None:
    result = run("download", "http://127.0.0.1:9/x", "--timeout", value, "-o", str(tmp_path))
    assert result.returncode == 2
    assert f"--timeout: {message}" in result.stderr


# -- clear errors --------------------------------------------------------------------


def _unwritable_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root ignores modes)."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked
    for candidate in (Path("/sys/kernel"), Path("/sys"), Path("/proc/self")):
        try:
            os.close(os.open(candidate / ".probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except OSError:
            return candidate
        os.unlink(candidate / ".probe")
    pytest.skip("no directory here that root cannot write to")


def test_an_unwritable_output_directory_is_named_plainly(tmp_path: Path) -> None:
    directory = _unwritable_directory(tmp_path)
    result = run("download", "http://127.0.0.1:9/x", "-o", str(directory))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"regisseur download: cannot write to {directory}: ")
    assert line.split(": ")[-1] in ("permission denied", "read-only file system")


def test_output_naming_a_file_is_named_plainly(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    result = run("download", "http://127.0.0.1:9/x", "-o", str(a_file))
    assert result.returncode == 2
    assert result.stderr == f"regisseur download: -o {a_file} is a file, not a directory\n"
    below = run("download", "http://127.0.0.1:9/x", "-o", str(a_file / "sub"))
    assert below.returncode == 2
    assert below.stderr == (
        f"regisseur download: cannot create {a_file / 'sub'}: {a_file} is a file, not a directory\n"
    )
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_output_naming_a_broken_symbolic_link_says_so(tmp_path: Path, kind: str) -> None:
    """Before: ``-o LINK exists and is not a directory``, for a link to nowhere."""
    link = tmp_path / "data"
    link.symlink_to(tmp_path / "gone" if kind == "dangling" else link)
    result = run("download", "http://127.0.0.1:9/x", "-o", str(link))
    assert result.returncode == 2
    why = "which does not exist" if kind == "dangling" else "which loops"
    target = tmp_path / "gone" if kind == "dangling" else link
    assert result.stderr == (
        f"regisseur download: -o {link} is a symbolic link to {target}, {why}\n"
    )


def test_an_unusable_records_database_is_named_without_jargon(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).mkdir()  # where the database file should be
    result = run("download", "http://127.0.0.1:9/x", "-o", str(tmp_path))
    assert result.returncode == 2
    # Refused before SQLite sees it (the records database is opened privately,
    # never through a link): the path and the OS's reason, in the words the
    # README gives for a records database it cannot write, no library jargon.
    assert result.stderr == (
        f"regisseur download: cannot write to the records database {tmp_path / DB_NAME}: "
        "is a directory\n"
    )
    assert "sqlalchemy" not in result.stderr.lower()


#: SQLAlchemy 2.0 reads no quoting in a SQLite file's name: no URL names a ``?`` in it.
_URL_QUOTING = tuple(int(part) for part in sqlalchemy.__version__.split(".")[:2]) >= (2, 1)


@pytest.mark.parametrize("name", ["what?", "100%25", "p%2Fq", "a#b", "données"])
def test_an_output_directory_named_with_url_characters_keeps_its_records_in_it(
    server: _Server, tmp_path: Path, name: str
) -> None:
    """Before: the records' SQLite URL was the path pasted after ``sqlite:///``:
    ``-o 'what?'`` kept its records in ``what``, a file beside the directory
    (the rest read as the URL's query, ``nofollow`` with it), and ``%25`` or
    ``%2F`` in a name was decoded (``-o 'p%2Fq'``: no such file ``p/q/...``).
    The first fix quoted every such character, which SQLAlchemy 2.0 (the
    newest on Python 3.10) does not decode: there ``what?``, ``100%25`` and
    ``données`` failed with "no such file or directory"."""
    url = server.serve("/d.bin", b"d" * 100)
    out = tmp_path / "parent" / name
    if "?" in name and not _URL_QUOTING:
        refused = run("download", url, "-o", str(out), "--plain")
        assert refused.returncode == 2, refused.stderr
        assert "cannot be named in a database URL" in refused.stderr
        assert "rename it or choose another" in refused.stderr
        # -o may have been made (and its records file, empty): nothing beside it.
        assert not (tmp_path / "parent" / "what").exists()
        assert all(p.parent == out for p in tmp_path.rglob(f"*{DB_NAME}*"))
        return
    result = run("download", url, "-o", str(out), "--plain")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out / 'd.bin'}\n"
    assert (out / DB_NAME).is_file()
    assert sorted(p.name for p in (tmp_path / "parent").iterdir()) == [name]  # nothing beside
    again = run("download", url, "-o", str(out), "--plain")
    assert f"already downloaded {url} -> {out / 'd.bin'}" in again.stderr, again.stderr
    table = run("status", str(out))
    assert table.returncode == 0, table.stderr
    assert table.stderr == ""  # no warning about a query the driver ignores
    assert url in table.stdout
    records = tmp_path / "parent" / f"{name}.db"  # --db FILE with the same characters
    kept = run("download", url, "-o", str(tmp_path / "other"), "--db", str(records))
    assert kept.returncode == 0, kept.stderr
    assert records.is_file()
    assert url in run("status", "--db", str(records)).stdout


def test_db_takes_a_plain_file_path(server: _Server, tmp_path: Path) -> None:
    url = server.serve("/d.bin", b"d")
    result = run("download", url, "-o", str(tmp_path / "out"), "--db", str(tmp_path / "rec.db"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rec.db").is_file()
    assert not (tmp_path / "out" / DB_NAME).exists()


def test_a_url_with_spaces_is_sent_percent_encoded(server: _Server, tmp_path: Path) -> None:
    server.serve("/my%20report%202.txt", b"report")
    result = run("download", server.url("/my report 2.txt"), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert server.paths() == ["/my%20report%202.txt"]
    assert (tmp_path / "my report 2.txt").read_bytes() == b"report"


def test_a_url_ending_in_a_slash_is_saved_as_index_html(server: _Server, tmp_path: Path) -> None:
    """As wget and aria2c name it (before: ``docs``, and the host's name for
    ``/``); a second one in the same folder gets a number (which one: the one
    published second, the two run at once)."""
    server.serve("/docs/", b"<p>docs</p>")
    server.serve("/", b"<p>home</p>")
    result = run("download", server.url("/docs/"), server.url("/"), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.splitlines()]  # in the URLs' order
    assert [path.read_bytes() for path in paths] == [b"<p>docs</p>", b"<p>home</p>"]
    assert sorted(path.name for path in paths) == ["index (1).html", "index.html"]
    assert {path.parent for path in paths} == {tmp_path}


# -- already downloaded? --------------------------------------------------------------


def test_a_file_changed_or_gone_since_is_downloaded_again(server: _Server, tmp_path: Path) -> None:
    url = server.serve("/data.bin", b"0123456789" * 100)
    first = run("download", url, "-o", str(tmp_path), "--plain")
    assert first.returncode == 0, first.stderr
    path = tmp_path / "data.bin"

    same = run("download", url, "-o", str(tmp_path), "--plain")
    assert f"already downloaded {url} -> {path}" in same.stderr
    assert same.stdout == f"{path}\n"
    assert len(server.seen) == 1

    path.write_bytes(b"truncated")
    changed = run("download", url, "-o", str(tmp_path), "--plain")
    assert changed.returncode == 0, changed.stderr
    assert f"downloading {url} again: {path} has 9 bytes, not the 1000 downloaded" in (
        changed.stderr
    )
    assert len(server.seen) == 2
    assert path.read_bytes() == b"truncated", "a file someone changed is never overwritten"
    [again] = changed.stdout.splitlines()
    assert Path(again).read_bytes() == b"0123456789" * 100

    Path(again).unlink()
    gone = run("download", url, "-o", str(tmp_path), "--plain")
    assert gone.returncode == 0, gone.stderr
    assert f"downloading {url} again: {again} is gone" in gone.stderr
    assert len(server.seen) == 3


def test_a_file_that_no_longer_has_the_given_sha256_is_downloaded_again(
    server: _Server, tmp_path: Path
) -> None:
    import hashlib

    body = b"abcdefghij" * 100
    url = server.serve("/data.bin", body)
    digest = hashlib.sha256(body).hexdigest()
    first = run("download", url, "-o", str(tmp_path), "--sha256", digest)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "data.bin"
    path.write_bytes(body.upper())  # same size, other bytes
    again = run("download", url, "-o", str(tmp_path), "--sha256", digest, "--plain")
    assert again.returncode == 0, again.stderr
    assert f"downloading {url} again: the sha256 of {path} is " in again.stderr
    assert len(server.seen) == 2
    assert Path(again.stdout.strip()).read_bytes() == body


# -- start-up: a download loads only what it uses ---------------------------------------

_PROBE = """
import sys
from regisseur.cli import main
code = main(sys.argv[1:])
unwanted = ("sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "psycopg", "rich",
            "regisseur.actors.cluster.schema", "regisseur.actors.cluster.node",
            "regisseur.actors.downloads.cluster_keeper", "regisseur.actors.service",
            "regisseur.messages.cluster", "regisseur.messages.service")
print(sorted(name for name in unwanted if name in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def test_a_download_does_not_load_cluster_mode_the_orm_or_the_bars(
    server: _Server, tmp_path: Path
) -> None:
    url = server.serve("/small.bin", b"s" * 16384)
    result = run("download", url, "-o", str(tmp_path), script=_PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "[]"


def test_version_and_help_do_not_load_the_runtime() -> None:
    probe = (
        "import sys\nfrom regisseur.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'requests') if m in sys.modules))"
    )
    for args in (["--version"], ["download", "--help"], ["--help"]):
        result = run(*args, script=probe)
        assert result.stdout.splitlines()[-1] == "[]", (args, result.stdout, result.stderr)


# -- --no-fsync -----------------------------------------------------------------------

# The console script, counting the os.fsync calls on files in the -o directory.
_COUNTING_FSYNCS = """
import os, sys
out = os.path.realpath(sys.argv[sys.argv.index("-o") + 1])
synced = []
real = os.fsync
def counting(fd):
    synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    return real(fd)
os.fsync = counting
from regisseur.cli._main import console_main
try:
    code = console_main()
finally:
    mine = [p for p in synced if p == out or p.startswith(out + os.sep)]
    print(f"fsynced in -o: {len(mine)}", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(("option", "synced"), [((), True), (("--no-fsync",), False)])
def test_no_fsync_leaves_the_files_to_the_kernel(
    server: _Server, tmp_path: Path, option: tuple[str, ...], synced: bool
) -> None:
    urls = [server.serve(f"/{n}.bin", n.encode() * 1000) for n in ("a", "b")]
    result = run("download", *urls, "-o", str(tmp_path), *option, script=_COUNTING_FSYNCS)
    assert result.returncode == 0, result.stderr
    assert [Path(p).read_bytes()[:1] for p in result.stdout.split()] == [b"a", b"b"]
    count = int(result.stderr.rsplit("fsynced in -o: ", 1)[1].split()[0])
    if synced:
        assert count >= 2, result.stderr  # each file, and the directory
    else:
        assert count == 0, result.stderr
