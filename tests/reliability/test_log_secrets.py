"""Secrets sent through every place regisseur logs never reach the logs.

Each scenario pushes a fresh secret through one path: exception texts from
actors and download impls, fields and exceptions given to ``self.log``,
dead letters, failing hooks and subscribers, credentials in download URLs
(in target ids, redirects and errors), ``Authorization``/``Cookie`` headers
of an ``HttpSource``, a database URL with a password. The ``actors``,
``supervision`` and ``regisseur`` loggers are captured at DEBUG with
:class:`actors.log.JsonFormatter`; every line must be JSON, the scenario's
log events must be there, and the secret must appear in none of them, nor
in the event texts (``ChildFailed.error``, ``DeadLetter.reason``,
``DownloadRecord.error``, ...).

Cases that found leaks (all fixed) say so in a comment.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ActorSystem, configure_logging
from regisseur.actors.downloads import DownloadFailure, DownloadSource, HttpSource
from regisseur.actors.log import JsonFormatter
from regisseur.messages import DownloadRecord
from regisseur.supervision import (
    Backoff,
    ChildSpec,
    Directive,
    FatalError,
    StartupError,
    Supervisor,
)
from tests.reliability.test_hostile_http import RawServer, http, redirect

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WAIT = 5.0
NAMESPACES = ("regisseur", __name__)  # the library, and the actors of this module


# -- capture -----------------------------------------------------------------------------------


class Captured:
    """JSON log lines of the library's loggers, and every event of a system."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def record(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def log_events(self) -> set[str]:
        return {line["event"] for line in self.lines()}

    def event_texts(self) -> list[str]:
        """The texts events carry (not the raw messages and ids they carry as data)."""
        texts = []
        with self._lock:
            events = list(self.events)
        for event in events:
            for field in dataclasses.fields(event):
                if field.name == "message":  # DeadLetter.message is the message itself
                    continue
                value = getattr(event, field.name)
                if isinstance(value, str):
                    texts.append(value)
                elif isinstance(value, DownloadRecord) and value.error:
                    texts.append(value.error)
                elif isinstance(value, tuple):
                    texts.extend(v for v in value if isinstance(v, str))
        return texts

    def assert_clean(self, secret: str, expected_log_events: set[str]) -> None:
        lines = self.lines()  # every line is one JSON object
        assert lines, "nothing was logged"
        missing = expected_log_events - {line["event"] for line in lines}
        assert not missing, f"log events not seen: {missing}; seen: {self.log_events()}"
        leaked = [line for line in self.stream.getvalue().splitlines() if secret in line]
        assert not leaked, "secret in the log:\n" + "\n".join(leaked)
        leaked_events = [text for text in self.event_texts() if secret in text]
        assert not leaked_events, f"secret in event texts: {leaked_events}"


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    saved = []
    for name in NAMESPACES:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield capture
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def secret() -> str:
    return f"hunter2-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    raw.route("/good", http("200 OK", body=b"good"))
    yield raw
    raw.close()


# -- actors that leak on purpose -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclasses.dataclass(frozen=True)
class Raise:
    text: str
    fatal: bool = False


@dataclasses.dataclass(frozen=True)
class LogWith:
    secret: str


class Leaky(Actor):
    """Raises, logs and fails with whatever secret it is handed."""

    def __init__(self, on_stop_text: str = "") -> None:
        super().__init__()
        self.on_stop_text = on_stop_text

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Raise):
            if message.fatal:
                raise FatalError(message.text)
            raise RuntimeError(message.text)
        if isinstance(message, LogWith):
            s = message.secret
            self.log.info(
                "login",
                password=s,
                passwd=s,
                api_key=s,
                apiKey=s,
                token=s,
                access_token=s,
                client_secret=s,
                authorization=f"Bearer {s}",
                cookie=f"sid={s}",
                private_key=s,
                credentials={"user": "bob", "password": s},
                nested={"db": {"url": f"postgresql://bob:{s}@db/app", "password": s}},
                headers={"Authorization": f"Basic {s}", "X-Api-Key": s},
                items=[{"token": s}, f"password={s}"],
                url=f"https://bob:{s}@example.org/file?token={s}",
                note=f"retrying with password={s} and api_key: {s}",
                bearer=f"sent Authorization: Bearer {s}",
            )
            self.log.warning(f"login as bob with password={s}", attempt=1)
            self.log.error("login_failed", exc_info=RuntimeError(f"password={s} refused"))
            try:
                raise ValueError(f"token={s}")
            except ValueError:
                self.log.exception("handled", error=f"api_key={s}")
            return True
        return super().on_receive(message)

    def on_stop(self) -> None:
        if self.on_stop_text:
            raise RuntimeError(self.on_stop_text)


class FailsToStart(Actor):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def on_start(self) -> None:
        raise RuntimeError(self.text)


