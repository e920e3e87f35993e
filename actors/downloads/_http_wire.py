"""What HTTP messages say: URLs, statuses and headers, read for downloads.

Pure functions (apart from :func:`parse_retry_after` reading the wall clock
when a response has no ``Date``), safe on any thread. Texts they build are
user-visible error texts, so every URL in them is redacted first.
"""

from __future__ import annotations

import datetime
import email.utils
import http
import re
import socket
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from regisseur.actors.clock import wall_time
from regisseur.actors.downloads.http_errors import DownloadError
from regisseur.actors.log import redact_text
from regisseur.messages.redaction import redact_url

if TYPE_CHECKING:
    import requests

__all__ = [
    "SCHEMES",
    "ContentRange",
    "check_url",
    "content_length",
    "cross_origin",
    "network_reason",
    "parse_content_range",
    "parse_retry_after",
    "retryable",
    "status_text",
    "unknown_host",
    "unreadable_coding",
]

#: The schemes a download may use, also after redirects.
SCHEMES = frozenset({"http", "https"})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE | re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)


def retryable(status: int) -> bool:
    """True for the statuses worth another try: 408, 429 and 5xx but 501, 505."""
    return status in (408, 429) or (500 <= status <= 599 and status not in (501, 505))


_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")


def check_url(target_id: object) -> str:
    """``target_id`` as an http(s) URL, or a ``DownloadError`` saying why not."""
    if not isinstance(target_id, str):
        msg = f"malformed URL {target_id!r}: expected a string"
        raise DownloadError(msg)
    url = target_id.strip()
    if not url or _SPACE_OR_CONTROL.search(url):
        msg = (
            f"malformed URL {redact_url(url)!r}: "
            "empty, or contains whitespace or control characters"
        )
        raise DownloadError(msg)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        msg = f"malformed URL {redact_url(url)!r}: {exc}"
        raise DownloadError(msg) from None
    scheme = parts.scheme.lower()
    if not scheme or ("." in scheme and not parts.netloc):
        msg = f"malformed URL {redact_url(url)!r}: no scheme (expected http:// or https://)"
        raise DownloadError(msg)
    if scheme not in SCHEMES:
        msg = f"unsupported URL scheme {scheme!r} (only http and https): {redact_url(url)}"
        raise DownloadError(msg)
    if not parts.hostname:
        msg = f"malformed URL {redact_url(url)!r}: no host"
        raise DownloadError(msg)
    return url


def cross_origin(old: str, new: str) -> bool:
    """True if a redirect from ``old`` to ``new`` leaves the origin.

    Credentials (``Authorization``, ``Cookie``) are not sent across origins;
    the one exception, as in ``requests``, is ``http`` to ``https`` on the
    same host with default ports.
    """
    a, b = urlsplit(old), urlsplit(new)
    a_scheme, b_scheme = a.scheme.lower(), b.scheme.lower()
    if a.hostname != b.hostname:
        return True
    a_port = a.port or _DEFAULT_PORTS.get(a_scheme)
    b_port = b.port or _DEFAULT_PORTS.get(b_scheme)
    if (a_scheme, a_port, b_scheme, b_port) == ("http", 80, "https", 443):
        return False
    return (a_scheme, a_port) != (b_scheme, b_port)


def parse_retry_after(value: str | None, date: str | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, or ``None`` if unusable.

    The header is either seconds or an HTTP date; a date is measured from
    the response's ``Date`` header when there is one (so the two hosts'
    clocks need not agree), else from this host's wall clock. A date in the
    past gives 0.
    """
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(date) if date else None
    return max(0.0, when - (wall_time() if reference is None else reference))


def _http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # HTTP dates are GMT
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


class ContentRange(NamedTuple):
    """A ``Content-Range: bytes first-last/total`` (``total`` None for ``*``)."""

    first: int
    last: int
    total: int | None


def parse_content_range(value: str | None) -> ContentRange | None:
    """The byte range a 206 answer carries, or ``None`` if unusable."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return ContentRange(first, last, total)


def content_length(response: requests.Response) -> int | None:
    """The response's ``Content-Length``, or ``None`` if absent or malformed, or
    if the body is chunked (the chunks override the length; the test is
    ``http.client``'s, which reads the body)."""
    if (response.headers.get("Transfer-Encoding") or "").lower() == "chunked":
        return None
    value = (response.headers.get("Content-Length") or "").strip()
    return int(value) if _DIGITS.fullmatch(value) else None


