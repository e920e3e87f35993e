"""The final states of downloads dropped from the keeper's memory (no database).

Without a database a terminal record leaves memory once ``history`` newer
ones have ended; the download still existed, so ``wait`` must not call it
unknown. This keeps one byte per download: its final state, indexed by the
counter in the facade's ids (``<prefix><12 hex digits>``), one
``bytearray`` per prefix; any other id (a message from elsewhere) goes to a
plain dict.

Threads: owned by the keeper and used on its thread only. Failures: none
(an id of any shape is kept).
"""

from __future__ import annotations

from regisseur.messages.downloads import DownloadState

__all__ = ["ForgottenStates"]

_STATES = tuple(DownloadState)
_CODE = {state: index + 1 for index, state in enumerate(_STATES)}  # 0: never forgotten
_COUNTER = 12  # hex digits of the facade's counter
_MAX_INDEX = 1 << 26  # beyond this a counter goes to the dict (bounds one bytearray)


class ForgottenStates:
    """id -> final state of a forgotten download, about a byte each."""

    __slots__ = ("_by_prefix", "_other")

    def __init__(self) -> None:
        self._by_prefix: dict[str, bytearray] = {}
        self._other: dict[str, DownloadState] = {}

    def __len__(self) -> int:
        counted = sum(len(codes) - codes.count(0) for codes in self._by_prefix.values())
        return counted + len(self._other)

    def add(self, download_id: str, state: DownloadState) -> None:
        """Remember that ``download_id`` ended in ``state`` (a terminal state)."""
        split = _split(download_id)
        if split is None:
            self._other[download_id] = state
            return
        prefix, index = split
        codes = self._by_prefix.setdefault(prefix, bytearray())
        if index >= len(codes):
            codes.extend(bytes(index + 1 - len(codes)))
        codes[index] = _CODE[state]

    def get(self, download_id: str) -> DownloadState | None:
        """The final state of a forgotten download, or None if it is not one."""
        split = _split(download_id)
        if split is None:
            return self._other.get(download_id)
        prefix, index = split
        codes = self._by_prefix.get(prefix)
        if codes is None or index >= len(codes) or codes[index] == 0:
            return None
        return _STATES[codes[index] - 1]


def _split(download_id: str) -> tuple[str, int] | None:
    """(prefix, counter) of a facade id, or None for an id of another shape."""
    if len(download_id) <= _COUNTER:
        return None
    digits = download_id[-_COUNTER:]
    try:
        index = int(digits, 16)
    except ValueError:
        return None
    if index >= _MAX_INDEX or digits != f"{index:012x}":
        return None
    return download_id[:-_COUNTER], index
