"""Download states, records, the commands that change them, and their events.

Commands (``QueueDownload``, ``ClaimDownload``, ``ReportProgress``,
``CompleteDownload``, ``FailDownload``, ``CancelDownload``) are requests to
the state-keeper actor, named as imperatives; events
(``DownloadStateChanged``, ``DownloadProgressed``) are what the keeper
publishes afterwards, in the past tense. The names these commands used
to have still import, with a ``DeprecationWarning`` (see
:mod:`regisseur.messages._renamed`).

Everything here is immutable. A ``DownloadRecord`` is a snapshot: every
change makes a new one (``record.evolve(...)``), so a record handed to a
subscriber or returned by ``status()`` never changes under its reader.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from regisseur.messages._renamed import renamed
from regisseur.messages.commands import Command
from regisseur.messages.events import Event
from regisseur.messages.redaction import redact_text, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "CORE_FIELDS",
    "TEXT_LIMIT",
    "CancelDownload",
    "ClaimDownload",
    "CompleteDownload",
    "DownloadProgressed",
    "DownloadRecord",
    "DownloadState",
    "DownloadStateChanged",
    "FailDownload",
    "QueueDownload",
    "ReportProgress",
    "frozen_extra",
]


class DownloadState(str, enum.Enum):
    """A download's state; the string values are the legacy ones, kept exactly."""

    INITIALIZING = "Initializing"
    IN_PROGRESS = "InProgress, Downloading"
    SUCCEEDED = "Completed, Succeeded"
    ERRORED = "Errored"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        """True for Succeeded, Errored and Cancelled: no change after these."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({DownloadState.SUCCEEDED, DownloadState.ERRORED, DownloadState.CANCELLED})

#: The most characters ``downloads.submit()`` takes in a ``target_id`` (a URL),
#: a display name or an original file name (a longer one is a ``ValueError``).
TEXT_LIMIT = 8192

#: The keys of ``DownloadRecord.as_dict()`` that extras can never replace.
CORE_FIELDS = (
    "id",
    "filename",
    "username",
    "state",
    "progress",
    "size",
    "transferred",
    "speed",
    "time_remaining",
    "file_path",
    "error",
)


def frozen_extra(extra: Any) -> MappingProxyType[str, Any]:
    """A read-only copy of ``extra`` (``None`` gives an empty mapping)."""
    if extra is None:
        return MappingProxyType({})
    if isinstance(extra, MappingProxyType):
        return extra
    return MappingProxyType(dict(extra))


@dataclass(frozen=True, slots=True)
class DownloadRecord:
    """One download, as the state-keeper last recorded it.

    ``filename`` is the display name given at submit; ``target_id`` what the
    source fetches (a URL for ``HttpSource``); ``progress`` is a percentage
    (0-100); ``size`` is ``None`` while unknown (set on success for a body
    without a length); ``speed`` is bytes per second; ``time_remaining``
    seconds (``None`` while unknown). ``username`` is the submit's, else the
    source's ``username``, else the source's name. ``created_at`` and
    ``updated_at`` are wall-clock seconds since the epoch (UTC), read from
    the system's clock (``Clock.wall()``; a ``ManualClock`` keeps them
    deterministic).

    Its ``repr`` redacts credentials (a password or a signature in the
    ``target_id`` URL, tokens in ``extra``); the fields keep them as given,
    since the source needs the real URL.
    """

    id: str
    source: str
    target_id: str
    filename: str
    state: DownloadState = DownloadState.INITIALIZING
    username: str | None = None
    original_filename: str | None = None
    progress: float = 0.0
    size: int | None = None
    transferred: int = 0
    speed: float = 0.0
    time_remaining: float | None = None
    file_path: str | None = None
    error: str | None = None
    extra: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.extra, MappingProxyType):
            object.__setattr__(self, "extra", frozen_extra(self.extra))

    def __repr__(self) -> str:
        names = _FIELDS if type(self) is DownloadRecord else _names(self)
        fields = ", ".join(
            f"{name}={redact_url(self.target_id)!r}"
            if name == "target_id"
            else f"{name}={getattr(self, name)!r}"
            for name in names
        )
        return redact_text(f"{type(self).__name__}({fields})")

    @property
    def terminal(self) -> bool:
        """True once the download has ended (succeeded, errored or cancelled)."""
        return self.state.terminal

    def evolve(self, **changes: Any) -> DownloadRecord:
        """A copy with ``changes`` applied (the record itself never changes).

        What ``dataclasses.replace`` does, at under half its cost: the keeper
        evolves every record at least twice per download. Raises
        ``TypeError`` naming any field the record does not have.
        """
        if type(self) is not DownloadRecord:
            return dataclasses.replace(self, **changes)  # a subclass may add fields
        values = list(_get_all(self))
        try:
            for name, value in changes.items():
                values[_INDEX[name]] = value
        except KeyError:
            unknown = sorted(changes.keys() - _INDEX.keys())
            msg = f"DownloadRecord has no field(s) {', '.join(unknown)}"
            raise TypeError(msg) from None
        copy = _new(DownloadRecord)
        _fill(copy, values)
        if "extra" in changes:
            copy.__post_init__()
        return copy

    def as_dict(self) -> dict[str, Any]:
        """The legacy flat dict: the core fields, then the extras merged in.

        ``state`` is the legacy string value. An extra whose key is a core
        field is left out rather than allowed to lie about the record.
        """
        flat: dict[str, Any] = {key: v for key, v in self.extra.items() if key not in CORE_FIELDS}
        flat.update(
            id=self.id,
            filename=self.filename,
            username=self.username,
            state=self.state.value,
            progress=self.progress,
            size=self.size,
            transferred=self.transferred,
            speed=self.speed,
            time_remaining=self.time_remaining,
            file_path=self.file_path,
            error=self.error,
        )
        return flat


_FIELDS = tuple(f.name for f in dataclasses.fields(DownloadRecord))
_INDEX = {name: index for index, name in enumerate(_FIELDS)}
_get_all = operator.attrgetter(*_FIELDS)  # every field's value, in order, in one call
# The slots' own setters: a frozen dataclass's __setattr__ refuses, and these
# skip the attribute lookup object.__setattr__ does per field.
_SLOT_SETTERS = tuple(getattr(DownloadRecord, name).__set__ for name in _FIELDS)
_new = object.__new__


def _make_fill() -> Callable[[DownloadRecord, Sequence[Any]], None]:
    """``fill(record, values)``: set every slot from ``values`` (in field order).

    Generated from the fields, one statement per slot: a loop over the
    setters costs a third more, and ``evolve`` runs twice per download.
    """
    namespace: dict[str, Any] = {f"set_{i}": setter for i, setter in enumerate(_SLOT_SETTERS)}
    body = "".join(f"    set_{i}(record, values[{i}])\n" for i in range(len(_FIELDS)))
    exec(f"def fill(record, values):\n{body}", namespace)  # the names come from _FIELDS only
    fill: Callable[[DownloadRecord, Sequence[Any]], None] = namespace["fill"]
    return fill


_fill = _make_fill()


# Where ``initial_record`` puts a submit's values, and every other field's default.
_DEFAULTS = list(_get_all(DownloadRecord(id="", source="", target_id="", filename="")))
_I_ID, _I_SOURCE, _I_TARGET = _INDEX["id"], _INDEX["source"], _INDEX["target_id"]
_I_FILENAME, _I_USERNAME = _INDEX["filename"], _INDEX["username"]
_I_ORIGINAL, _I_EXTRA = _INDEX["original_filename"], _INDEX["extra"]
_I_CREATED, _I_UPDATED = _INDEX["created_at"], _INDEX["updated_at"]


def initial_record(message: QueueDownload, username: str | None, now: float) -> DownloadRecord:
    """The Initializing record of the submit ``message``, made at ``now`` (wall clock).

    Equal to ``DownloadRecord(id=message.id, ..., username=username,
    created_at=now, updated_at=now)`` at about half its cost: the keeper
    makes one per submit. Any thread (it only builds a new record).
    """
    values = _DEFAULTS.copy()
    values[_I_ID] = message.id
    values[_I_SOURCE] = message.source
    values[_I_TARGET] = message.target_id
    values[_I_FILENAME] = message.filename
    values[_I_USERNAME] = username
    values[_I_ORIGINAL] = message.original_filename
    values[_I_EXTRA] = message.extra  # a MappingProxyType already (QueueDownload's check)
    values[_I_CREATED] = now
    values[_I_UPDATED] = now
    record = _new(DownloadRecord)
    _fill(record, values)
    return record


def _names(record: DownloadRecord) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record) if f.repr)


# -- commands: every state change, as a request to the state-keeper ----------


@dataclass(frozen=True, slots=True)
class QueueDownload(Command):
    """Record a newly submitted download as Initializing."""

    id: str
    source: str
    target_id: str
    filename: str
    username: str | None = None
    original_filename: str | None = None
    extra: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.extra, MappingProxyType):
            object.__setattr__(self, "extra", frozen_extra(self.extra))


@dataclass(frozen=True, slots=True)
class ClaimDownload(Command):
    """Let worker ``worker`` run the download: Initializing becomes InProgress.

    The keeper answers whether the worker may run it: a download that was
    cancelled, or claimed already, must not run (again). ``claim`` is the
    run's fencing token (an epoch the keeper allocated, growing per
    download); ``None`` only from senders outside the download machinery.
    """

    id: str
    worker: str
    claim: int | None = None


@dataclass(frozen=True, slots=True)
class ReportProgress(Command):
    """Record the bytes so far (coalesced: the keeper flushes these at an interval)."""

    id: str
    transferred: int
    size: int | None
    speed: float
    time_remaining: float | None
    claim: int | None = None  # the reporting run's fencing token (None: not fenced)


@dataclass(frozen=True, slots=True)
class CompleteDownload(Command):
    """Record that the download ended with a file at ``file_path`` (Succeeded)."""

    id: str
    file_path: str
    transferred: int | None = None
    size: int | None = None
    claim: int | None = None  # the run's fencing token (None: not fenced)


@dataclass(frozen=True, slots=True)
class FailDownload(Command):
    """Record that the download ended with an error (``error``: a short text)."""

    id: str
    error: str
    claim: int | None = None  # the run's fencing token (None: not fenced)


@dataclass(frozen=True, slots=True)
class CancelDownload(Command):
    """Cancel the download (from any non-terminal state)."""

    id: str
    reason: str = "cancelled"


# -- events (published on the system's event bus) -----------------------------


@dataclass(frozen=True, slots=True)
class DownloadStateChanged(Event):
    """A download changed state; ``previous`` is ``None`` for a new one."""

    record: DownloadRecord
    previous: DownloadState | None = None


@dataclass(frozen=True, slots=True)
class DownloadProgressed(Event):
    """A running download reported progress (at most about ten a second)."""

    record: DownloadRecord


if not TYPE_CHECKING:  # type checkers report the old names as missing: use the new ones

    def __getattr__(name: str) -> Any:
        """The old names of the commands, with a ``DeprecationWarning``."""
        return renamed(__name__, name)
