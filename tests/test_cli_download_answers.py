"""``regisseur download`` against URLs and answers a demanding user meets, as a subprocess.

URLs no download can take are refused before anything is queued (or
sent as curl sends them); a broken answer (a head cut short, a transfer
coding nobody asked for) is a failure, never a ``done`` file; an
informational answer (``103 Early Hints``) is passed over as curl passes
it. The server writes each answer byte for byte as the test says.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.serving import nginx, serving
from tests.test_cli_download import run

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(120)

DB_NAME = ".regisseur-downloads.db"


class _Raw(http.server.BaseHTTPRequestHandler):
    """Writes ``server.answers[path]`` as it is (a 404 for other paths), then
    closes the connection unless the path is in ``server.keep``; an answer
    that is a ``bytes`` body is sent as a plain 200 with its length (kept
    alive)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, dict(self.headers.items())))
        answer = self.server.answers.get(self.path)
        if isinstance(answer, bytes):
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        if answer is None:
            answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        self.wfile.write(answer.encode("latin-1"))
        self.wfile.flush()
        self.close_connection = self.path not in self.server.keep

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.answers: dict[str, str | bytes] = {}
        self.keep: set[str] = set()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Raw)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.seen]


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server()
    with serving(server):
        yield server


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(DB_NAME))


# -- URLs ---------------------------------------------------------------------------


def test_a_url_too_long_to_record_is_refused_before_anything_is_queued(
    server: _Server, tmp_path: Path
) -> None:
    """Before: the URLs above it were queued, then the run ended with
    ``ValueError: target_id is 9031 characters long`` (exit 1), leaving them
    ``Initializing, stopped``."""
    server.answers["/a.bin"] = b"a"
    listing = tmp_path / "urls.txt"
    long_url = server.url("/a.bin?q=" + "x" * 9000)
    listing.write_text(f"{server.url('/a.bin')}\n\n{long_url}\n")
    out = tmp_path / "out"
    result = run("download", "--plain", "-i", str(listing), "-o", str(out))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"regisseur download: line 3 of -i {listing}: the URL is {len(long_url)} characters "
        "long; the limit is 8192"
    ]
    assert server.paths() == []
    assert not (out / DB_NAME).exists()
    result = run("download", "--plain", "-o", str(out), server.url("/a.bin"), long_url)
    assert result.returncode == 2
    assert "URL argument 2: the URL is" in result.stderr


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        # As curl sends the byte (typed in a Latin-1 terminal). Before:
        # "ValueError: target_id is not valid text" ended the run.
        ("/caf\udce9.txt", "/caf%E9.txt"),
        # Its shown name was '  ', which a submit refuses. Before:
        # "ValueError: display_name must not be empty" ended the run.
        ("/docs/%20%20", "/docs/%20%20"),
    ],
    ids=["byte-not-utf8", "blank-last-segment"],
)
def test_a_url_no_record_could_take_before_is_downloaded_with_the_others(
    server: _Server, tmp_path: Path, given: str, sent: str
) -> None:
    """Before, the run ended at that URL with the URLs before it queued and
    never fetched."""
    server.answers["/ok.txt"] = b"ok"
    server.answers[sent] = b"other"
    given_urls = (server.url("/ok.txt"), server.url(given))
    result = run("download", "--plain", "-o", str(tmp_path), *given_urls)
    assert result.returncode == 0, result.stderr
    assert sorted(server.paths()) == sorted(["/ok.txt", sent])
    assert [Path(line).read_bytes() for line in result.stdout.splitlines()] == [b"ok", b"other"]


