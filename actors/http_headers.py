"""What a download may send as a request header: one rule for the library and the CLI.

``HttpSource`` checks the headers it is given when it is made, and
``regisseur download`` checks ``--header`` and ``--user-agent`` while it
parses its arguments (before the runtime is imported: this module needs
only the standard library). Both refuse the same things with the same
words, and neither ever echoes a value (it is often a credential).

Pure functions and constants; any thread. Failures: none (they answer).
"""

from __future__ import annotations

import re

__all__ = ["BODY_HEADERS", "BODY_HEADER_PROBLEM", "HEADER_NAME", "OWN_HEADERS", "value_problem"]

#: A header name: an RFC 9110 token.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: Headers a download sets itself, to resume (lower case): never taken from a caller.
OWN_HEADERS = frozenset({"range", "if-range"})

#: Headers that frame a request's body (lower case): a download's GET sends
#: none, so the server would wait for the body they announce, or read the
#: next request on the connection as it (``Content-Length: 5`` made the
#: next download on the connection fail with ``HTTP 400 Bad Request``).
BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})

#: Why a header of :data:`BODY_HEADERS` is refused (after its quoted name).
BODY_HEADER_PROBLEM = (
    "frames a request body, and a download's GET sends none (the server would "
    "wait for it, or take the next request on the connection for it)"
)


def value_problem(value: str) -> str | None:
    """What keeps ``value`` from being sent as a header value, or None.

    HTTP sends header values as Latin-1 bytes (RFC 9110: visible characters,
    spaces and tabs): ``requests`` fails on anything else only when it
    sends, for every download, with the value in the error text. The answer
    never contains the value.
    """
    for char in value:
        if char == "\t":
            continue
        if ord(char) > 0xFF:
            return "a character that is not Latin-1 (percent-encode it, or base64 it)"
        if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            return "a control character"
    return None