def _impl(secret: str) -> Callable[[str, str, str], str]:
    def impl(download_id: str, target_id: str, display_name: str) -> str:
        if display_name == "failure":
            raise DownloadFailure(f"the server refused password={secret}")
        raise RuntimeError(f"fetch {target_id} failed: token={secret}")

    return impl


def _system(secret: str, **kwargs: Any) -> ActorSystem:
    kwargs.setdefault("database_url", None)
    kwargs.setdefault("backoff", Backoff(initial=0))
    kwargs.setdefault("max_restarts", 100)
    kwargs.setdefault("download_sources", [DownloadSource("plugin", _impl(secret))])
    return ActorSystem([ChildSpec("leaky", Leaky)], **kwargs)


def _settled(system: ActorSystem) -> None:
    system.settle(WAIT)


# -- scenarios ------------------------------------------------------------------------------------
# Each takes (system, secret, server) and returns the log events it must cause.


def exception_with_password(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    with pytest.raises(RuntimeError):
        system.ask("leaky", Raise(f"login failed password={s}"))
    return {"child_failed", "dead_letter", "child_restarting"}


def exception_with_tokens(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    texts = [
        f"token={s}",
        f"api_key: {s}",
        f"Authorization: Bearer {s}",
        f"GET https://bob:{s}@example.org/x failed",
        f"{{'password': '{s}'}}",
        f'{{"client_secret": "{s}"}}',
        f"https://example.org/cb?access_token={s}&state=1",
        f"X-Api-Key: {s}",
    ]
    for text in texts:
        with pytest.raises(RuntimeError):
            system.ask("leaky", Raise(text))
        _settled(system)
    return {"child_failed", "dead_letter"}


def fatal_exception(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    system.tell("leaky", Raise(f"credential={s}", fatal=True))
    _settled(system)
    return {"child_gave_up", "child_failed"}


def log_fields_and_exceptions(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    assert system.ask("leaky", LogWith(s)) is True
    return {"login", "login_failed", "handled"}


def dead_letters(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    system.tell("leaky", Login("bob", s))
    system.tell("leaky", {"password": s, "user": "bob"})
    system.tell("leaky", f"password={s}")
    system.tell("leaky", ("login", f"token={s}"))
    system.spawn(ChildSpec("gone", Leaky))
    system.stop_child("gone")
    system.tell("gone", Login("bob", s))
    _settled(system)
    return {"dead_letter"}


def failing_on_stop(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    system.spawn(ChildSpec("stopper", Leaky, args=(f"cleanup failed password={s}",)))
    system.stop_child("stopper")
    _settled(system)
    return {"on_stop_failed"}


def failing_subscriber(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    def callback(event: object) -> None:
        raise RuntimeError(f"webhook rejected token={s}")

    with system.events.subscribe(callback):
        system.tell("leaky", "unhandled")
        _settled(system)
    return {"subscriber_failed"}


def failing_start(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    starter = ChildSpec("starter", FailsToStart, args=(f"db password={s} refused",))
    with pytest.raises(StartupError):
        system.spawn(starter)
    with pytest.raises(StartupError):  # a nested supervisor logs its failed start
        system.spawn(ChildSpec("group", Supervisor([starter])))
    _settled(system)
    return {"startup_failed"}


def escalation(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    group = Supervisor(
        [ChildSpec("inner", Leaky)], decider=lambda exc: Directive.ESCALATE, max_restarts=5
    )
    system.spawn(ChildSpec("group", group))
    system.tell("inner", Raise(f"secret={s}"))
    _settled(system)
    return {"supervisor_escalated", "child_failed"}


def impl_exceptions(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    for name in ("error", "failure"):
        download = system.downloads.submit("plugin", f"https://bob:{s}@example.org/x", name)
        record = system.downloads.wait(download, WAIT)
        assert record.error and "[REDACTED]" in record.error, record.error
    return {"download_failed"}


def credentials_in_http_urls(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    server.route("/to-ftp", redirect(f"ftp://bob:{s}@example.org/x"))
    server.route(
        "/to-other", redirect(server.url("/good", host="localhost").replace("//", f"//bob:{s}@", 1))
    )
    urls = [
        server.url("/missing").replace("//", f"//bob:{s}@", 1),
        server.url("/good").replace("//", f"//bob:{s}@", 1),
        server.url("/to-ftp"),
        server.url("/to-other"),
        f"http://bob:{s}@127.0.0.1:1/refused",
        f"http://bob:{s}@[::1",
        f"ftp://bob:{s}@example.org/file",
        server.url(f"/good?token={s}"),
    ]
    for url in urls:
        download = system.downloads.submit("http", url, "file")
        system.downloads.wait(download, WAIT * 2)
    return {"download_started", "download_completed", "download_failed"}


def http_headers(system: ActorSystem, s: str, server: RawServer) -> set[str]:
    server.sequence("/busy", http("503 Service Unavailable"), http("200 OK", body=b"ok"))
    server.route("/away", redirect(server.url("/good", host="localhost")))
    for path in ("/good", "/missing", "/busy", "/away"):
        download = system.downloads.submit("http", server.url(path), "file")
        system.downloads.wait(download, WAIT * 2)
    landing = [h for p, h in server.seen if p == "/good" and h["host"].startswith("localhost")]
    assert landing and "authorization" not in landing[0] and "cookie" not in landing[0]
    return {"download_started", "download_retry", "download_completed", "download_failed"}


SCENARIOS = [
    exception_with_password,
    exception_with_tokens,
    fatal_exception,
    log_fields_and_exceptions,
    dead_letters,
    failing_on_stop,
    failing_subscriber,
    failing_start,
    escalation,
    impl_exceptions,
    credentials_in_http_urls,
    http_headers,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_no_secret_reaches_the_log(
    captured: Captured,
    secret: str,
    server: RawServer,
    tmp_path: Path,
    scenario: Callable[[ActorSystem, str, RawServer], set[str]],
) -> None:
    http_source = HttpSource(
        directory=tmp_path / "downloads",
        retries=1,
        backoff=Backoff(initial=0),
        connect_timeout=2.0,
        read_timeout=2.0,
        headers={
            "Authorization": f"Bearer {secret}",
            "Cookie": f"sid={secret}",
            "X-Api-Key": secret,
            "Proxy-Authorization": f"Basic {secret}",
        },
    )
    system = _system(
        secret, download_sources=[DownloadSource("plugin", _impl(secret)), http_source]
    )
    with system:
        system.events.subscribe(captured.record)
        expected = scenario(system, secret, server)
        _settled(system)
        system.spawn(ChildSpec("check", Leaky))  # the system still works
        assert system.ask("check", LogWith("not-a-secret")) is True
    captured.assert_clean(secret, expected)


def test_database_password_stays_out(captured: Captured, secret: str) -> None:
    system = ActorSystem(database_url=f"postgresql://bob:{secret}@127.0.0.1:1/app")
    system.events.subscribe(captured.record)  # the bus starts with the system
    with pytest.raises(StartupError) as caught:
        system.start()
    assert caught.value.child == "database"
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value.cause)
    captured.assert_clean(secret, {"startup_failed"})


def test_configure_logging_json_is_clean(secret: str) -> None:
    stream = io.StringIO()
    handler = configure_logging("debug", json=True, stream=stream, loggers=NAMESPACES)
    try:
        with _system(secret) as system:
            with pytest.raises(RuntimeError):
                system.ask("leaky", Raise(f"password={secret}"))
            system.ask("leaky", LogWith(secret))
            system.settle(WAIT)
    finally:
        for name in NAMESPACES:
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {"child_failed", "login", "system_started"} <= {line["event"] for line in lines}
    assert secret not in stream.getvalue()


# -- known leaks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(
            "GitHub said 401; sent Authorization: token {s}",
            id="authorization-token-scheme",
        ),
        pytest.param(
            "request had Cookie: theme=dark; sessionid={s}",
            id="cookie-second-pair",
        ),
        pytest.param("request had Cookie: sessionid={s}", id="cookie-single-pair"),
        pytest.param("sent Authorization: Bearer {s}", id="authorization-bearer"),
    ],
)
def test_header_texts_in_exceptions(captured: Captured, secret: str, template: str) -> None:
    with _system(secret) as system:
        system.events.subscribe(captured.record)
        with pytest.raises(RuntimeError):
            system.ask("leaky", Raise(template.format(s=secret)))
        system.settle(WAIT)
    captured.assert_clean(secret, {"child_failed", "dead_letter"})


def test_dead_letter_cut_inside_a_secret(captured: Captured, secret: str) -> None:
    # repr(("x...x", {'password': '<secret>'})) cut right after the secret
    padding = "x" * (200 - len(secret) - len("('', {'password': '"))
    message = (padding, {"password": secret})
    assert repr(message)[:200].endswith(secret)
    with _system(secret) as system:
        system.events.subscribe(captured.record)
        system.tell("leaky", message)
        system.settle(WAIT)
    captured.assert_clean(secret, {"dead_letter"})


def test_header_value_with_newline(
    captured: Captured, secret: str, server: RawServer, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="line break") as caught:
        HttpSource(
            directory=tmp_path / "downloads",
            retries=0,
            headers={"Authorization": f"token {secret}\n"},
        )
    assert secret not in str(caught.value)


def test_startup_error_text_is_redacted(captured: Captured, secret: str) -> None:
    system = ActorSystem(
        [ChildSpec("starter", FailsToStart, args=(f"db password={secret} refused",))],
        database_url=None,
    )
    with pytest.raises(StartupError) as caught:
        system.start()
    captured.assert_clean(secret, {"startup_failed"})
    assert secret not in str(caught.value)
