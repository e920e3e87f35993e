"""Tests for actors.log: structured records, redaction, formatters, configuration."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regisseur.actors.log import (
    REDACTED,
    HumanFormatter,
    JsonFormatter,
    configure_logging,
    get_logger,
    redact,
    redact_text,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

NAMESPACES = ("regisseur",)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ListHandler(logging.Handler):
    """Keeps the raw records, like a third-party handler would see them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _restore_library_loggers() -> Iterator[None]:
    """Undo every handler, level and propagation change a test makes."""
    names = (*NAMESPACES, "", "myapp", "myapp.jobs")
    saved = {
        name: (
            list(logging.getLogger(name or None).handlers),
            logging.getLogger(name or None).level,
            logging.getLogger(name or None).propagate,
        )
        for name in names
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name or None)
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def records() -> Iterator[ListHandler]:
    handler = ListHandler()
    logger = logging.getLogger("regisseur.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def capture_json() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)
    return stream


def make_record(**attrs: object) -> logging.LogRecord:
    base: dict[str, object] = {
        "name": "regisseur.test.made",
        "levelno": logging.INFO,
        "levelname": "INFO",
        "msg": "made_event",
        "created": 1700000000.123,
        "msecs": 123.0,
    }
    return logging.makeLogRecord({**base, **attrs})


# --- import -----------------------------------------------------------------


def test_import_installs_no_printing_handler() -> None:
    code = (
        "import logging\n"
        "import regisseur.actors.log\n"
        "names = ('regisseur',)\n"
        "found = [h for n in names for h in logging.getLogger(n).handlers\n"
        "         if isinstance(h, logging.StreamHandler)]\n"
        "assert not found, found\n"
        "regisseur.actors.log.get_logger('regisseur.x').error('must_not_print')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert "must_not_print" not in result.stderr


# --- JSON shape ---------------------------------------------------------------


def test_json_line_has_the_documented_keys_and_values() -> None:
    stream = capture_json()
    get_logger("regisseur.test.log").info(
        "server_started", port=8080, ratio=0.5, ok=True, nothing=None, names=["a", "b"]
    )
    (line,) = json_lines(stream)
    assert set(line) == {"time", "level", "logger", "event", "fields"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["level"] == "INFO"
    assert line["logger"] == "regisseur.test.log"
    assert line["event"] == "server_started"
    assert line["fields"] == {
        "port": 8080,
        "ratio": 0.5,
        "ok": True,
        "nothing": None,
        "names": ["a", "b"],
    }


def test_json_time_is_utc_with_milliseconds() -> None:
    line = json.loads(JsonFormatter().format(make_record()))
    assert line["time"] == "2023-11-14T22:13:20.123Z"


def test_json_is_one_object_per_line_even_with_newlines_in_values() -> None:
    stream = capture_json()
    log = get_logger("regisseur.test.log")
    log.info("first", text="line one\nline two")
    log.warning("second\nevent")
    log.error("third")
    lines = json_lines(stream)
    assert [line["event"] for line in lines] == ["first", "second\nevent", "third"]
    assert lines[0]["fields"]["text"] == "line one\nline two"
    assert [line["level"] for line in lines] == ["INFO", "WARNING", "ERROR"]


def test_bound_actor_is_top_level_and_other_fields_merge() -> None:
    stream = capture_json()
    base = get_logger("regisseur.test.log", component="downloads")
    worker = base.bind(actor="worker-1", server_id=3)
    worker.warning("tick", n=1)
    worker.info("override", server_id=4)
    base.info("plain")
    tick, override, plain = json_lines(stream)
    assert tick["actor"] == "worker-1"
    assert tick["fields"] == {"component": "downloads", "server_id": 3, "n": 1}
    assert override["fields"]["server_id"] == 4
    assert "actor" not in plain
    assert plain["fields"] == {"component": "downloads"}
    assert base.fields == {"component": "downloads"}  # bind made a new logger


def test_levels_below_the_configured_one_are_dropped() -> None:
    stream = io.StringIO()
    configure_logging("warning", json=True, stream=stream)
    log = get_logger("regisseur.test.log")
    log.debug("hidden_debug")
    log.info("hidden_info")
    log.warning("shown_warning")
    log.critical("shown_critical")
    events = [line["event"] for line in json_lines(stream)]
    assert events == ["shown_warning", "shown_critical"]


# --- the record ---------------------------------------------------------------


def test_record_carries_event_fields_actor_and_the_callers_location(
    records: ListHandler,
) -> None:
    log = get_logger("regisseur.test.records").bind(actor="a1")
    line = sys._getframe().f_lineno + 1
    log.info("evt", k=1)
    (record,) = records.records
    assert record.event == "evt"  # type: ignore[attr-defined]
    # The key fields are in the message too, for the host's own format strings.
    assert record.getMessage() == "evt actor=a1 k=1"
    assert record.fields == {"k": 1}  # type: ignore[attr-defined]
    assert record.actor == "a1"  # type: ignore[attr-defined]
    assert record.funcName == ("test_record_carries_event_fields_actor_and_the_callers_location")
    assert record.lineno == line
    assert Path(record.pathname).resolve() == Path(__file__).resolve()


def test_record_without_bound_actor_has_actor_none(records: ListHandler) -> None:
    get_logger("regisseur.test.records").info("evt")
    (record,) = records.records
    assert record.actor is None  # type: ignore[attr-defined]
    assert record.fields == {}  # type: ignore[attr-defined]


def test_exception_and_exc_info_attach_the_exception(records: ListHandler) -> None:
    log = get_logger("regisseur.test.records")
    error = ValueError("bad")
    try:
        raise error
    except ValueError:
        line = sys._getframe().f_lineno + 1
        log.exception("failed", step=2)
    log.warning("noted", exc_info=error)
    failed, noted = records.records
    assert failed.levelno == logging.ERROR
    assert failed.exc_info is not None and failed.exc_info[1] is error
    assert failed.lineno == line
    assert failed.fields == {"step": 2}  # type: ignore[attr-defined]
    assert noted.levelno == logging.WARNING
    assert noted.exc_info is not None and noted.exc_info[1] is error


def test_redaction_happens_before_any_handler_sees_the_record(
    records: ListHandler,
) -> None:
    get_logger("regisseur.test.records", api_key="k-123").info(
        "login https://bob:pw-1@host",
        password="pw-2",
        headers={"Authorization": "Bearer tok-3"},
        url="https://bob:pw-4@host/p",
    )
    (record,) = records.records
    assert record.fields == {  # type: ignore[attr-defined]
        "api_key": REDACTED,
        "password": REDACTED,
        "headers": {"Authorization": REDACTED},
        "url": f"https://bob:{REDACTED}@host/p",
    }
    assert record.event == f"login https://bob:{REDACTED}@host"  # type: ignore[attr-defined]
    assert record.msg.startswith(f"login https://bob:{REDACTED}@host api_key={REDACTED} ")
    dump = repr(vars(record))
    for secret in ("k-123", "pw-1", "pw-2", "tok-3", "pw-4"):
        assert secret not in dump


# --- redaction through the formatters -------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "passwd",
        "token",
        "access_token",
        "API-Key",
        "apikey",
        "client_secret",
        "Authorization",
        "cookie",
        "credentials",
        "private_key",
        "X-Api-Key",
    ],
)
def test_sensitive_field_names_are_redacted(key: str) -> None:
    stream = capture_json()
    get_logger("regisseur.test.log").info("login", user="bob", **{key: "s3cr3t-value"})
    raw = stream.getvalue()
    (line,) = json_lines(stream)
    assert line["fields"] == {"user": "bob", key: REDACTED}
    assert "s3cr3t-value" not in raw


def test_nested_headers_and_containers_are_redacted() -> None:
    stream = capture_json()
    get_logger("regisseur.test.log").info(
        "request",
        headers={"Authorization": "Bearer abc123", "Accept": "application/json"},
        items=[{"token": "t1", "id": 1}, ("https://u:pw9@host/x",)],
        meta={"inner": {"Set-Cookie": "sid=1"}},
    )
    raw = stream.getvalue()
    (line,) = json_lines(stream)
    assert line["fields"]["headers"] == {
        "Authorization": REDACTED,
        "Accept": "application/json",
    }
    assert line["fields"]["items"] == [
        {"token": REDACTED, "id": 1},
        [f"https://u:{REDACTED}@host/x"],
    ]
    assert line["fields"]["meta"] == {"inner": {"Set-Cookie": REDACTED}}
    for secret in ("abc123", "t1", "pw9", "sid=1"):
        assert secret not in raw


def test_secrets_inside_string_values_are_redacted() -> None:
    stream = capture_json()
    get_logger("regisseur.test.log").info(
        "fetch",
        url="https://alice:hunter2@db.example/p?x=1",
        note="sent Bearer abc.def-ghi to upstream",
        callback="/cb?token=xyz&page=2",
    )
    (line,) = json_lines(stream)
    assert line["fields"] == {
        "url": f"https://alice:{REDACTED}@db.example/p?x=1",
        "note": f"sent Bearer {REDACTED} to upstream",
        "callback": f"/cb?token={REDACTED}&page=2",
    }


def test_event_text_and_exception_text_are_redacted() -> None:
    stream = capture_json()
    log = get_logger("regisseur.test.log")
    log.error("fetch https://u:pw1@host failed")
    try:
        raise RuntimeError("connect failed password=pw2 via https://bob:pw3@db")
    except RuntimeError:
        log.exception("connect_failed", attempt=1)
    raw = stream.getvalue()
    first, second = json_lines(stream)
    assert first["event"] == f"fetch https://u:{REDACTED}@host failed"
    assert "exception" not in first
    assert second["event"] == "connect_failed"
    assert second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback (most recent call last):")
    assert (
        f"RuntimeError: connect failed password={REDACTED} via https://bob:{REDACTED}@db"
        in second["exception"]
    )
    for secret in ("pw1", "pw2", "pw3"):
        assert secret not in raw


def test_non_serialisable_values_become_repr_and_never_raise() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<Thing 1>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    class Conn:
        def __repr__(self) -> str:
            return "Conn(password=hunter2)"

    stream = capture_json()
    get_logger("regisseur.test.log").info(
        "odd_values",
        thing=Thing(),
        broken=Broken(),
        conn=Conn(),
        raw=b"bytes",
        nan=float("nan"),
        mapping={(1, 2): "tuple key", 3: "int key"},
        huge=10**5000,
    )
    (line,) = json_lines(stream)
    fields = line["fields"]
    assert fields["thing"] == "<Thing 1>"
    assert fields["broken"].startswith("<unrepresentable Broken")
    assert fields["conn"] == f"Conn(password={REDACTED})"
    assert fields["raw"] == "b'bytes'"
    assert fields["nan"] == "nan"
    assert fields["mapping"] == {"(1, 2)": "tuple key", "3": "int key"}
    assert fields["huge"].startswith("<int of ")


def test_plain_stdlib_records_format_fine() -> None:
    stream = capture_json()
    logging.getLogger("regisseur.test.plain").warning("hello %s", "world")
    (line,) = json_lines(stream)
    assert line["event"] == "hello world"
    assert line["fields"] == {}
    assert "actor" not in line
    assert line["level"] == "WARNING"
    bad_args = make_record(msg="value %d", args=("not a number",))
    assert "value %d" in json.loads(JsonFormatter().format(bad_args))["event"]
    with_fields = make_record(fields={"password": "p1"}, actor="w")
    line = json.loads(JsonFormatter().format(with_fields))
    assert line["fields"] == {"password": REDACTED}
    assert line["actor"] == "w"


# --- human formatter ------------------------------------------------------------


def test_human_formatter_line() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    get_logger("regisseur.test.log").bind(actor="worker-1").info(
        "started", count=2, note="two words", password="x"
    )
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO regisseur\.test\.log \[worker-1\] started"
        r" count=2 note='two words' password=\[REDACTED\]\n",
        stream.getvalue(),
    )


