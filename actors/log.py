"""Structured logging on stdlib :mod:`logging`: ``log.info("event", key=value)``.

The event name becomes ``record.event``, the keyword arguments
``record.fields`` and the bound ``actor`` field ``record.actor``; the record's
message is the event followed by its fields as ``key=value`` text
(``child_failed child=inbox error="KeyError: 'x'" restarts=2``), so a host's
own ``%(message)s`` format shows them too. Secrets are redacted before the
record exists, so every handler sees clean values (one redaction,
:func:`regisseur.messages.redaction.redact_text`, re-exported here). :class:`JsonFormatter` and
:class:`HumanFormatter` render the event and the fields once each;
:func:`configure_logging` (opt-in) installs one. Importing installs nothing
that prints. All of it is thread-safe.

Logger names: the library logs under ``regisseur.*``; a user's actor logs
under the module of its class (``Actor.logger_name`` overrides it), so the
two can be filtered apart.
"""

from __future__ import annotations

import json as _json
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import IO, TypeAlias, cast

from regisseur.messages.redaction import REDACTED, SENSITIVE_WORDS, redact_text

__all__ = [
    "REDACTED",
    "ExcInfo",
    "HumanFormatter",
    "JsonFormatter",
    "Logger",
    "configure_logging",
    "get_logger",
    "redact",
    "redact_text",
]

_SysExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
ExcInfo: TypeAlias = bool | BaseException | _SysExcInfo | tuple[None, None, None] | None
"""What ``exc_info=`` accepts, as in stdlib :mod:`logging`."""

_LIBRARY = "regisseur"
_INSTALLED = "_regisseur_configure_logging"  # marks configure_logging's handler
_BEFORE = "_regisseur_before"  # on that handler: {logger name: (propagate, level) before}
_CONFIGURE_LOCK = threading.Lock()
_STACKLEVEL = 3  # caller -> Logger.<level> -> Logger._emit -> logging.Logger.log
_SENSITIVE_KEY = re.compile(SENSITIVE_WORDS, re.IGNORECASE)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop a log line
        return f"<unprintable {type(value).__name__}>"


def safe_repr(value: object) -> str:
    """``repr(value)``, or a placeholder if that raises (never raises)."""
    return _safe_repr(value)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not stop a log line
        return f"<unrepresentable {type(value).__name__}>"


def _redact(value: object, path: frozenset[int]) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if not isinstance(value, (Mapping, list, tuple)):
        return value
    if id(value) in path:
        return "<cycle>"
    path = path | {id(value)}
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _SENSITIVE_KEY.search(_safe_str(key)) else _redact(v, path)
            for key, v in value.items()
        }
    items = [_redact(item, path) for item in value]
    return items if isinstance(value, list) else tuple(items)


def redact(value: object) -> object:
    """Return a copy of *value* with every secret replaced by ``[REDACTED]``.

    Mappings, lists and tuples are walked and copied (never mutated). A value
    whose key contains one of :data:`~messages.redaction.SENSITIVE_WORDS`
    (token, password, secret, api_key, signature, ... in any case) is
    replaced whole; every string goes through :func:`redact_text`; other
    objects are returned as they are. Pure, so thread-safe.
    """
    return _redact(value, frozenset())


