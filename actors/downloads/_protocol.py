"""Internal messages between the facade, the keeper, the queues and the workers.

The state changes themselves are the public messages in
``messages.downloads``; these only coordinate who runs what. What the
keeper tells a queue is a ``NoDeadLetter``: the keeper owns the records,
and a queue's next incarnation gets them all in the answer to its
``Attach``, so one lost to a stopped queue loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from regisseur.actors.mailbox import NoDeadLetter

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors.downloads.claim_view import ClaimView
    from regisseur.messages.downloads import DownloadRecord, DownloadState

KEEPER = "download-keeper"
DOWNLOADS = "downloads"


def source_supervisor(source: str) -> str:
    """The name of a source's supervisor."""
    return f"source:{source}"


def queue_name(source: str) -> str:
    """The name of a source's queue actor."""
    return f"source:{source}.queue"


def worker_name(source: str, index: int) -> str:
    """The name of a source's ``index``-th worker (from 1)."""
    return f"source:{source}.worker-{index}"


@dataclass(frozen=True, slots=True)
class SourceConfig(NoDeadLetter):
    """A source's current limits, kept by the keeper across queue restarts."""

    concurrency: int
    delay: float
    cluster_limit: int | None = None  # cluster mode: all nodes together


# -- to the keeper -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddSource:
    """Register a source name (ask; ValueError if taken)."""

    name: str
    config: SourceConfig
    username: str | None
    # Which unfinished downloads left by a gone process it takes at start.
    resumes: Callable[[DownloadRecord], bool] | None = None


@dataclass(frozen=True, slots=True)
class RemoveSource:
    """Forget a source name (its subtree was stopped or failed to start)."""

    name: str


@dataclass(frozen=True, slots=True)
class Attach:
    """A source's queue (re)started: tell it ``Attached`` (its config and pending records).

    A tell, never an ask: a queue that waited in ``on_start`` for a keeper
    that had just failed held up its supervisor, which could then not
    restart the keeper (they share the downloads supervisor) until the
    queue's start timed out. ``token`` names the queue's incarnation; the
    answer carries it back, so an answer meant for an earlier one is ignored.
    ``running``: the runs on the source's board when the queue started, as
    ``(download id, claim)`` (``RunBoard.running``): after a restart of the
    keeper, those of its earlier incarnation that still go on.
    """

    source: str
    token: str
    running: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Configure:
    """Change a source's limits (ask; reply: the new ``SourceConfig``)."""

    source: str
    concurrency: int | None
    delay: float | None


@dataclass(frozen=True, slots=True)
class Applied:
    """Ask a source's queue: answered once what reached it before is applied (reply: True).

    ``configure()`` asks it after the keeper told the queue the new limits,
    so that the call returns only once they hold for the next start.
    """


@dataclass(frozen=True, slots=True)
class Released(NoDeadLetter):
    """A worker stopped mid-download (system stopping or restart): re-queue it.

    ``claim``: the stopped run's fencing token; a stale run's release is ignored.
    One that reaches a stopped keeper (the system stopping: the keeper's
    stop overtakes what its mailbox still holds) loses nothing: the record
    stays InProgress, stored so, and the next start resumes it first.
    """

    id: str
    worker: str
    claim: int | None = None


@dataclass(frozen=True, slots=True)
class CheckClaim:
    """Ask from a worker: is ``claim`` still the current run of ``id``? (reply: bool)

    Answered from the keeper's state without waiting for a commit.
    """

    id: str
    claim: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """Ask for one record (reply: record or None)."""

    id: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Ask: run an ended (Errored or Cancelled) download again under its id
    (reply: True if it was put back, False if it has not ended)."""

    id: str


@dataclass(frozen=True, slots=True)
class TakeOver:
    """Ask: run here an unfinished download whose owner (another process on
    the database) is gone. Reply: ``HERE`` (this keeper runs it, now or
    already), ``ELSEWHERE`` (a live owner holds it, or its source is not
    registered here while it is unfinished: ``NO_SOURCE``) or ``ENDED``."""

    id: str


HERE = "here"
ELSEWHERE = "elsewhere"
NO_SOURCE = "no-source"
ENDED = "ended"


@dataclass(frozen=True, slots=True)
class FinalState:
    """Ask for the final state of a forgotten download (reply: state or None)."""

    id: str


@dataclass(frozen=True, slots=True)
class ListRecords:
    """Ask for records by source and states (reply: a list, submit order)."""

    source: str | None
    states: tuple[DownloadState, ...] | None


@dataclass(frozen=True, slots=True)
class ListSources:
    """Ask for the registered source names."""


@dataclass(frozen=True, slots=True)
class Flush:
    """Timer: write the coalesced progress updates."""


# -- to a source's queue --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enqueue(NoDeadLetter):
    """Queue a record (``front``: it was interrupted and goes first).

    ``claim``: the fencing token the keeper allocated for the run that
    starts from this entry (every ``Enqueue`` the keeper sends has a fresh
    one; the queue keeps the highest it was given for a record).
    ``earlier``: the highest claim of the download an earlier keeper
    recorded (``DownloadContext.earlier_claim``; 0: none).
    """

    record: DownloadRecord
    front: bool = False
    claim: int = 0
    earlier: int = 0


@dataclass(frozen=True, slots=True)
class EnqueueMany(NoDeadLetter):
    """Queue new records at the back, in this order, each with its claim.

    What a series of ``Enqueue`` messages does, in one message: the keeper
    sends the submits that one commit stored together. ``earlier``: each
    record's ``Enqueue.earlier`` (empty: all 0).
    """

    records: tuple[DownloadRecord, ...]
    claims: tuple[int, ...]
    earlier: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Withdraw(NoDeadLetter):
    """The keeper cancelled the download: drop it or cancel its run.

    ``reason`` is the cancel reason its run sees (``"fenced"``: cluster
    mode, this node's lease guard ran out; the row is not ended here).
    """

    id: str
    reason: str = "cancelled"


@dataclass(frozen=True, slots=True)
class Attached(NoDeadLetter):
    """The keeper's answer to ``Attach`` (told to the queue)."""

    config: SourceConfig
    records: tuple[DownloadRecord, ...]
    claims: tuple[int, ...] = ()  # the fencing token allocated for each record
    token: str = ""
    # What runs read before publishing instead of asking ``CheckClaim``
    # (None in cluster mode: the check reads the database there).
    view: ClaimView | None = None
    earlier: tuple[int, ...] = ()  # each record's ``Enqueue.earlier`` (empty: all 0)


# -- to a worker ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Take(NoDeadLetter):
    """Take the next download from the source's board (a parked worker is woken).

    One that finds its worker stopped is dropped without a dead letter:
    every worker takes from the board when it starts.
    """


TAKE = Take()


@dataclass(frozen=True, slots=True)
class Retire(NoDeadLetter):
    """A worker above the concurrency limit left the board (told to its queue).

    The queue asks the supervisor to stop it, or, if the limit was raised
    meanwhile, tells it to take again: every ``StopChild`` and ``Spawn`` of
    a source's workers comes from its queue, in the order it decided them.
    One lost to a stopping queue loses nothing: the queue's restart
    restarts its workers too, and a worker above the limit asks again.
    """

    worker: str