def test_human_formatter_time_and_traceback() -> None:
    formatter = HumanFormatter()
    formatter.converter = time.gmtime
    assert formatter.format(make_record()) == "22:13:20.123 INFO regisseur.test.made made_event"
    try:
        raise KeyError("token=abc")
    except KeyError:
        exc_info = sys.exc_info()
    record = make_record(exc_info=exc_info, fields={"n": 1})
    text = formatter.format(record)
    first, *rest = text.splitlines()
    assert first == "22:13:20.123 INFO regisseur.test.made made_event n=1"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == f"KeyError: 'token={REDACTED}'"
    assert "abc" not in text
    # The clean traceback is cached on the record for stdlib formatters after us.
    assert "abc" not in logging.Formatter().format(record)


# --- configure_logging ----------------------------------------------------------


def test_configure_logging_replaces_its_own_handler() -> None:
    foreign = ListHandler()
    logging.getLogger("regisseur").addHandler(foreign)
    first_stream, second_stream = io.StringIO(), io.StringIO()
    first = configure_logging(stream=first_stream)
    second = configure_logging(json=True, stream=second_stream)
    assert first is not second
    assert isinstance(second.formatter, JsonFormatter)
    handlers = logging.getLogger("regisseur").handlers
    assert second in handlers
    assert first not in handlers
    assert sum(isinstance(h, logging.StreamHandler) for h in handlers) == 1
    assert foreign in handlers
    for name in ("regisseur.test.log", "regisseur.supervision.test"):
        get_logger(name).info("once")
    assert first_stream.getvalue() == ""
    assert [line["logger"] for line in json_lines(second_stream)] == [
        "regisseur.test.log",
        "regisseur.supervision.test",
    ]
    assert len(foreign.records) == 2