class Logger:
    """A structured logger: ``log.info("event_name", key=value)``.

    Wraps a stdlib :class:`logging.Logger` plus immutable bound fields. Each
    call redacts the fields, then emits one record: ``event`` is the event,
    ``fields`` the other fields, ``actor`` the ``actor`` field as text (or
    ``None``) and ``msg`` the event followed by every field as ``key=value``
    (``actor`` first); ``funcName``/``lineno`` name the caller. ``exc_info``
    is the only reserved keyword. Immutable, so any number of threads may
    share one.
    """

    __slots__ = ("_bound", "_logger")

    def __init__(self, logger: logging.Logger, bound: Mapping[str, object] | None = None) -> None:
        """Wrap *logger* with a copy of the *bound* fields. Thread-safe."""
        self._logger = logger
        self._bound: Mapping[str, object] = dict(bound or {})

    @property
    def name(self) -> str:
        """The stdlib logger's name. Thread-safe."""
        return self._logger.name

    @property
    def fields(self) -> dict[str, object]:
        """A copy of the bound fields, as given. Thread-safe."""
        return dict(self._bound)

    def bind(self, **fields: object) -> Logger:
        """Return a new logger with *fields* added to the bound ones. Thread-safe."""
        return Logger(self._logger, {**self._bound, **fields})

    def log(self, level: int, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        """Emit *event* at the numeric *level* with *fields*. Thread-safe."""
        self._emit(level, event, exc_info, fields)

    def debug(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        """Emit *event* at DEBUG with *fields*. Thread-safe."""
        self._emit(logging.DEBUG, event, exc_info, fields)

    def info(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        """Emit *event* at INFO with *fields*. Thread-safe."""
        self._emit(logging.INFO, event, exc_info, fields)

    def warning(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        """Emit *event* at WARNING with *fields*. Thread-safe."""
        self._emit(logging.WARNING, event, exc_info, fields)

    def error(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        """Emit *event* at ERROR with *fields*. Thread-safe."""
        self._emit(logging.ERROR, event, exc_info, fields)

    def critical(self, event: str, /, *, exc_info: ExcInfo = None, **fields: object) -> None:
        """Emit *event* at CRITICAL with *fields*. Thread-safe."""
        self._emit(logging.CRITICAL, event, exc_info, fields)

    def exception(self, event: str, /, *, exc_info: ExcInfo = True, **fields: object) -> None:
        """Emit *event* at ERROR with the exception being handled. Thread-safe."""
        self._emit(logging.ERROR, event, exc_info, fields)

    def is_enabled_for(self, level: int) -> bool:
        """True if a record at *level* would reach a handler that keeps it. Thread-safe.

        The logger's level must let it through, and some handler on its way
        up (or stdlib's last-resort one) must take that level; the library's
        own ``NullHandler`` does not count. Building a record that nobody
        receives costs more than the work it reports (a restart logs two
        warnings), so callers with costly fields check this first.
        """
        return self._logger.isEnabledFor(level) and _has_listener(self._logger, level)

    def _emit(self, level: int, event: str, exc_info: ExcInfo, kw: dict[str, object]) -> None:
        if not self.is_enabled_for(level):
            return
        fields = cast("dict[str, object]", redact({**self._bound, **kw}))
        actor = fields.pop("actor", None)
        actor_text = None if actor is None else _safe_str(actor)
        event = redact_text(_safe_str(event))
        extra = {"event": event, "fields": fields, "actor": actor_text}
        text = _message_text(event, actor_text, fields)
        self._logger.log(level, text, exc_info=exc_info, extra=extra, stacklevel=_STACKLEVEL)


def _has_listener(logger: logging.Logger, level: int) -> bool:
    """True if stdlib would hand a *level* record of *logger* to a real handler.

    Walks the handlers as ``Logger.callHandlers`` does (up the parents
    while ``propagate``), reading each list as it is now, so handlers added
    or removed later count at once. A ``NullHandler`` drops everything, so
    it is no listener; it still counts as "a handler was found", which keeps
    stdlib's last-resort handler from taking the record (as stdlib does).
    """
    found = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level and not isinstance(handler, logging.NullHandler):
                return True
        current = current.parent if current.propagate else None
    if found:
        return False
    last_resort = logging.lastResort
    return last_resort is not None and level >= last_resort.level


def _message_text(event: str, actor: str | None, fields: Mapping[str, object]) -> str:
    """``event actor=… k=v …``: the message a plain ``%(message)s`` format shows.

    ``%`` is doubled nowhere: the record has no args, so stdlib never
    %-formats it.
    """
    pairs = [] if actor is None else [f"actor={_human_value(actor)}"]
    pairs.extend(f"{_safe_str(k)}={_human_value(v)}" for k, v in fields.items())
    return " ".join([event, *pairs])


def get_logger(name: str, **bound: object) -> Logger:
    """Return a :class:`Logger` for ``logging.getLogger(name)`` with *bound* fields.

    Thread-safe (the stdlib logger registry is locked).
    """
    if not isinstance(name, str):
        raise TypeError(f"logger name must be a str, not {type(name).__name__}")
    return Logger(logging.getLogger(name), bound)


def _record_fields(record: logging.LogRecord) -> dict[object, object]:
    fields = getattr(record, "fields", None) or {}
    fields = dict(fields) if isinstance(fields, Mapping) else {"fields": fields}
    return cast("dict[object, object]", redact(fields))


def _record_actor(record: logging.LogRecord) -> str | None:
    actor = getattr(record, "actor", None)
    return None if actor is None else redact_text(_safe_str(actor))


def _record_event(record: logging.LogRecord) -> str:
    event = getattr(record, "event", None)
    if isinstance(event, str):  # ours: the message repeats the fields
        return redact_text(event)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - bad %-args from a stdlib call: keep raw text
        message = f"{_safe_str(record.msg)} {_safe_repr(record.args)}"
    return redact_text(message)


def _record_traceback(fmt: logging.Formatter, record: logging.LogRecord) -> str:
    if record.exc_info:  # cache the clean text: later stdlib formatters reuse it
        record.exc_text = redact_text(fmt.formatException(record.exc_info))
    stack = record.stack_info and fmt.formatStack(record.stack_info)
    return redact_text("\n".join(part for part in (record.exc_text, stack) if part))


def _json_safe(value: object) -> object:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):  # json.dumps refuses ints past sys.get_int_max_str_digits()
        return value if value.bit_length() < 8000 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {_safe_str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return redact_text(_safe_repr(value))


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Keys: ``time`` (ISO 8601 UTC with milliseconds), ``level``, ``logger``,
    ``event``, ``actor`` (only when set), ``fields`` and ``exception`` (the
    traceback, only with ``exc_info``). Values JSON cannot hold become their
    ``repr``; all text is redacted; plain stdlib records work too. Never raises
    on odd values. Keeps no state, so thread-safe.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return *record* as a single JSON line. Thread-safe."""
        utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        payload: dict[str, object] = {
            "time": f"{utc}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": _record_event(record),
        }
        actor = _record_actor(record)
        if actor is not None:
            payload["actor"] = actor
        payload["fields"] = _json_safe(_record_fields(record))
        traceback_text = _record_traceback(self, record)
        if traceback_text:
            payload["exception"] = traceback_text
        return _json.dumps(payload, ensure_ascii=False, default=_safe_repr)


def _human_value(value: object) -> str:
    if isinstance(value, str):
        return value if re.fullmatch(r"[^\s'\"=]+", value) else repr(value)
    return redact_text(_safe_repr(value))


class HumanFormatter(logging.Formatter):
    """Formats a record as ``HH:MM:SS.mmm LEVEL logger [actor] event k=v …``.

    Strings with spaces or quotes are quoted (``note='two words'``); the
    traceback, if any, follows on the next lines. The time uses
    :attr:`converter` (local time by default). Redacted like
    :class:`JsonFormatter`. Keeps no state, so thread-safe.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return *record* as one readable line (plus traceback). Thread-safe."""
        clock = time.strftime("%H:%M:%S", self.converter(record.created))
        parts = [f"{clock}.{int(record.msecs):03d}", record.levelname, record.name]
        actor = _record_actor(record)
        if actor is not None:
            parts.append(f"[{actor}]")
        parts.append(_record_event(record))
        fields = _record_fields(record).items()
        parts.extend(f"{_safe_str(k)}={_human_value(v)}" for k, v in fields)
        traceback_text = _record_traceback(self, record)
        return "\n".join(part for part in (" ".join(parts), traceback_text) if part)


def configure_logging(
    level: int | str = "INFO",
    *,
    json: bool = False,
    stream: IO[str] | None = None,
    loggers: Iterable[str] = (_LIBRARY,),
) -> logging.Handler:
    """Print the library's logs (and those of *loggers*) on *stream*.

    Attaches one :class:`logging.StreamHandler` (default ``sys.stderr``) with
    :class:`JsonFormatter` if *json* else :class:`HumanFormatter` to each
    logger named in *loggers* (default ``"regisseur"``, the library; add your
    actors' packages, e.g. ``("regisseur", "myapp")``, or ``""`` for the root
    logger), sets them to *level* (number or name, e.g. ``"debug"``),
    re-enables loggers under those names that a ``dictConfig`` disabled, and
    returns the handler.

    Non-duplicating: those loggers stop propagating (the root logger aside),
    so a handler the host put on the root logger does not print each line a
    second time. Idempotent: a later call first undoes an earlier one (its
    handler is removed and closed, propagation restored), so one handler is
    ever installed. Other handlers are left alone. Thread-safe.
    """
    level = level.upper() if isinstance(level, str) else level
    names = _check_logger_names(loggers)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json else HumanFormatter())
    setattr(handler, _INSTALLED, True)
    before: dict[str, tuple[bool, int]] = {}
    setattr(handler, _BEFORE, before)
    with _CONFIGURE_LOCK:
        _check_level(level)  # an unknown level raises before anything changed
        replaced = _uninstall()
        for name in names:
            logger = logging.getLogger(name or None)
            before[name] = (logger.propagate, logger.level)
            logger.setLevel(level)
            if name:
                logger.propagate = False
            logger.disabled = False
            logger.addHandler(handler)
        _enable_below(names)
    for old in replaced:
        old.close()  # flushes; a StreamHandler leaves the caller's stream open
    return handler


def _check_logger_names(loggers: object) -> list[str]:
    if isinstance(loggers, str) or not isinstance(loggers, Iterable):
        msg = f"loggers must be a list of logger names, got {loggers!r}"
        raise TypeError(msg)
    names = list(dict.fromkeys(loggers))
    for name in names:
        if not isinstance(name, str):
            msg = f"loggers must hold logger names (str), got {name!r}"
            raise TypeError(msg)
    if not names:
        msg = "loggers must name at least one logger"
        raise ValueError(msg)
    return ["" if name == "root" else name for name in names]


def _uninstall() -> list[logging.Handler]:
    """Remove configure_logging's handler from every logger; restore propagation."""
    manager = logging.Logger.manager
    candidates = [logging.getLogger(), *manager.loggerDict.values()]
    removed: dict[int, logging.Handler] = {}
    for logger in candidates:
        if not isinstance(logger, logging.Logger):
            continue  # a placeholder
        for old in [h for h in logger.handlers if getattr(h, _INSTALLED, False)]:
            logger.removeHandler(old)
            removed[id(old)] = old
            name = "" if logger is logging.getLogger() else logger.name
            saved = getattr(old, _BEFORE, {}).get(name)
            if saved is not None:
                logger.propagate, level = saved
                logger.setLevel(level)
    return list(removed.values())


def _check_level(level: int | str) -> None:
    """Raise as ``Logger.setLevel`` would for an unknown level (changes nothing)."""
    probe = logging.Logger("regisseur-level-check")
    probe.setLevel(level)


def _enable_below(names: list[str]) -> None:
    """Undo ``disable_existing_loggers`` of a dictConfig for loggers under *names*."""
    prefixes = tuple(f"{name}." for name in names if name)
    everything = "" in names
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (everything or name.startswith(prefixes)):
            logger.disabled = False


def _install_null_handlers() -> None:
    """Keep stdlib's last-resort handler from printing the library's records."""
    logger = logging.getLogger(_LIBRARY)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


_install_null_handlers()
