"""The one redaction of secrets in text: URL passwords, credentials, tokens.

:func:`redact_text` is what every place a person or a log can see uses
(log records, error texts, ``repr`` of download records, CLI lines, the
``status`` output): one function, so that one list says what a secret is.
It lives in this leaf package because records (``DownloadRecord.__repr__``)
need it and ``messages`` depends on nothing else in the project;
:mod:`actors.log` re-exports it.

What is replaced by ``[REDACTED]``:

* the password of a URL (``https://user:pass@host`` keeps ``user``), and
  the user name of an http(s) URL that has no password
  (``https://<token>@host``: there the name is the credential);
* ``Authorization``/``Cookie`` header values, ``Bearer <token>``,
  ``Basic <base64 of user:pass>``;
* the value of any ``key=value`` or ``key: value`` pair whose key contains
  token, password, passwd, passphrase, secret, authorization, api_key,
  access_key, cookie, credential, signature or private_key, in any case
  (``X-Amz-Signature``, ``X-Amz-Credential``, ``access_token``,
  ``AWSAccessKeyId`` ...);
* in a URL's query, fragment or path segments, also the short names used for credentials:
  ``sig``, ``key``, ``auth``, ``pass``, ``pwd``, ``jwt``, and session ids
  (``sid``, ``session``, ``session_id``, ``sessionid``, ``PHPSESSID``,
  ``;jsessionid=``: as good as a password while the session lives). A parameter's
  name is read as the server reads it, percent-decoded (``%54oken=``,
  ``api%5Fkey=``, ``token%3D...``), and its whole value is redacted, up to
  the next ``&``, ``;``, ``#``, space or quote (``token=a,b(c)`` loses
  ``a,b(c)``, not just ``a``).

Pure and idempotent, so safe on any thread.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

__all__ = ["REDACTED", "SENSITIVE_WORDS", "redact_text", "redact_url"]

REDACTED = "[REDACTED]"
"""The text that replaces every redacted value."""

#: A key containing one of these (a regular expression, any case) holds a secret.
SENSITIVE_WORDS = (
    r"token|passw(?:or)?d|passphrase|secret|authorization|api[_-]?key|access[_-]?key"
    r"|cookie|credential|signature|private[_-]?key"
)
_ANY_WORD = re.compile(SENSITIVE_WORDS)  # on lower-cased text
_URL_CREDENTIALS = re.compile(
    r"(?<![a-z0-9+.\-])(?P<prefix>[a-z][a-z0-9+.\-]*://[^:/?#@\s]*):[^/?#\s]+@",
    re.IGNORECASE,
)
# The user name of an http(s) URL without a password: a token (https://<token>@host).
_URL_TOKEN = re.compile(
    r"(?<![a-z0-9+.\-])(?P<prefix>https?://)(?!\[REDACTED\]@)[^:/?#@\s]+@",
    re.IGNORECASE,
)
# A whole header value: any scheme ("token X", "Digest ...") and every cookie pair.
_HEADER = re.compile(
    r"(?<![\w-])(?P<key>(?:proxy-)?authorization|(?:set-)?cookie)"
    r"(?P<sep>['\"]?[ \t]*:[ \t]*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\r\n'\"]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer)\s+[\w\-.~+/]+=*", re.IGNORECASE)
_BASIC = re.compile(r"(?i)\b(?P<scheme>basic)\s+(?P<cred>[A-Za-z0-9+/]+={0,2})")
_KEY_VALUE = re.compile(  # the lookahead keeps matching linear on long words
    rf"(?<![\w-])(?=[\w-]*?(?:{SENSITIVE_WORDS}))(?P<key>[\w-]+)(?P<sep>['\"]?[ \t]*[=:][ \t]*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic)[ \t]+)?"
    r"(?:\[REDACTED\]|[^\s&;,'\"()<>\[\]{}]+))",
    re.IGNORECASE,
)
# One parameter of a URL's query, fragment or path (``;``, or a whole path
# segment ``/token=...``): its name up to the first "=" (or an encoded
# "%3D"), its value up to the next separator (in a path: to its end).
_QUERY_KEY = re.compile(
    r"(?<=[?&;#/])(?P<key>[^=&;#?\s'\"<>/]+?)(?P<sep>=|%3[dD])(?P<value>[^&;#\s'\"<>]*)"
)
# Short parameter names that are credentials only as a URL's query parameter.
_SHORT_KEY = re.compile(
    r"(?:sig|key|auth|pass|pwd|jwt|sid|session(?:[_-]?id)?|[a-z]*sessid|[a-z]*sessionid)(?:\[\])?"
)
_DECODINGS = 3  # "%2574oken" is "token" after two
_MAX_PASSES = 8  # redactions repeated until nothing changes (each only hides more)
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
# redact_url's stand-ins: character c is chr(base + ord(c)), in a private-use
# plane (every whitespace or control character is below _STAND_IN_SPAN); the
# second base serves a URL that already holds characters of the first range.
_STAND_IN_BASES = (0xF0000, 0x100000)
_STAND_IN_SPAN = 0x3001


def _redact_basic(match: re.Match[str]) -> str:
    try:
        decoded = base64.b64decode(match["cred"], validate=True)
    except (binascii.Error, ValueError):
        return match[0]  # not base64, so not a credential ("Basic setup")
    return f"{match['scheme']} {REDACTED}" if b":" in decoded else match[0]


def _redact_key_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "'\"" else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


def _redact_parameter(match: re.Match[str]) -> str:
    """A URL parameter with its value redacted if its (decoded) name says secret."""
    value = match["value"]
    if not value or value == REDACTED:
        return match[0]
    key = match["key"]
    for _ in range(_DECODINGS):
        if "%" not in key:
            break
        key = unquote(key)
    key = key.lower()
    if _ANY_WORD.search(key) is None and _SHORT_KEY.fullmatch(key) is None:
        return match[0]
    return f"{match['key']}{match['sep']}{REDACTED}"


def redact_text(text: str) -> str:
    """Return ``text`` with the credentials inside it replaced by ``[REDACTED]``.

    See the module docstring for what counts as a credential. Works on URLs,
    query strings, key/value text, dict and JSON reprs and header dumps.
    Idempotent and pure, so thread-safe; use it on anything shown to a
    person or written to a log. A text that one pass changed is passed
    again until nothing changes (one pass can join what another pattern
    then reads as a secret); a text without secrets takes one pass.
    """
    redacted = _redact_once(text)
    for _ in range(_MAX_PASSES):
        if redacted == text:
            break
        text, redacted = redacted, _redact_once(redacted)
    return redacted


def _redact_once(text: str) -> str:
    """One pass of every pattern over ``text`` (see :func:`redact_text`)."""
    # Each pattern runs only where the text has what it needs: a plain URL
    # or message is checked with a few substring tests and one literal scan.
    lower = text.lower()
    pairs = "=" in text or ":" in text
    if "@" in text and "://" in text:
        text = _URL_CREDENTIALS.sub(rf"\g<prefix>:{REDACTED}@", text)
        text = _URL_TOKEN.sub(rf"\g<prefix>{REDACTED}@", text)
    if ":" in text and ("authorization" in lower or "cookie" in lower):
        text = _HEADER.sub(_redact_key_value, text)
    if "bearer" in lower:
        text = _BEARER.sub(rf"\g<scheme> {REDACTED}", text)
    if "basic" in lower:
        text = _BASIC.sub(_redact_basic, text)
    parameters = "?" in text or "&" in text or ";" in text or "#" in text or "/" in text
    if parameters and ("=" in text or "%3d" in lower):
        text = _QUERY_KEY.sub(_redact_parameter, text)  # first: it takes a whole value
    if pairs and _ANY_WORD.search(lower):
        text = _KEY_VALUE.sub(_redact_key_value, text)
    return text


def redact_url(url: str) -> str:
    """``url`` taken whole as one URL, with its credentials redacted.

    :func:`redact_text` reads a space as the end of a URL, so the part of a
    password or token after a space (``https://u:pa ss@host``,
    ``?token=ab cd``, which a malformed URL may hold) would be left as it
    is. Here, after :func:`redact_text` (so nothing it hides is ever
    shown), each whitespace or control character stands in as a
    private-use character of its own (no space to a regular expression, no
    letter or digit either), keeping the URL one piece for a second
    redaction; they are shown as given again, and the URL's own text
    (``%20`` included) is never decoded. For a value known to be a URL (a
    download's target); pure and idempotent, so safe on any thread.
    """
    text = redact_text(url)
    if not _SPACE_OR_CONTROL.search(text):
        return text
    for base in _STAND_IN_BASES:
        if not any(base <= ord(char) < base + _STAND_IN_SPAN for char in text):
            break
    else:  # pragma: no cover - a URL holding characters of both ranges
        return text
    end = base + _STAND_IN_SPAN
    for _ in range(_MAX_PASSES):  # until nothing changes: a fixed point, so idempotent
        whole = _SPACE_OR_CONTROL.sub(lambda match: chr(base + ord(match[0])), text)
        redacted = redact_text(whole)
        shown = "".join(chr(ord(c) - base) if base <= ord(c) < end else c for c in redacted)
        again = redact_text(shown)
        if again == text:
            break
        text = again
    return text
