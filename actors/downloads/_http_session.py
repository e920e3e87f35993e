"""The ``requests`` session of an HttpSource worker, and the socket it waits on.

While ``session.get`` waits for an answer's status line and headers, the
caller has no socket to shut down: a server that dribbles its headers, or
never answers, could only be stopped by the read timeout of each read. The
session made here uses connections that, just before they wait for an
answer, hand their socket to the callback the calling thread installed
with :func:`waiting_for_answer` (a context variable, so each worker thread
has its own). The download then watches that socket for a cancel, the
``max_time`` deadline and the low-speed limit as it does during the body.

Proxied requests (``HTTP_PROXY`` and friends) use ``requests``' own
connections: they work, without this early watch.

``requests`` reads the environment on every request (proxy variables,
``~/.netrc``, CA bundle variables): two scans of ``os.environ`` and a
``stat`` per request, a tenth of the CPU of a small download. The session
made here reads it once, when it is made: without proxy variables and
netrc file it stops looking (``trust_env = False``) and keeps the CA
bundle that ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` named then as
:attr:`Session.ca_bundle` (the fetch uses it where ``requests`` would
have); otherwise it keeps ``requests``' per-request behaviour.

A GET goes out through :func:`prepare_get` and :func:`send_get`. For a
session with nothing of its own to merge in (the one made here without
proxy variables or netrc file, or any ``requests.Session`` with
``trust_env`` off and without proxies, auth, params, client certificate,
hooks, or methods overridden, replaced or wrapped, as a tracing library
wraps ``Session.send``) they build the request and hand it to the
adapter directly: what ``Session.request`` would send, byte for byte
(headers, cookies from a copy of the session's jar, the URL's user and
password), without its per-request merging of settings, hooks and
environment lookups. The answer is then left as ``Session.send`` leaves
it: cookies it sets in the session's jar, a redirect's body read (its
connection serves the next hop), the session's ``max_redirects`` and an
unreadable ``Location`` raising. Any other session takes ``requests``'
own path (``Session.prepare_request`` and ``Session.send``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import os
import socket
import types
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
import requests.cookies
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.sessions import preferred_clock
from requests.structures import CaseInsensitiveDict

from regisseur.actors.downloads._http_head import HeadResponse

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from urllib3.response import HTTPResponse

    from regisseur.actors.downloads._http_log import ClientLogRedaction

__all__ = ["Session", "new_session", "prepare_get", "send_get", "waiting_for_answer"]

_WAITING: contextvars.ContextVar[Callable[[socket.socket], None] | None] = contextvars.ContextVar(
    "regisseur_http_waiting", default=None
)


@contextlib.contextmanager
def waiting_for_answer(callback: Callable[[socket.socket], None]) -> Iterator[None]:
    """Within the block, ``callback(sock)`` runs before each wait for an answer."""
    token = _WAITING.set(callback)
    try:
        yield
    finally:
        _WAITING.reset(token)


def _tell(sock: object) -> None:
    callback = _WAITING.get()
    if callback is not None and isinstance(sock, socket.socket):
        callback(sock)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = HeadResponse  # a head cut short fails; 1xx answers are passed over

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _tell(self.sock)
        return super().getresponse()


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = HeadResponse

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _tell(self.sock)
        return super().getresponse()


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """``HTTPAdapter`` whose pools make the connections above."""

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class Session(requests.Session):
    """A ``requests.Session`` that read the environment once (see the module)."""

    #: The CA bundle the environment named when ``trust_env`` was turned off
    #: (``None`` when it names none, or when requests still reads it itself).
    ca_bundle: str | None = None
    #: The hold on the redaction of urllib3's log lines (``HttpSource.open_session``).
    log_redaction: ClientLogRedaction | None = None


def new_session(headers: Mapping[str, str]) -> Session:
    """A session sending ``headers`` whose connections report their socket (see above)."""
    session = Session()
    session.trust_env = _environment_matters()
    if not session.trust_env:
        session.ca_bundle = _ca_bundle()
    session.headers.update(headers)
    adapter = _Adapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_NETRC_FILES = ("~/.netrc", "~/_netrc")


def _environment_matters() -> bool:
    """True if ``requests`` would find proxies or a netrc file in the
    environment (the worker thread, at session start)."""
    if urllib.request.getproxies_environment():
        return True
    if os.environ.get("NETRC"):
        return True
    return any(os.path.lexists(os.path.expanduser(name)) for name in _NETRC_FILES)


def _ca_bundle() -> str | None:
    """The CA bundle ``requests`` would take from the environment (same order)."""
    for name in _CA_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


# -- one GET ---------------------------------------------------------------------


# The methods the direct path does not call, and the file requests' own are in.
_SKIPPED = ("send", "prepare_request", "merge_environment_settings")
_REQUESTS_FILE = requests.sessions.merge_setting.__code__.co_filename


def _direct(session: requests.Session) -> bool:
    """True if ``session`` adds nothing that ``Session.request`` would merge in
    beyond headers and cookies, so its adapter may be called directly."""
    return (
        not session.trust_env
        and not session.proxies
        and session.auth is None
        and not session.params
        and session.cert is None
        and session.hooks == {"response": []}  # not None, one callable, other events
        and all(_requests_own(session, name) for name in _SKIPPED)
    )


def _requests_own(session: requests.Session, name: str) -> bool:
    """True if ``session``'s method ``name`` is the one ``requests`` defines:
    not replaced on the session, nor overridden or wrapped on its class (a
    tracing library wraps ``requests.Session.send`` in place)."""
    if name in vars(session):
        return False
    method = getattr(type(session), name, None)
    return isinstance(method, types.FunctionType) and method.__code__.co_filename == _REQUESTS_FILE


def prepare_get(
    session: requests.Session,
    url: str,
    headers: Mapping[str, str | None],
    auth: tuple[str, str] | None,
) -> requests.PreparedRequest:
    """The GET of ``url`` that ``session.get`` would send (calling thread).

    ``headers`` are merged over the session's (``None``, in either, removes one);
    ``auth`` is a user and password for Basic auth (``None``: those in the
    URL, if any). Raises what ``requests`` raises for a URL it cannot send
    (``InvalidURL``, ``MissingSchema``, ``ValueError`` for a bad host, ...).
    """
    if not _direct(session):
        request = requests.Request("GET", url, headers=dict(headers), auth=auth)
        return session.prepare_request(request)
    merged = _merged_headers(headers, session.headers)
    # The Cookie header comes from a copy of the jar, as requests makes it:
    # the default cookie policy, and the session's jar left as it is.
    cookies = requests.cookies.RequestsCookieJar()
    requests.cookies.merge_cookies(cookies, session.cookies)  # type: ignore[no-untyped-call]
    prepared = _ForAdapter()
    # requests' own steps in its order: the Cookie header before Authorization.
    prepared.prepare(method="GET", url=url, headers=merged, auth=auth, cookies=cookies)
    return prepared


class _ForAdapter(requests.PreparedRequest):
    """A GET :func:`prepare_get` built for the session's adapter directly:
    :func:`send_get` sends it so, without asking the session again (one
    decision per GET, and the same for both steps)."""


def _merged_headers(headers: Mapping[str, str | None], defaults: object) -> object:
    """The headers ``Session.prepare_request`` sends: ``requests``'
    ``merge_setting`` (``None``, in either, removes a header). Two mappings
    are merged here, the same way without its costly type checks."""
    if not isinstance(defaults, Mapping) or not isinstance(headers, Mapping):
        return requests.sessions.merge_setting(  # type: ignore[no-untyped-call]
            headers, defaults, dict_class=CaseInsensitiveDict
        )
    merged: CaseInsensitiveDict[str | None] = CaseInsensitiveDict(defaults)
    merged.update(headers)
    for name in [name for name, value in merged.items() if value is None]:
        del merged[name]
    return merged


def send_get(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    timeout: tuple[float, float],
    verify: bool | str,
) -> requests.Response:
    """Send ``prepared`` (from :func:`prepare_get`) without following a
    redirect; the body is left to stream, but for a redirect's, read as
    ``Session.send`` reads it (calling thread).

    Raises the exceptions of ``Session.send`` (``requests.ConnectionError``,
    ``Timeout``, ``SSLError``, ``TooManyRedirects``, ...).
    """
    if type(prepared) is not _ForAdapter:  # prepare_get chose requests' own path
        url = prepared.url or ""
        settings = session.merge_environment_settings(url, {}, True, verify, None)
        return session.send(prepared, allow_redirects=False, timeout=timeout, **settings)
    options: dict[str, Any] = {
        "stream": True,
        "timeout": timeout,
        "verify": verify,
        "cert": None,
        "proxies": {},
    }
    adapter: BaseAdapter = session.get_adapter(prepared.url or "")
    start = preferred_clock()
    response = adapter.send(prepared, **options)
    response.elapsed = datetime.timedelta(seconds=preferred_clock() - start)
    # Into the session's jar under its policy (Set-Cookie2 too), as Session.send.
    requests.cookies.extract_cookies_to_jar(session.cookies, prepared, response.raw)  # type: ignore[no-untyped-call]
    # What Session.send does with an answer it does not follow: a redirect's
    # body is read (its connection goes back to the pool for the next hop),
    # the session's max_redirects and a Location requests cannot read raise.
    redirects = session.resolve_redirects(response, prepared, yield_requests=True, **options)
    response._next = next(redirects, None)  # type: ignore[attr-defined]  # as Session.send
    return response
