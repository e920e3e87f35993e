"""The HttpSource session reads the environment once, not on every request,
and a GET through it is the one ``requests`` would send."""

from __future__ import annotations

import base64
import functools
import http.cookiejar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import requests.cookies

from regisseur.actors.downloads import DownloadError, HttpSource
from regisseur.actors.downloads._http_session import new_session, prepare_get, send_get

if TYPE_CHECKING:
    from collections.abc import Callable

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


# -- one GET: the direct path sends what requests would ----------------------------


def _cookie(name: str, value: str, domain: str) -> http.cookiejar.Cookie:
    return requests.cookies.create_cookie(name, value, domain=domain, path="/")


@pytest.mark.parametrize(
    ("url", "headers", "auth"),
    [
        ("http://127.0.0.1:8/a b/ü.bin?q=1 2", {"X-Extra": "1"}, None),
        ("http://user:p%40ss@127.0.0.1:8/f.bin", {}, ("user", "p@ss")),
        ("http://user:pw@127.0.0.1:8/f.bin", {"User-Agent": None}, None),
        (
            "https://bücher.example/f.bin",
            {"Accept-Encoding": "identity", "Range": "bytes=5-"},
            None,
        ),
        ("http://other.example/f.bin", {"Cookie": None}, ("a", "b")),
        ("http://127.0.0.1:8/f.bin", {"Range": "bytes=1-"}, ("a", "b")),
    ],
)
def test_a_get_is_prepared_as_requests_prepares_it(
    bare_environment: Path,
    url: str,
    headers: dict[str, str | None],
    auth: tuple[str, str] | None,
) -> None:
    with new_session({"User-Agent": "regisseur/test", "X-Team": "blue"}) as session:
        session.cookies.set_cookie(_cookie("seen", "yes", "127.0.0.1"))
        session.cookies.set_cookie(_cookie("elsewhere", "no", "third.example"))
        ours = prepare_get(session, url, headers, auth)
        theirs = session.prepare_request(requests.Request("GET", url, headers=headers, auth=auth))
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert list(ours.headers.items()) == list(theirs.headers.items()), "same headers, same order"


def _none_header(session: requests.Session) -> None:
    session.headers["Accept"] = None  # requests leaves it out


def _strict_policy(session: requests.Session) -> None:
    # The policy is the jar's: requests sends from a copy with the default one.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(blocked_domains=["127.0.0.1"]))
    session.cookies.set_cookie(_cookie("kept", "yes", "127.0.0.1"))


def _expired_cookie(session: requests.Session) -> None:
    # Not sent; and requests leaves the session's jar as it is.
    session.cookies.set_cookie(_cookie("fresh", "yes", "127.0.0.1"))
    stale = requests.cookies.create_cookie("stale", "no", domain="127.0.0.1", path="/", expires=1)
    session.cookies.set_cookie(stale)


def _plain_headers(session: requests.Session) -> None:
    session.headers = {"accept": "*/*", "X-Team": "blue", "ACCEPT": None, "x-team": "red"}  # type: ignore[assignment]


def _header_pairs(session: requests.Session) -> None:
    session.headers = [("X-Team", "blue")]  # type: ignore[assignment]  # requests ignores them


@pytest.mark.parametrize(
    "change", [_none_header, _plain_headers, _header_pairs, _strict_policy, _expired_cookie]
)
def test_a_get_from_a_session_its_user_changed_is_prepared_as_requests_prepares_it(
    bare_environment: Path, change: Callable[[requests.Session], None]
) -> None:
    url, headers = "http://127.0.0.1:8/f.bin", {"Accept-Encoding": "identity"}
    with new_session({"User-Agent": "regisseur/test"}) as session:
        change(session)
        jar = sorted((c.domain, c.name, c.value) for c in session.cookies)
        theirs = session.prepare_request(requests.Request("GET", url, headers=headers))
        ours = prepare_get(session, url, headers, None)
        assert sorted((c.domain, c.name, c.value) for c in session.cookies) == jar
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert list(ours.headers.items()) == list(theirs.headers.items()), "same headers, same order"


def test_a_cookie_and_url_credentials_go_out_in_the_order_requests_sends_them(
    bare_environment: Path, harness: Harness, http_server: HttpServer
) -> None:
    http_server.file("/login", b"in", headers={"Set-Cookie": "session=s3cr; Path=/"})
    http_server.file("/file.bin", b"with a cookie and a password")
    login, url = (
        http_server.url(path).replace("://", "://user:pw@") for path in ("/login", "/file.bin")
    )
    session = harness.session(harness.source())
    for target in (login, url):
        harness.fetch(harness.source(), target, session=session)
    with requests.Session() as plain:
        plain.trust_env = False
        plain.headers.update(session.headers)
        for target in (login, url):
            plain.get(target, headers={"Accept-Encoding": "identity"}).close()
    ours, theirs = http_server.seen("/file.bin")
    assert "Cookie" in ours.headers
    assert list(ours.headers.items()) == list(theirs.headers.items())


def test_cookies_an_answer_sets_go_with_the_next_request(
    harness: Harness, http_server: HttpServer
) -> None:
    http_server.file("/file.bin", b"behind a cookie")
    login = http_server.status(
        "/login", 302, {"Location": "/file.bin", "Set-Cookie": "session=s3cr; Path=/"}
    )
    path = harness.fetch(harness.source(), login)
    assert Path(path).read_bytes() == b"behind a cookie"
    assert http_server.seen("/file.bin")[0].headers.get("Cookie") == "session=s3cr"


