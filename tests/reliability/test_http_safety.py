"""``HttpSource`` safety: secrets never shown, URL credentials on redirects.

Uses the raw server of :mod:`tests.reliability.test_hostile_http`: each
request is answered with exact bytes, and ``seen`` keeps what the client
sent, so a test can check which hop got the credentials.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from regisseur.actors import configure_logging
from regisseur.actors.log import REDACTED
from tests.reliability.test_hostile_http import (
    BODY,
    OK,
    SUCCEEDED,
    RawServer,
    fetch,
    http,
    http_system,
    redirect,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(30)

BASIC = "Basic " + base64.b64encode(b"alice:s3cr3t-pw").decode()
SIGNED = "?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=s1gn4ture&sig=s1g&token=t0ken"
SECRETS = ("s3cr3t-pw", "AKIAEXAMPLE", "s1gn4ture", "s1g&", "t0ken")


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    yield raw
    raw.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return (tmp_path / "downloads").resolve()


def _authorization(server: RawServer, path: str) -> list[str | None]:
    return [headers.get("authorization") for seen, headers in server.seen if seen == path]


def test_url_credentials_follow_a_redirect_on_the_same_host(
    server: RawServer, folder: Path
) -> None:
    """Before: an absolute redirect to the same host lost the URL's password (HTTP 401)."""
    server.route("/landing", http(OK, body=BODY))
    server.route("/absolute", redirect(server.url("/landing")))
    server.route("/relative", redirect("/landing?x=1"))
    with http_system(folder) as system:
        for path in ("/absolute", "/relative"):
            url = server.url(path).replace("http://", "http://alice:s3cr3t-pw@")
            record = fetch(system, url)
            assert record.state is SUCCEEDED, record.error
    assert _authorization(server, "/absolute") == [BASIC]
    assert _authorization(server, "/landing") == [BASIC]
    assert _authorization(server, "/landing?x=1") == [BASIC]


def test_url_credentials_never_follow_a_redirect_to_another_host(
    server: RawServer, folder: Path
) -> None:
    server.route("/landing", http(OK, body=BODY))
    server.route("/away", redirect(server.url("/landing", host="localhost")))
    server.route("/back", redirect(server.url("/to-here", host="localhost")))
    server.route("/to-here", redirect(server.url("/landing?back=1")))
    with http_system(folder) as system:
        for path in ("/away", "/back"):
            url = server.url(path).replace("http://", "http://alice:s3cr3t-pw@")
            assert fetch(system, url).state is SUCCEEDED
    assert _authorization(server, "/away") == [BASIC]
    assert _authorization(server, "/landing") == [None]
    # Once the chain has left the origin, coming back does not restore them.
    assert _authorization(server, "/to-here") == [None]
    assert _authorization(server, "/landing?back=1") == [None]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", json=True, stream=stream)
    yield stream
    for name in ("actors", "supervision", "regisseur"):
        logging.getLogger(name).removeHandler(handler)


def test_signed_url_secrets_are_in_no_log_error_or_repr(
    server: RawServer, folder: Path, json_log: io.StringIO
) -> None:
    """Before: X-Amz-Signature, sig and the like were logged and kept in record.error."""
    server.route("/missing", http("404 Not Found"))
    server.route("/file.bin", http(OK, body=BODY))
    with http_system(folder) as system:
        failed = fetch(system, server.url("/missing").replace("//", "//alice:s3cr3t-pw@") + SIGNED)
        done = fetch(system, server.url("/file.bin") + SIGNED)
    assert done.state is SUCCEEDED
    assert failed.error.startswith("HTTP 404 Not Found: ")
    assert f"X-Amz-Signature={REDACTED}" in failed.error
    assert f"alice:{REDACTED}@" in failed.error
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert {"download_started", "download_failed", "download_completed"} <= {
        line["event"] for line in lines
    }
    shown = [json_log.getvalue(), failed.error, repr(failed), repr(done), str(done)]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, (secret, text)
    assert done.target_id.endswith(SIGNED)  # the record keeps what the source needs