def test_configure_logging_with_a_root_handler_prints_each_line_once() -> None:
    """A host that logs through the root logger and also calls configure_logging."""
    root_stream, ours = io.StringIO(), io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)
    try:
        configure_logging(stream=ours)
        configure_logging(stream=ours)  # idempotent: still one handler
        get_logger("regisseur.test.log").warning("only_once", n=1)
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert ours.getvalue().count("only_once") == 1
    assert root_stream.getvalue() == ""


def test_configure_logging_undoes_its_earlier_call() -> None:
    app = logging.getLogger("myapp")
    assert app.propagate
    first = configure_logging(stream=io.StringIO(), loggers=("regisseur", "myapp"))
    assert not app.propagate and first in app.handlers
    assert app.level == logging.INFO
    second = configure_logging("DEBUG", stream=io.StringIO())
    assert app.propagate and first not in app.handlers and second not in app.handlers
    assert app.level == logging.NOTSET
    assert logging.getLogger("regisseur").level == logging.DEBUG


def test_configure_logging_covers_the_users_own_loggers() -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, loggers=("regisseur", "myapp"))
    get_logger("myapp.jobs").info("mine", k=1)
    get_logger("regisseur.test.log").info("library")
    lines = json_lines(stream)
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("myapp.jobs", "mine"),
        ("regisseur.test.log", "library"),
    ]
    with pytest.raises(TypeError, match="logger names"):
        configure_logging(loggers="regisseur")
    with pytest.raises(TypeError, match="logger names"):
        configure_logging(loggers=[1])  # type: ignore[list-item]


