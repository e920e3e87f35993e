"""Text from servers and URL lists made safe to show on a terminal.

A reason phrase, a redirect's ``Location``, a URL in an ``-i`` list or a
name decoded from one may hold terminal control sequences (``ESC ]0;...``
retitles the window, ``ESC [2J`` clears the screen, a ``CR`` rewrites the
line it is on to hide what came before). :func:`printable` shows each C0 and
C1 control character, and DEL, as a visible ``\\xNN`` escape, so a line
says what was received and does nothing else. The invisible characters
that reorder or hide text on a terminal that lays out bidirectional text
(the overrides and isolates of "Trojan Source": ``/\\u202egnp.exe`` shows
as ``/exe.png``; zero-width characters) are shown as ``\\uNNNN``, as file
names drop them. Pure; any thread.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0, DEL, C1; then the Arabic letter mark, zero-width characters and the
# marks, embeddings, overrides and isolates of bidirectional text, word
# joiners and invisible operators, the byte order mark, interlinear
# annotation.
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN`` (``\\uNNNN``
    for the invisible ones that reorder or hide text)."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape, text)