# -- answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        "HTTP/1.1 200 OK\r\nContent-Ty",  # cut in a header line
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",  # cut after one
        "HTTP/1.1 200 OK\r\n",  # cut after the status line
    ],
)
def test_an_answer_whose_headers_are_cut_short_fails_and_is_retried(
    server: _Server, tmp_path: Path, head: str
) -> None:
    """A server that dies while it sends its headers. Before: http.client
    took the close for the blank line, the answer for a body read to the
    close, and the run said ``done ... (?)`` of an empty file, exit 0."""
    server.answers["/cut.bin"] = head
    result = run(
        "download", "--plain", "--retries", "1", "-o", str(tmp_path), server.url("/cut.bin")
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"FAILED {server.url('/cut.bin')}: connection failed (RemoteDisconnected: the "
        "connection closed in the middle of the headers) (after 2 attempts)"
    ) in result.stderr.splitlines()
    assert server.paths() == ["/cut.bin", "/cut.bin"]
    assert result.stdout == ""
    assert _files(tmp_path) == []


def test_informational_answers_before_the_answer_are_passed_over(
    server: _Server, tmp_path: Path
) -> None:
    """``103 Early Hints`` (and a ``100 Continue``) before the real answer, as
    curl, wget and aria2c take them. Before: ``FAILED ...: HTTP 103 Early
    Hints``, the real answer left in the connection for the next request."""
    server.answers["/hinted.txt"] = (
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhinted"
    )
    server.keep.add("/hinted.txt")
    server.answers["/next.txt"] = b"next"
    result = run(
        "download", "--plain", "-j", "1", "-o", str(tmp_path),
        server.url("/hinted.txt"), server.url("/next.txt"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [Path(line).read_bytes() for line in result.stdout.splitlines()] == [b"hinted", b"next"]


def test_a_body_in_a_transfer_coding_that_cannot_be_read_fails(
    server: _Server, tmp_path: Path
) -> None:
    """``Transfer-Encoding: gzip, chunked`` (never asked for). Before: the
    chunk sizes and the coded bytes were saved as the file, ``done``."""
    server.answers["/coded.txt"] = (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    server.answers["/plain.txt"] = (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 99\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n"
    )
    result = run(
        "download",
        "--plain",
        "-o",
        str(tmp_path),
        server.url("/coded.txt"),
        server.url("/plain.txt"),
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"FAILED {server.url('/coded.txt')}: the server sent the body in a transfer coding "
        "that cannot be read (Transfer-Encoding: gzip, chunked; only chunked can)"
    ) in result.stderr.splitlines()
    assert server.paths().count("/coded.txt") == 1  # not retried: it would come the same
    assert _files(tmp_path) == ["plain.txt"]
    assert (tmp_path / "plain.txt").read_bytes() == b"hello"


# -- HTTPS against nginx -------------------------------------------------------------


def _certificate(folder: Path, name: str, *, days: int = 2) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (a DNS name or an IP): (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    kind = "IP" if name[0].isdigit() else "DNS"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days)]
        + ["-subj", f"/CN={name}", "-addext", f"subjectAltName={kind}:{name}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("name", ["127.0.0.1", "wrong.example"])
def test_ca_certificate_trusts_a_private_ca_and_a_wrong_name_still_fails(
    tmp_path: Path, name: str
) -> None:
    """``--ca-certificate FILE`` (wget's option; curl's ``--cacert``): before,
    only ``REQUESTS_CA_BUNDLE`` could name it. A certificate for another name
    fails with the reason, once (not retried), exit 1, no traceback."""
    served = tmp_path / "www"
    served.mkdir()
    (served / "a.bin").write_bytes(b"tls body")
    cert, key = _certificate(tmp_path, name)
    tls = f"ssl_certificate {cert}; ssl_certificate_key {key};"
    with nginx(tmp_path, served, listen="ssl", server=tls) as port:
        url = f"https://127.0.0.1:{port}/a.bin"
        untrusted = run("download", "--plain", "-o", str(tmp_path / "no"), url)
        trusted = run(
            "download", "--plain", "-o", str(tmp_path / "out"), "--ca-certificate", str(cert), url
        )
        log = (tmp_path / "access.log").read_text()
    assert untrusted.returncode == 1
    assert "self-signed certificate" in untrusted.stderr
    assert "Traceback" not in untrusted.stderr + trusted.stderr
    if name == "wrong.example":
        assert trusted.returncode == 1
        assert (
            f"FAILED {url}: TLS error ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
            "failed: IP address mismatch, certificate is not valid for '127.0.0.1'."
        ) in trusted.stderr
        assert "retrying" not in trusted.stderr
        assert "GET /a.bin" not in log
    else:
        assert trusted.returncode == 0, trusted.stderr
        assert Path(trusted.stdout.strip()).read_bytes() == b"tls body"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read {path}: no such file or directory"),
        ("not a certificate\n", "{path} holds no PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)"),
    ],
)
def test_an_unusable_ca_certificate_exits_2_before_anything_starts(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    result = run("download", "--ca-certificate", str(path), "-o", str(out), "https://h.invalid/")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"regisseur download: error: argument --ca-certificate: {message.format(path=path)}"
    )
    assert not out.exists()


# -- proxies -------------------------------------------------------------------------


def test_a_proxy_that_fails_is_named_with_its_password_redacted(tmp_path: Path) -> None:
    """Before: ``connection failed (Connection refused)``, blaming a server
    that was never asked. The proxy's password is never shown or stored."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "http_proxy": f"http://puser:pr0xy-s3cret@127.0.0.1:{port}",
        "no_proxy": "",
    }
    out = tmp_path / "out"
    result = run(
        "download", "--plain", "--retries", "0", "-o", str(out), "http://h.invalid/a.bin", env=env
    )
    assert result.returncode == 1
    assert (
        f"FAILED http://h.invalid/a.bin: the proxy http://puser:[REDACTED]@127.0.0.1:{port} "
        "failed (Connection refused)"
    ) in result.stderr.splitlines()
    status = run("status", str(out), "--json")
    assert "the proxy http://puser:[REDACTED]@" in status.stdout
    assert "pr0xy-s3cret" not in result.stdout + result.stderr + status.stdout


def test_a_retry_after_past_max_time_fails_at_once_saying_so(
    server: _Server, tmp_path: Path
) -> None:
    """Before: ``retrying ... in 300 s``, a wait to the ``--max-time``, then
    ``took longer than the time limit of 5 s (received 0 bytes)``: the line
    promised a retry that could not come, and the error hid the server's ask."""
    server.answers["/busy.bin"] = (
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 300\r\nContent-Length: 0\r\n\r\n"
    )
    url = server.url("/busy.bin")
    result = run("download", "--plain", "--max-time", "5", "-o", str(tmp_path), url)
    assert result.returncode == 1
    assert (
        f"FAILED {url}: HTTP 503 Service Unavailable (after 1 attempt; the next would start "
        "in 300 s, past the time limit of 5 s)"
    ) in result.stderr.splitlines()
    assert "retrying" not in result.stderr
    assert server.paths() == ["/busy.bin"]


# -- lists run again -----------------------------------------------------------------

_COUNT_SCANS = """
import os, sys
from regisseur.cli import main
out = os.path.realpath(sys.argv[sys.argv.index("-o") + 1])
scans = []
real = os.scandir
def counting(path="."):
    if os.path.realpath(path) == out:
        scans.append(path)
    return real(path)
os.scandir = counting
code = main(sys.argv[1:])
print(f"scans of the directory: {len(scans)}", file=sys.stderr)
sys.exit(code)
"""


def test_a_list_run_again_looks_at_the_directory_once_for_its_failed_urls(
    server: _Server, tmp_path: Path
) -> None:
    """Before: each URL whose last run failed was a look at the whole
    directory for a part to resume: 100,000 failed URLs run again took 96 s
    before the first request (and the time grows with the files there)."""
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(f"{server.url(f'/gone/{n}')}\n" for n in range(300)))
    out = tmp_path / "out"
    args = ("download", "-q", "--retries", "0", "-j", "8", "-i", str(listing), "-o", str(out))
    first = run(*args)
    assert first.returncode == 1
    again = run(*args, script=_COUNT_SCANS)
    assert again.returncode == 1
    assert again.stderr.count("FAILED ") == 300
    scans = int(again.stderr.splitlines()[-1].rpartition(": ")[2])
    assert scans <= 5, again.stderr[-300:]  # before: 300 and more
