"""Text from servers and URL lists made safe to show on a terminal.

A reason phrase, a redirect's ``Location``, a URL in an ``-i`` list or a
name decoded from one may hold terminal control sequences (``ESC ]0;...``
retitles the window, ``ESC [2J`` clears the screen, a ``CR`` rewrites the
line it is on to hide what came before). :func:`printable` shows each C0 and
C1 control character, and DEL, as a visible ``\\xNN`` escape, so a line
says what was received and does nothing else. Pure; any thread.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN``."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)