def test_configure_logging_revives_loggers_a_dict_config_disabled() -> None:
    logger = get_logger("regisseur.test.disabled")
    stdlib = logging.getLogger("regisseur.test.disabled")
    stream = io.StringIO()
    try:
        # What dictConfig does to every existing logger it does not name,
        # unless given "disable_existing_loggers": False.
        logging.config.dictConfig({"version": 1, "incremental": False})
        assert stdlib.disabled
        configure_logging(stream=stream)
        assert not stdlib.disabled
        logger.info("back")
    finally:
        stdlib.disabled = False
    assert "back" in stream.getvalue()


def test_configure_logging_rejects_an_unknown_level_and_keeps_its_handler() -> None:
    stream = io.StringIO()
    installed = configure_logging(json=True, stream=stream)
    with pytest.raises(ValueError, match="NONSENSE"):
        configure_logging("nonsense")
    assert installed in logging.getLogger("regisseur").handlers
    get_logger("regisseur.test.log").info("still_here")
    assert [line["event"] for line in json_lines(stream)] == ["still_here"]


# --- helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pass@host/p", f"https://user:{REDACTED}@host/p"),
        ("Authorization: Bearer abc.def", f"Authorization: {REDACTED}"),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: {REDACTED}"),
        ("sent Basic dXNlcjpwYXNz", f"sent Basic {REDACTED}"),
        ("GET /x?api_key=zzz&page=2", f"GET /x?api_key={REDACTED}&page=2"),
        ("password=hunter2 user=bob", f"password={REDACTED} user=bob"),
        ("{'passwd': 'hunter2'}", f"{{'passwd': '{REDACTED}'}}"),
        ('{"token": "abc"}', f'{{"token": "{REDACTED}"}}'),
        ("Basic setup complete", "Basic setup complete"),
        ("retries=3 user=bob", "retries=3 user=bob"),
        (
            "https://b.s3.amazonaws.com/f?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIA%2F20260101%2Fs3&X-Amz-Security-Token=tok"
            "&X-Amz-Signature=0a1b&X-Amz-Expires=60",
            "https://b.s3.amazonaws.com/f?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={REDACTED}&X-Amz-Security-Token={REDACTED}"
            f"&X-Amz-Signature={REDACTED}&X-Amz-Expires=60",
        ),
        (
            "/f?Signature=s1&Expires=9&AWSAccessKeyId=a1",
            f"/f?Signature={REDACTED}&Expires=9&AWSAccessKeyId={REDACTED}",
        ),
        ("/f?sv=2&SIG=s1&se=3", f"/f?sv=2&SIG={REDACTED}&se=3"),
        ("/f?Token=t&access_token=a", f"/f?Token={REDACTED}&access_token={REDACTED}"),
        ("/f#id_token=i&state=s", f"/f#id_token={REDACTED}&state=s"),
        ("/f?key=k&pwd=p&page=2", f"/f?key={REDACTED}&pwd={REDACTED}&page=2"),
        ("design=3 signal=4 monkey=5 /f?sign=1", "design=3 signal=4 monkey=5 /f?sign=1"),
        # A name the server decodes, and a whole value (before: both leaked).
        ("/f?%54oken=t&x=1", f"/f?%54oken={REDACTED}&x=1"),
        ("/f?to%6Ben=t;api%5Fkey=k", f"/f?to%6Ben={REDACTED};api%5Fkey={REDACTED}"),
        ("/f?x=1&%73ig=s#%61ccess_token=a", f"/f?x=1&%73ig={REDACTED}#%61ccess_token={REDACTED}"),
        ("/f?%2574oken=t", f"/f?%2574oken={REDACTED}"),
        ("/f?token%3Dt&x=1", f"/f?token%3D{REDACTED}&x=1"),
        ("/f?a[token]=t&sig[]=s", f"/f?a[token]={REDACTED}&sig[]={REDACTED}"),
        ("/f?token=a,b(c)[d]{e}", f"/f?token={REDACTED}"),
        ("'http://h/f?token=t', 'x'", f"'http://h/f?token={REDACTED}', 'x'"),
        ("/f?%41=1&page%3D2&monkey=3", "/f?%41=1&page%3D2&monkey=3"),
        # The same in a path segment (before: the encoded names leaked, the plain ones not).
        ("http://h/dl/%74oken%3Dt/x", f"http://h/dl/%74oken%3D{REDACTED}"),
        ("http://h/api%5Fkey=k", f"http://h/api%5Fkey={REDACTED}"),
        ("http://h/dl/sig=s", f"http://h/dl/sig={REDACTED}"),
        ("http://h:8/a=1/page=2/", "http://h:8/a=1/page=2/"),
        # A token as the user name (before: shown as it is).
        ("get https://ghp_t0k@github.com/x", f"get https://{REDACTED}@github.com/x"),
        ("HTTP://t0k@h/", f"HTTP://{REDACTED}@h/"),
        ("postgresql://postgres@db/x", "postgresql://postgres@db/x"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


_FRAGMENTS = [
    "http://", "https://u:p@h/", "https://t@h/", "@", ":", "=", "&", "?", "#", ";", " ", "'", '"',
    "token", "Password", "X-Amz-Signature", "sig", "key", "Authorization", "Cookie",
    "Bearer abc", "Basic dXNlcjpwYXNz", "basic", "api_key", "value", "x/y", "[REDACTED]",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join))
