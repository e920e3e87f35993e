"""The base class of commands, and how commands and events are named.

A **command** asks one actor to do something; it is sent with ``tell`` or
``ask`` to that actor and to nobody else. Its name is an imperative:
``QueueDownload``, ``ReportProgress``, ``Pause``, ``Spawn``.

An **event** (:class:`regisseur.messages.Event`) says that something
happened; it is published on the system's event bus to every subscriber.
Its name is in the past tense: ``DownloadStateChanged``, ``ChildRestarted``.

The two never share a name pattern, and the bus refuses a subscription to a
command (it is never published). The commands of an area sit in the same
module as its events, in a section of their own, each a subclass of
:class:`Command`.

Threads: plain immutable data, safe on any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Command"]


@dataclass(frozen=True, slots=True)
class Command:
    """Base class of every command: a request to one actor, named as an imperative."""
