"""The HttpSource session reads the environment once, not on every request."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from regisseur.actors.downloads._http_session import new_session

if TYPE_CHECKING:
    from pathlib import Path

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
        ("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
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


def test_a_netrc_file_keeps_requests_reading_it(bare_environment: Path) -> None:
    (bare_environment / ".netrc").write_text("machine 127.0.0.1 login u password p\n")
    with new_session({}) as session:
        assert session.trust_env is True