def test_redact_text_skips_only_patterns_that_cannot_match(text: str) -> None:
    """The quick checks in front of each pattern never change the result."""
    from regisseur.messages import redaction as r

    full = r._URL_CREDENTIALS.sub(rf"\g<prefix>:{REDACTED}@", text)
    full = r._URL_TOKEN.sub(rf"\g<prefix>{REDACTED}@", full)
    full = r._HEADER.sub(r._redact_key_value, full)
    full = r._BEARER.sub(rf"\g<scheme> {REDACTED}", full)
    full = r._BASIC.sub(r._redact_basic, full)
    full = r._QUERY_KEY.sub(r._redact_parameter, full)
    full = r._KEY_VALUE.sub(r._redact_key_value, full)
    assert r._redact_once(text) == full


def test_redact_copies_and_does_not_mutate() -> None:
    original = {"headers": {"Cookie": "c"}, "items": [("token=t",)], "n": 1}
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    assert redact(original) == {
        "headers": {"Cookie": REDACTED},
        "items": [(f"token={REDACTED}",)],
        "n": 1,
    }
    assert original == {"headers": {"Cookie": "c"}, "items": [("token=t",)], "n": 1}
    assert redact(cyclic) == {"self": "<cycle>"}


def test_logging_from_many_threads_keeps_lines_whole() -> None:
    stream = capture_json()
    base = get_logger("regisseur.test.log")

    def work(index: int) -> None:
        log = base.bind(actor=f"worker-{index}")
        for n in range(50):
            log.info("tick", n=n, token="t")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    lines = json_lines(stream)
    assert len(lines) == 400
    for index in range(8):
        mine = [line for line in lines if line["actor"] == f"worker-{index}"]
        assert [line["fields"]["n"] for line in mine] == list(range(50))
    assert all(line["fields"]["token"] == REDACTED for line in lines)