def test_cookies_the_jars_policy_accepts_are_kept_from_any_set_cookie_header(
    harness: Harness, http_server: HttpServer
) -> None:
    url = http_server.file("/old.bin", b"old style", headers={"Set-Cookie2": 'v="2"; Version=1'})
    session = harness.session(harness.source())
    policy = http.cookiejar.DefaultCookiePolicy(rfc2965=True, strict_rfc2965_unverifiable=False)
    session.cookies.set_policy(policy)
    harness.fetch(harness.source(), url, session=session)
    assert [(c.name, c.value) for c in session.cookies] == [("v", "2")]


class _Signed(requests.Session):
    """A session of the user's own: it signs every request it prepares."""

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        prepared.headers["X-Signature"] = f"signed {prepared.path_url}"
        return prepared


class _CustomSessions(HttpSource):
    """An HttpSource whose sessions are the user's: with auth, with a response
    hook, or of a subclass of ``requests.Session``."""

    def __init__(self, kind: str, answers: list[int], **options: Any) -> None:
        super().__init__(**options)
        self.kind = kind
        self.answers = answers

    def open_session(self) -> requests.Session:
        session = _Signed() if self.kind == "subclass" else requests.Session()
        session.trust_env = False
        if self.kind == "auth":
            session.auth = ("team", "hunter2")
        if self.kind == "hook":
            session.hooks["response"].append(
                lambda response, **_: self.answers.append(response.status_code)
            )
        if self.kind == "one hook":  # requests takes one callable as well as a list
            session.hooks["response"] = lambda response, **_: self.answers.append(
                response.status_code
            )
        if self.kind == "no hooks":
            session.hooks = None  # type: ignore[assignment]  # requests takes it
        if self.kind == "wrapped send":  # on this session only
            send = session.send

            def signed_send(request: requests.PreparedRequest, **options: Any) -> Any:
                request.headers["X-Signature"] = f"signed {request.path_url}"
                return send(request, **options)

            session.send = signed_send  # type: ignore[method-assign]
        return session


@pytest.mark.parametrize(
    "kind", ["auth", "hook", "one hook", "no hooks", "subclass", "wrapped send"]
)
def test_a_session_of_the_users_own_keeps_its_auth_hooks_and_methods(
    bare_environment: Path, harness: Harness, http_server: HttpServer, tmp_path: Path, kind: str
) -> None:
    url = http_server.file("/team.bin", b"for the team")
    answers: list[int] = []
    source = _CustomSessions(kind, answers, directory=tmp_path / "custom")
    path = harness.fetch(source, url)
    assert Path(path).read_bytes() == b"for the team"
    seen = http_server.seen("/team.bin")[0].headers
    if kind == "auth":
        assert seen["Authorization"] == "Basic " + base64.b64encode(b"team:hunter2").decode()
    if kind in ("hook", "one hook"):
        assert answers == [200]
    if kind in ("subclass", "wrapped send"):
        assert seen["X-Signature"] == "signed /team.bin"


def test_an_instrumentation_wrapping_session_send_sees_every_request(
    bare_environment: Path,
    harness: Harness,
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracing libraries wrap ``requests.Session.send`` in place (and add headers)."""
    original = requests.Session.send

    @functools.wraps(original)
    def traced(self: requests.Session, request: requests.PreparedRequest, **options: Any) -> Any:
        request.headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        return original(self, request, **options)

    monkeypatch.setattr(requests.Session, "send", traced)
    url = http_server.file("/traced.bin", b"traced")
    harness.fetch(harness.source(), url)
    assert http_server.seen("/traced.bin")[0].headers["traceparent"].startswith("00-0af7")


# -- redirects: the answer is left as Session.send leaves it -----------------------


def test_a_redirect_to_the_same_server_reuses_its_connection(
    harness: Harness, http_server: HttpServer
) -> None:
    http_server.file("/file.bin", b"one connection")
    moved = http_server.status("/moved", 302, {"Location": "/file.bin"}, b"see /file.bin")
    path = harness.fetch(harness.source(), moved)
    assert Path(path).read_bytes() == b"one connection"
    assert http_server.connection_count() == 1, "the redirect's body was read, not cut off"


def test_a_session_without_redirects_refuses_one(harness: Harness, http_server: HttpServer) -> None:
    http_server.file("/file.bin", b"never fetched")
    moved = http_server.status("/moved", 302, {"Location": "/file.bin"})
    session = harness.session(harness.source())
    session.max_redirects = 0
    with pytest.raises(DownloadError, match="Exceeded 0 redirects"):
        harness.fetch(harness.source(retries=0), moved, session=session)
    assert http_server.seen("/file.bin") == []


def test_a_location_requests_cannot_read_is_not_followed(
    harness: Harness, http_server: HttpServer
) -> None:
    moved = http_server.status("/moved", 302, {"Location": "/caf\xe9.bin"})  # Latin-1, not UTF-8
    with pytest.raises(DownloadError, match="malformed URL"):
        harness.fetch(harness.source(retries=0), moved)
    assert [seen.path for seen in http_server.seen()] == ["/moved"]


def test_an_answer_tells_how_long_it_took(bare_environment: Path, http_server: HttpServer) -> None:
    url = http_server.file("/file.bin", b"timed")
    with new_session({}) as session:
        prepared = prepare_get(session, url, {}, None)
        with send_get(session, prepared, (5.0, 5.0), True) as response:
            assert response.elapsed.total_seconds() > 0
