"""What an HttpSource download leaves in its record and says to the server.

The request headers a user sets (``headers``, ``user_agent``) and the
record of a body without a length, through a system on a ManualClock and a
real HTTP server on 127.0.0.1 (see conftest).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from regisseur.actors._version import version
from regisseur.actors.downloads.http import HttpSource
from regisseur.messages.downloads import DownloadState
from tests.downloads.conftest import WAIT, Harness, HttpServer, Request

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.system import ActorSystem

BODY = bytes(range(256)) * 64  # 16 KiB


def test_the_default_user_agent_names_regisseur_and_its_version(
    harness: Harness, http_server: HttpServer
) -> None:
    url = http_server.file("/a.bin", BODY)
    harness.fetch(harness.source(), url)
    [seen] = http_server.seen("/a.bin")
    assert seen.headers["User-Agent"] == f"regisseur/{version()}"
    assert version()[0].isdigit()


def test_user_agent_and_headers_are_sent(harness: Harness, http_server: HttpServer) -> None:
    url = http_server.file("/b.bin", BODY)
    harness.fetch(harness.source(user_agent="fetcher/2", headers={"X-Token": "t1"}), url)
    harness.fetch(harness.source(headers={"user-agent": "mine/1"}), url)
    first, second = http_server.seen("/b.bin")
    assert (first.headers["User-Agent"], first.headers["X-Token"]) == ("fetcher/2", "t1")
    assert {k.lower(): v for k, v in second.headers.items()}["user-agent"] == "mine/1"


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"user_agent": 5}, TypeError, "user_agent must be a str"),
        ({"user_agent": ""}, ValueError, "user_agent must be one line"),
        ({"user_agent": "a\r\nX-Evil: 1"}, ValueError, "user_agent must be one line"),
        (
            {"user_agent": "a/1", "headers": {"User-Agent": "b/2"}},
            ValueError,
            "give the User-Agent once",
        ),
        ({"headers": {"Bad Name": "x"}}, ValueError, "not a valid HTTP header name"),
        ({"headers": ["X-A: b"]}, TypeError, "headers must be a mapping"),
        # Before: accepted, and the server's 206 for the caller's range failed the download.
        ({"headers": {"Range": "bytes=0-9"}}, ValueError, "'Range' is set by the source"),
        ({"headers": {"if-range": "x"}}, ValueError, "'if-range' is set by the source"),
        # Before: accepted; the GET announced a body it never sent, and the
        # server took the next request on the connection for it (HTTP 400).
        ({"headers": {"Content-Length": "5"}}, ValueError, "'Content-Length' frames a request"),
        ({"headers": {"transfer-encoding": "chunked"}}, ValueError, "'transfer-encoding' frames"),
        # Before: accepted; every download then failed as a "malformed URL", with
        # the value (often a credential) in the error text.
        ({"headers": {"X-Token": "t\u20ac"}}, ValueError, "'X-Token' has a character that is not"),
        ({"headers": {"X-Token": "t\x0bu"}}, ValueError, "'X-Token' has a control character"),
        ({"user_agent": "agent/\u20ac"}, ValueError, "user_agent has a character that is not"),
    ],
)
def test_bad_header_options(tmp_path: Path, options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        HttpSource(directory=tmp_path, **options)


def test_a_body_without_length_gets_its_size_on_success(
    system_factory: Callable[..., ActorSystem], tmp_path: Path, http_server: HttpServer
) -> None:
    def close_delimited(request: Request) -> None:
        request.head(200, {"Connection": "close"})
        request.write(BODY)
        request.close()

    url = http_server.route("/stream", close_delimited)
    system = system_factory(download_sources=[HttpSource(directory=tmp_path, retries=0)])
    record = system.downloads.wait(system.downloads.submit("http", url, "stream"), WAIT)
    assert record.state is DownloadState.SUCCEEDED, record.error
    assert record.size == len(BODY) == record.transferred
    assert record.file_path is not None
    assert Path(record.file_path).stat().st_size == record.size