# --- records nobody receives ---------------------------------------------------
class CountsItsText:
    """A field value that counts how often a record's text was built from it."""

    def __init__(self) -> None:
        self.built = 0

    def __str__(self) -> str:
        self.built += 1
        return "counted"

    __repr__ = __str__


def test_a_record_no_handler_takes_is_not_built() -> None:
    # Only the library's NullHandler on the way up (pytest's root handlers cut off).
    logging.getLogger("regisseur").propagate = False
    log = get_logger("regisseur.test.quiet")
    value = CountsItsText()
    log.warning("nobody_listens", value=value)
    assert value.built == 0
    assert not log.is_enabled_for(logging.WARNING)

    picky = ListHandler()
    picky.setLevel(logging.ERROR)
    logging.getLogger("regisseur.test").addHandler(picky)
    log.warning("below_the_handlers_level", value=value)
    assert value.built == 0
    assert picky.records == []

    keen = ListHandler()
    logging.getLogger("regisseur").addHandler(keen)
    assert log.is_enabled_for(logging.WARNING)
    log.warning("someone_listens", value=value)
    assert value.built > 0
    assert [r.event for r in keen.records] == ["someone_listens"]  # type: ignore[attr-defined]


def test_a_logger_with_no_handler_at_all_still_reaches_the_last_resort() -> None:
    name = "lastresort_probe"  # a logger no other test configures or disables
    logger = logging.getLogger(name)
    logger.propagate = False  # pytest's root handlers would listen
    logger.disabled = False  # a dictConfig elsewhere may have disabled it
    stream = io.StringIO()
    saved = logging.lastResort
    logging.lastResort = logging.StreamHandler(stream)
    logging.lastResort.setLevel(logging.WARNING)
    try:
        get_logger(name).warning("printed_anyway", n=1)
        get_logger(name).info("below_last_resort", n=2)
    finally:
        logging.lastResort = saved
        logger.propagate = True
    assert stream.getvalue() == "printed_anyway n=1\n"


