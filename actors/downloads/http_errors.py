"""Errors raised by :class:`~actors.downloads.http.HttpSource` downloads.

The message of a :class:`DownloadError` is what the user sees as the
record's ``error`` (it is a ``DownloadFailure``: no type name is added), so
every message says what went wrong and on which URL, with any credentials
in the URL already redacted.
"""

from __future__ import annotations

from regisseur.actors.downloads.errors import DownloadFailure

__all__ = ["STOPPING", "DownloadError", "DownloadInterrupted"]

#: The cancel reason the system uses when it is shutting down: the download
#: is resumed at the next start, so its ``.part`` file is kept.
STOPPING = "stopping"


class DownloadError(DownloadFailure):
    """A download failed for good (after any retries).

    ``status`` is the HTTP status code when the failure was an HTTP answer,
    else ``None``.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0])


class DownloadInterrupted(DownloadError):
    """The download was cancelled (``reason`` is the token's reason).

    With ``reason == "stopping"`` the system is shutting down and the
    partial file is kept for the next start; any other reason is a user
    cancel.
    """

    def __init__(self, reason: str) -> None:
        if reason == STOPPING:
            text = "interrupted: the system is stopping (will resume at the next start)"
        else:
            text = "cancelled" if reason in ("", "cancelled") else f"cancelled ({reason})"
        super().__init__(text)
        self.reason = reason
