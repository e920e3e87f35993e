"""The LISTEN/NOTIFY channels the nodes talk on, and how to send on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

__all__ = ["DOWNLOADS_CHANNEL", "NODES_CHANNEL", "notify"]

#: Every committed state change of a download.
DOWNLOADS_CHANNEL = "regisseur_downloads"
#: A node joined, left or was reaped; a claim was given back.
NODES_CHANNEL = "regisseur_nodes"


def notify(connection: Connection | Session, channel: str, payload: str) -> None:
    """``pg_notify``: delivered to listeners when the transaction commits."""
    connection.execute(select(func.pg_notify(channel, payload)))