def unreadable_coding(value: str | None) -> str | None:
    """A ``Transfer-Encoding`` that ``http.client`` cannot take off, or None.

    It decodes ``chunked`` alone; any other coding (``gzip, chunked``, sent
    without the ``TE`` header that would ask for it) it reads as a body to
    the close, the coded bytes as they are (wget saves them so; curl and
    aria2c fail). The value is shown with its control characters escaped.
    """
    if value is None or not value.strip():
        return None
    codings = [c.strip().lower() for c in value.split(",")]
    if codings in (["chunked"], ["identity"]):
        return None
    return value.strip().encode("unicode_escape").decode("ascii")


def status_text(response: requests.Response, shown_url: str) -> str:
    """``"HTTP 404 Not Found: <url>"`` (the reason phrase filled in if missing)."""
    reason = response.reason
    if not reason:
        try:
            reason = http.HTTPStatus(response.status_code).phrase
        except ValueError:
            reason = ""
    return f"HTTP {response.status_code} {reason}".rstrip() + f": {shown_url}"


def _wrapped(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it wraps, outermost first: each one's ``reason``
    (urllib3), else its first exception argument (``requests``), else its
    cause (not its context: an unrelated earlier error)."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        nested = getattr(current, "reason", None)
        inner_args = [a for a in current.args if isinstance(a, BaseException)]
        if isinstance(nested, BaseException):
            current = nested
        elif inner_args:
            current = inner_args[0]
        else:
            current = current.__cause__
    return chain


def _socket_context(innermost: BaseException) -> OSError | None:
    """The socket's ``OSError`` urllib3 1.26 leaves as the context only: it
    raises its connection errors inside that error's handler without ``from``."""
    context = innermost.__context__
    if isinstance(context, OSError) and not innermost.__suppress_context__:
        return context
    return None


def network_reason(exc: BaseException) -> str:
    """The innermost readable reason of a network error, without object reprs.

    ``requests`` wraps a refused connection as ``ConnectionError(MaxRetryError(
    NewConnectionError(<object at 0x…>: … [Errno 111] Connection refused)))``;
    this returns ``"Connection refused"`` (also where urllib3 1.26 leaves the
    ``OSError`` as the context only, not the cause).
    """
    chain = _wrapped(exc)
    reasons = [e.strerror for e in chain if isinstance(e, OSError) and e.strerror]
    if reasons:
        return reasons[-1]
    context = _socket_context(chain[-1])
    if context is not None and context.strerror:
        return context.strerror
    return _plain(chain[-1])


#: ``getaddrinfo``'s answers that the name does not exist (not "try again").
_NO_SUCH_NAME = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def unknown_host(exc: BaseException) -> str | None:
    """The resolver's words if ``exc`` (a connection error) says its host name
    does not exist ("Name or service not known"), else None.

    Such a name stays unknown however often it is asked: curl and wget fail
    at once, where a retry with backoff only made a typo cost seconds. A
    temporary failure (``EAI_AGAIN``: no answer from the resolver) is no
    such answer: it is retried.
    """
    chain = _wrapped(exc)
    for error in (*chain, _socket_context(chain[-1])):
        if isinstance(error, socket.gaierror) and error.errno in _NO_SUCH_NAME:
            return error.strerror or "Name or service not known"
    return None


#: ``<module.Class object at 0x7f…>`` and the ``: `` after it.
_OBJECT_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-fA-F]+>:?\s*")


def _plain(exc: BaseException) -> str:
    """``Type: text`` of one exception, on one line, without reprs or quotes."""
    words = " ".join(str(a) for a in exc.args if isinstance(a, (str, int)))
    words = _OBJECT_REPR.sub("", words)  # urllib3 puts its connection's repr first
    words = re.sub(r"[\x00-\x1f\x7f]+", " ", words)
    words = re.sub(r"[()\[\]{}'\"<>]", "", words).strip()
    if len(words) > 160:
        words = words[:159] + "…"
    name = type(exc).__name__
    if not words:
        return name
    # http.client's names say what broke (BadStatusLine, LineTooLong);
    # the wrappers' (ProtocolError) add nothing to their message.
    return redact_text(f"{name}: {words}" if type(exc).__module__ == "http.client" else words)
