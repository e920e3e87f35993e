"""Errors raised by the download facade."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regisseur.actors.errors import RegisseurError

if TYPE_CHECKING:
    from regisseur.messages.downloads import DownloadState

__all__ = [
    "DownloadFailure",
    "DownloadForgottenError",
    "StaleClaimError",
    "UnknownDownloadError",
    "UnknownSourceError",
]


class DownloadFailure(RegisseurError):
    """Raise it from an impl when its message is the whole story.

    The record's ``error`` is then the message alone (``"HTTP 404 Not
    Found: ..."``), not ``"Type: message"`` as for any other exception.
    """


class StaleClaimError(DownloadFailure):
    """This run of a download is no longer its owner: publish nothing.

    Raised by ``DownloadContext.ensure_owner()`` when another run took the
    download over (or ownership could not be confirmed). An impl that gets
    it must not publish its file; it discards what only it wrote and lets
    the error propagate (the keeper ignores the stale run's result).
    """

    def __init__(self, download_id: str, claim: int, why: str = "") -> None:
        self.download_id = download_id
        self.claim = claim
        text = f"download {download_id!r}: run {claim} is no longer its owner"
        super().__init__(f"{text} ({why})" if why else text)


class UnknownSourceError(RegisseurError, LookupError):
    """A download source name that is not registered with the system."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        names = ", ".join(repr(k) for k in known) or "none"
        super().__init__(f"unknown download source {name!r} (registered: {names})")


class UnknownDownloadError(RegisseurError, LookupError):
    """A download id the system has no record of."""

    def __init__(self, download_id: str) -> None:
        self.download_id = download_id
        super().__init__(f"unknown download id {download_id!r}")


class DownloadForgottenError(RegisseurError, LookupError):
    """A download that ended and whose record was dropped from memory.

    Without a database only the ``history`` most recent terminal records
    are kept; of older ones the keeper remembers only the final ``state``.
    """

    def __init__(self, download_id: str, state: DownloadState) -> None:
        self.download_id = download_id
        self.state = state
        super().__init__(
            f"download {download_id!r} ended ({state.value}) and its record was "
            "dropped from memory: without a database only the most recent "
            "DownloadSettings(history=...) records are kept"
        )
