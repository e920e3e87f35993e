"""The HttpSource session reads the environment once, not on every request."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads._http_session import new_session

if TYPE_CHECKING:
    from tests.downloads.conftest import Harness, HttpServer

_VARIABLES = (
    *("http_proxy", "https_proxy", "all_proxy", "no_proxy"),
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"),
    *("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC"),
)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_nothing_in_the_environment_means_no_lookup_per_request(bare_environment: Path) -> None:
    with new_session({}) as session:
        assert session.trust_env is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
        ("NETRC", "/somewhere/netrc"),
    ],
)
def test_what_requests_reads_there_keeps_it_reading(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with new_session({}) as session:
        assert session.trust_env is True
        if name.lower().endswith("_proxy"):
            proxies = session.merge_environment_settings("http://example/", {}, None, None, None)
            assert proxies["proxies"], "the proxy is still used"


@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_variable_is_read_once_and_still_used(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "/etc/ssl/certs/ca-certificates.crt")
    with new_session({}) as session:
        assert session.trust_env is False
        assert session.ca_bundle == "/etc/ssl/certs/ca-certificates.crt"


def test_a_netrc_file_keeps_requests_reading_it(bare_environment: Path) -> None:
    (bare_environment / ".netrc").write_text("machine 127.0.0.1 login u password p\n")
    with new_session({}) as session:
        assert session.trust_env is True


def test_a_download_trusts_the_bundle_the_environment_names(
    bare_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    harness: Harness,
    https_server: HttpServer,
    certificate: tuple[Path, Path],
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    url = https_server.file("/secure.bin", b"trusted through the environment")
    path = harness.fetch(harness.source(), url)
    assert Path(path).read_bytes() == b"trusted through the environment"