@pytest.mark.timeout(30)
def test_dead_letters_build_their_log_text_only_when_someone_listens(
    system_factory: Any,
) -> None:
    from regisseur.actors import Actor
    from regisseur.messages import DeadLetter
    from regisseur.supervision import ChildSpec
    from regisseur.supervision.testing import Probe

    class Deaf(Actor):
        def on_receive(self, message: Any) -> Any:
            return super().on_receive(message)

    system = system_factory([ChildSpec("deaf", Deaf)])
    probe = Probe(system, DeadLetter)
    logging.getLogger("regisseur").propagate = False
    quiet = CountsItsText()
    system.tell("deaf", quiet)
    probe.expect(DeadLetter, recipient="deaf", reason="unhandled")
    assert quiet.built == 0  # the event still goes out; no log text was made

    keen = ListHandler()
    logging.getLogger("regisseur").addHandler(keen)
    heard = CountsItsText()
    system.tell("deaf", heard)
    probe.expect(DeadLetter, recipient="deaf", reason="unhandled")
    assert heard.built > 0
    letters = [r for r in keen.records if getattr(r, "event", None) == "dead_letter"]
    assert letters
    assert letters[-1].fields["message"] == "counted"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://user:Pw5q Zr7k@host/file", "Pw5q Zr7k"),
        ("http://host/a b?token=Tk3v Xq9w&x=1", "Tk3v Xq9w"),
        ("http://host/f?X-Amz-Signature=Sg7j\tQz3m", "Sg7j\tQz3m"),
        ("https://Tq8n Vb2x@host/f", "Tq8n Vb2x"),
    ],
)
def test_a_url_with_whitespace_keeps_no_part_of_its_secret(url: str, secret: str) -> None:
    """A malformed download URL (the library takes any string) is redacted whole:
    in the error that refuses it and in the record's repr."""
    from regisseur.actors.downloads._http_wire import check_url
    from regisseur.actors.downloads.http_errors import DownloadError
    from regisseur.messages import DownloadRecord
    from regisseur.messages.redaction import redact_url

    parts = re.split(r"\s", secret)
    with pytest.raises(DownloadError) as refused:
        check_url(url)
    record = DownloadRecord(id="1", source="http", target_id=url, filename="f")
    for shown in (redact_url(url), str(refused.value), repr(record)):
        assert REDACTED in shown
        assert not any(part in shown for part in parts), shown
    assert record.target_id == url, "the field keeps the real URL for the source"


@pytest.mark.parametrize(
    "url",
    [
        " http://u:Pw5q%20Zr7k@host/file",  # a target given with a leading space
        "x\thttp://u:Pw5q%20Zr7k@host/file",
        "http://h/f?x=1\n token: 'Pw5q%20Zr7k'",
    ],
)
def test_redact_url_never_shows_what_redact_text_hides(url: str) -> None:
    """A password holding an encoded space (%20), after whitespace: redact_text
    hides it, and so must redact_url and the record's repr (they showed it,
    decoded: 'Pw5q Zr7k')."""
    from regisseur.messages import DownloadRecord
    from regisseur.messages.redaction import redact_url

    assert "Pw5q" not in redact_text(url)
    record = DownloadRecord(id="1", source="http", target_id=url, filename="f")
    for shown in (redact_url(url), repr(record)):
        assert "Pw5q" not in shown, shown
        assert "Zr7k" not in shown, shown


@pytest.mark.parametrize(
    "url",
    [
        "http://host/a%20b c",  # an encoded space stays encoded
        "http://host/a b%1b[2J",  # an encoded ESC is not decoded into a terminal
        "http://host/a\u3000b c\x85d",  # unicode spaces are shown as given
    ],
)
def test_redact_url_shows_a_url_without_secrets_as_given(url: str) -> None:
    from regisseur.messages.redaction import redact_url

    assert redact_url(url) == url


_URL_PIECES = st.sampled_from(
    ["http://", "https://", "u", ":", "@", "/", "?", "&", "=", "#", ";", " ", "\t", "\n"]
    + ["\u3000", "\x85", "%20", "%09", "%3D", "%", "token", "sig", "password", "Bearer "]
    + ["basic ", "Authorization", ": ", "'", '"', "[REDACTED]", "\x1b"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(_URL_PIECES, st.just("SECRET")), min_size=2, max_size=12))
def test_redact_url_hides_all_that_redact_text_hides_and_is_idempotent(
    pieces: list[str],
) -> None:
    from regisseur.messages.redaction import redact_url

    secrets = [f"S{i}Q" if piece == "SECRET" else piece for i, piece in enumerate(pieces)]
    url = "".join(secrets)
    hidden_by_text = {s for s in secrets if s.startswith("S") and s not in redact_text(url)}
    shown = redact_url(url)
    assert not any(s in shown for s in hidden_by_text), (url, shown)
    if re.search(r"\s", url):  # else redact_url is redact_text
        assert redact_url(shown) == shown


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from([*_FRAGMENTS, "://", "https://", "@", ";", ":", "%", "S0Q"]), max_size=14
    ).map("".join)
)
def test_redact_text_is_idempotent(text: str) -> None:
    """Redacting what was redacted changes nothing (the docstring's promise): a
    first pass can leave text that a second would cut further."""
    once = redact_text(text)
    assert redact_text(once) == once
