"""Every public entry point, fed bad input: a clear error, and nothing breaks.

Each table row is one bad call. It must raise a specific exception whose
message names what is wrong; afterwards the system it was made on still
works (an ``ask`` of an echo actor answers, a download succeeds) and no
actor has failed because of it. Where the input space is large (names,
file names, durations) hypothesis generates it.

Rows with ``fixed=`` found library bugs (each fixed, the row failed before)
found by these tests; each passes once the bug is fixed.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regisseur.actors import Actor, ActorSystem, ManualClock, UnknownActorError
from regisseur.actors.clock import check_duration
from regisseur.actors.downloads import (
    DownloadSettings,
    DownloadSource,
    HttpSource,
    UnknownDownloadError,
    UnknownSourceError,
)
from regisseur.actors.downloads.names import MAX_NAME_BYTES, safe_filename
from regisseur.messages import ChildFailed, DeadLetter, DownloadState
from regisseur.supervision import (
    Backoff,
    ChildSpec,
    Directive,
    Restart,
    StartupError,
    Strategy,
    Supervisor,
)
from regisseur.supervision.spec import MAX_NAME_LENGTH, check_name
from regisseur.supervision.testing import FaultInjector, Probe

WAIT = 5.0  # real seconds: the bound on every blocking wait here
NAN = float("nan")
INF = float("inf")
HUGE = 1e10  # finite, but more seconds than threading.TIMEOUT_MAX (~9.2e9)


# -- fixtures and helpers --------------------------------------------------------


class Echo(Actor):
    """Answers ``("echo", x)`` with ``x``; anything else is a dead letter."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and len(message) == 2 and message[0] == "echo":
            return message[1]
        return super().on_receive(message)


class NeedsArgument(Actor):
    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value


def book(download_id: str, target_id: str, display_name: str) -> str:
    return f"/books/{display_name}"


def three(a: str, b: str, c: str) -> None:
    return None


@pytest.fixture
def system() -> Any:
    """A running system: an echo actor and an in-memory download source."""
    with ActorSystem(
        [ChildSpec("echo", Echo)],
        database_url=None,
        backoff=Backoff(initial=0),
        download_sources=[DownloadSource("books", book)],
    ) as running:
        yield running


_checks = iter(range(1, 1_000_000))


def still_works(system: ActorSystem, failures: Probe | None = None) -> None:
    """A normal ask and a normal download still succeed; no actor failed."""
    number = next(_checks)
    assert system.ask("echo", ("echo", number), timeout=WAIT) == number
    download = system.downloads.submit("books", f"isbn:{number}", f"book-{number}")
    record = system.downloads.wait(download, timeout=WAIT)
    assert record.state is DownloadState.SUCCEEDED, record
    assert system.running
    if failures is not None:
        system.settle(WAIT)
        failed = [e for e in failures.events if isinstance(e, ChildFailed)]
        assert not failed, f"a bad call made actors fail: {failed}"


def row(ident: str, call: Any, error: type[BaseException], match: str, *, fixed: str = "") -> Any:
    """One bad call; ``fixed`` describes the bug this row found (fixed since)."""
    return pytest.param(call, error, match, id=ident)


# -- constructors and plain values -------------------------------------------------

UNHASHABLE_NAME = (
    "a list/dict/set as an actor name reaches dict.get() before check_name(): "
    "'TypeError: unhashable type' instead of 'name must be a str' "
    "(actors/_registry.py Registry.lookup)"
)


def make_system(**kwargs: Any) -> ActorSystem:
    kwargs.setdefault("database_url", None)
    return ActorSystem(**kwargs)


def http_source(**kwargs: Any) -> HttpSource:
    kwargs.setdefault("directory", tempfile.gettempdir())
    return HttpSource(**kwargs)


CONSTRUCTORS = [
    # ActorSystem(...)
    row("system-children-not-spec", lambda: make_system(children=[1]), TypeError, "ChildSpec"),
    row("system-children-str", lambda: make_system(children="ab"), TypeError, "ChildSpec"),
    row(
        "system-children-one-spec",
        lambda: make_system(children=ChildSpec("a", Echo)),
        TypeError,
        "children",
        fixed="ActorSystem(children=ChildSpec(...)) (a spec, not a list) or children=5 raise "
        "\"'ChildSpec' object is not iterable\" from tuple(children), naming neither the "
        "argument nor what it needs (actors/system.py ActorSystem.__init__)",
    ),
    row(
        "system-children-int",
        lambda: make_system(children=5),
        TypeError,
        "children",
        fixed="ActorSystem(children=5) raises \"'int' object is not iterable\" "
        "(actors/system.py ActorSystem.__init__)",
    ),
    row(
        "system-children-duplicate",
        lambda: make_system(children=[ChildSpec("a", Echo), ChildSpec("a", Echo)]),
        ValueError,
        "duplicate child name 'a'",
    ),
    row("system-clock-str", lambda: make_system(clock="now"), TypeError, "clock must be"),
    row("system-clock-class", lambda: make_system(clock=ManualClock), TypeError, "clock must be"),
    row("system-db-int", lambda: make_system(database_url=5), TypeError, "database_url"),
    row(
        "system-db-bytes", lambda: make_system(database_url=b"sqlite://"), TypeError, "database_url"
    ),
    row(
        "system-db-bad-port",
        lambda: make_system(database_url="postgresql://u:hunter2@db.invalid:notaport/x"),
        ValueError,
        "database_url .* is not a valid SQLAlchemy URL",
        fixed="a database_url whose port is not a number makes ActorSystem() raise "
        "\"ValueError: invalid literal for int() with base 10: 'notaport'\" (SQLAlchemy's "
        "make_url raises ValueError; Database.__init__ catches only ArgumentError) instead "
        "of a message naming database_url (actors/database.py Database.__init__; "
        "now refused by name when the system is made)",
    ),
    row(
        "system-max-restarts-negative",
        lambda: make_system(max_restarts=-1),
        ValueError,
        "max_restarts must be >= 0",
    ),
    row(
        "system-max-restarts-nan",
        lambda: make_system(max_restarts=NAN),
        TypeError,
        "max_restarts must be an int",
    ),
    row(
        "system-max-restarts-bool",
        lambda: make_system(max_restarts=True),
        TypeError,
        "max_restarts must be an int",
    ),
    row(
        "system-max-restarts-float",
        lambda: make_system(max_restarts=1.5),
        TypeError,
        "max_restarts must be an int",
    ),
    row(
        "system-main-thread-signals-text",
        lambda: make_system(main_thread_signals="yes"),
        TypeError,
        "main_thread_signals must be True or False, got 'yes'",
    ),
    row(
        "supervisor-stops-with-peers-int",
        lambda: Supervisor((), stops_with_peers=1),
        TypeError,
        "Supervisor stops_with_peers must be True or False, got 1",
    ),
    row("system-within-negative", lambda: make_system(within=-1), ValueError, "within must be > 0"),
    row("system-within-zero", lambda: make_system(within=0), ValueError, "within must be > 0"),
    row(
        "system-within-nan", lambda: make_system(within=NAN), ValueError, "within must be a finite"
    ),
    row(
        "system-within-inf", lambda: make_system(within=INF), ValueError, "within must be a finite"
    ),
    row(
        "system-within-bool", lambda: make_system(within=True), TypeError, "within must be a number"
    ),
    row("system-within-str", lambda: make_system(within="5"), TypeError, "within must be a number"),
    row(
        "system-lease-ttl-negative",
        lambda: make_system(lease_ttl=-1),
        ValueError,
        "lease_ttl must be > 0",
    ),
    row(
        "system-lease-ttl-zero",
        lambda: make_system(lease_ttl=0),
        ValueError,
        "lease_ttl must be > 0",
    ),
    row(
        "system-lease-ttl-nan",
        lambda: make_system(lease_ttl=NAN),
        ValueError,
        "lease_ttl must be a finite",
    ),
    row(
        "system-lease-ttl-bool",
        lambda: make_system(lease_ttl=True),
        TypeError,
        "lease_ttl must be a number",
    ),
    row(
        "system-name-empty",
        lambda: make_system(name=""),
        ValueError,
        "ActorSystem name must not be empty",
    ),
    row(
        "system-name-blank",
        lambda: make_system(name="  "),
        ValueError,
        "ActorSystem name must not be empty",
    ),
    row(
        "system-name-huge",
        lambda: make_system(name="x" * 10_000),
        ValueError,
        "ActorSystem name is 10000 characters long",
    ),
    row("system-name-newline", lambda: make_system(name="a\nb"), ValueError, "control characters"),
    row("system-name-nul", lambda: make_system(name="a\x00b"), ValueError, "control characters"),
    row(
        "system-name-int", lambda: make_system(name=5), TypeError, "ActorSystem name must be a str"
    ),
    row(
        "system-strategy-unknown",
        lambda: make_system(strategy="one_for_some"),
        ValueError,
        "strategy must be one of",
    ),
    row(
        "system-backoff-str",
        lambda: make_system(backoff="fast"),
        TypeError,
        "backoff must be a Backoff",
    ),
    row(
        "system-single-instance-int",
        lambda: make_system(single_instance=5),
        TypeError,
        "single_instance",
    ),
    row(
        "system-single-instance-no-db",
        lambda: make_system(single_instance=True),
        ValueError,
        "single_instance needs a database_url",
    ),
    row(
        "system-sources-str",
        lambda: make_system(download_sources="books"),
        TypeError,
        "download_sources",
    ),
    row(
        "system-sources-int-item",
        lambda: make_system(download_sources=[1]),
        TypeError,
        "download_sources must hold DownloadSource",
    ),
    row(
        "system-sources-duplicate",
        lambda: make_system(
            download_sources=[DownloadSource("a", book), DownloadSource("a", book)]
        ),
        ValueError,
        "duplicate download source name",
    ),
    row(
        "system-downloads-int",
        lambda: make_system(downloads=5),
        TypeError,
        "downloads must be a DownloadSettings",
    ),
    row(
        "system-unknown-kwarg",
        lambda: make_system(children_of=()),
        TypeError,
        "unexpected keyword argument 'children_of'",
    ),
    row(
        "settings-history-negative",
        lambda: DownloadSettings(history=-1),
        ValueError,
        "history must be >= 0",
    ),
    row(
        "settings-history-float",
        lambda: DownloadSettings(history=1.5),
        TypeError,
        "history must be an int",
    ),
    row(
        "settings-flush-nan",
        lambda: DownloadSettings(flush_interval=NAN),
        ValueError,
        "flush_interval",
    ),
    # ChildSpec(...)
    row("spec-name-int", lambda: ChildSpec(5, Echo), TypeError, "ChildSpec.name must be a str"),
    row(
        "spec-name-empty",
        lambda: ChildSpec("", Echo),
        ValueError,
        "ChildSpec.name must not be empty",
    ),
    row(
        "spec-name-huge",
        lambda: ChildSpec("n" * (MAX_NAME_LENGTH + 1), Echo),
        ValueError,
        f"limit is {MAX_NAME_LENGTH}",
    ),
    row("spec-name-tab", lambda: ChildSpec("a\tb", Echo), ValueError, "control characters"),
    row("spec-name-del", lambda: ChildSpec("a\x7fb", Echo), ValueError, "control characters"),
    row(
        "spec-actor-instance-like",
        lambda: ChildSpec("a", "Echo"),
        TypeError,
        "actor must be an actors.Actor subclass",
    ),
    row(
        "spec-actor-plain-class",
        lambda: ChildSpec("a", object),
        TypeError,
        "actor must be an actors.Actor subclass",
    ),
    row(
        "spec-actor-pykka-class",
        lambda: ChildSpec("a", pykka.ThreadingActor),
        TypeError,
        "actor must be an actors.Actor subclass",
    ),
    row(
        "spec-args-str", lambda: ChildSpec("a", Echo, args="xy"), TypeError, "args must be a tuple"
    ),
    row("spec-args-int", lambda: ChildSpec("a", Echo, args=5), TypeError, "args must be a tuple"),
    row(
        "spec-kwargs-list",
        lambda: ChildSpec("a", Echo, kwargs=[("k", 1)]),
        TypeError,
        "kwargs must be a mapping",
    ),
    row(
        "spec-kwargs-int-key",
        lambda: ChildSpec("a", Echo, kwargs={1: 2}),
        TypeError,
        "kwargs keys must be str",
    ),
    row(
        "spec-depends-int",
        lambda: ChildSpec("a", Echo, depends_on=5),
        TypeError,
        "depends_on must be a tuple",
    ),
    row(
        "spec-depends-empty-name",
        lambda: ChildSpec("a", Echo, depends_on=("",)),
        ValueError,
        "depends_on entry must not be empty",
    ),
    row(
        "spec-depends-twice",
        lambda: ChildSpec("a", Echo, depends_on=("b", "b")),
        ValueError,
        "names a sibling twice",
    ),
    row(
        "spec-restart-unknown",
        lambda: ChildSpec("a", Echo, restart="sometimes"),
        ValueError,
        "restart must be one of",
    ),
    row(
        "spec-backoff-number",
        lambda: ChildSpec("a", Echo, backoff=2.0),
        TypeError,
        "backoff must be a Backoff",
    ),
    row(
        "spec-max-failures-zero",
        lambda: ChildSpec("a", Echo, max_failures=0),
        ValueError,
        "max_failures must be >= 1",
    ),
    row(
        "spec-max-failures-bool",
        lambda: ChildSpec("a", Echo, max_failures=True),
        TypeError,
        "max_failures must be an int",
    ),
    row(
        "spec-max-failures-float",
        lambda: ChildSpec("a", Echo, max_failures=2.5),
        TypeError,
        "max_failures must be an int",
    ),
    row(
        "spec-start-timeout-zero",
        lambda: ChildSpec("a", Echo, start_timeout=0),
        ValueError,
        "start_timeout must be > 0",
    ),
    row(
        "spec-start-timeout-negative",
        lambda: ChildSpec("a", Echo, start_timeout=-1),
        ValueError,
        "start_timeout must be > 0",
    ),
    row(
        "spec-start-timeout-nan",
        lambda: ChildSpec("a", Echo, start_timeout=NAN),
        ValueError,
        "start_timeout must be a finite",
    ),
    row(
        "spec-shutdown-timeout-inf",
        lambda: ChildSpec("a", Echo, shutdown_timeout=INF),
        ValueError,
        "shutdown_timeout must be a finite",
    ),
    row(
        "spec-shutdown-timeout-str",
        lambda: ChildSpec("a", Echo, shutdown_timeout="5"),
        TypeError,
        "shutdown_timeout must be a number",
    ),
    row(
        "spec-rollback-int",
        lambda: ChildSpec("a", Echo, rollback_on_failure=1),
        TypeError,
        "rollback_on_failure must be a bool",
    ),
    row(
        "spec-description-int",
        lambda: ChildSpec("a", Echo, description=5),
        TypeError,
        "description must be a str",
    ),
    # Supervisor(...)
    row("supervisor-children-int", lambda: Supervisor(5), TypeError, "children must be a sequence"),
    row(
        "supervisor-children-item",
        lambda: Supervisor([Echo]),
        TypeError,
        "children must be ChildSpec objects",
    ),
    row(
        "supervisor-self-dependency",
        lambda: Supervisor([ChildSpec("a", Echo, depends_on="a")]),
        ValueError,
        "'a' depends on itself",
    ),
    row(
        "supervisor-unknown-dependency",
        lambda: Supervisor([ChildSpec("a", Echo, depends_on="ghost")]),
        ValueError,
        "unknown child 'ghost'",
    ),
    row(
        "supervisor-cycle",
        lambda: Supervisor(
            [ChildSpec("a", Echo, depends_on="b"), ChildSpec("b", Echo, depends_on="a")]
        ),
        ValueError,
        "cycle: a -> b -> a",
    ),
    row(
        "supervisor-strategy", lambda: Supervisor(strategy=3), ValueError, "strategy must be one of"
    ),
    row(
        "supervisor-max-restarts",
        lambda: Supervisor(max_restarts=-3),
        ValueError,
        "max_restarts must be >= 0",
    ),
    row(
        "supervisor-within-nan",
        lambda: Supervisor(within=NAN),
        ValueError,
        "within must be a finite",
    ),
    row(
        "supervisor-backoff-none",
        lambda: Supervisor(backoff=None),
        TypeError,
        "backoff must be a Backoff",
    ),
    row(
        "supervisor-decider-str",
        lambda: Supervisor(decider="restart"),
        TypeError,
        "decider must be callable",
    ),
    # Backoff(...) and Directive.restart_after
    row(
        "backoff-initial-negative",
        lambda: Backoff(initial=-1),
        ValueError,
        "Backoff.initial must be >= 0",
    ),
    row(
        "backoff-initial-nan",
        lambda: Backoff(initial=NAN),
        ValueError,
        "Backoff.initial must be a finite",
    ),
    row(
        "backoff-initial-str",
        lambda: Backoff(initial="2"),
        TypeError,
        "Backoff.initial must be a number",
    ),
    row(
        "backoff-multiplier-below-one",
        lambda: Backoff(multiplier=0.5),
        ValueError,
        "Backoff.multiplier must be a finite number >= 1",
    ),
    row(
        "backoff-multiplier-nan", lambda: Backoff(multiplier=NAN), ValueError, "Backoff.multiplier"
    ),
    row(
        "backoff-multiplier-inf", lambda: Backoff(multiplier=INF), ValueError, "Backoff.multiplier"
    ),
    row(
        "backoff-multiplier-bool",
        lambda: Backoff(multiplier=True),
        TypeError,
        "Backoff.multiplier must be a number",
    ),
    row(
        "backoff-maximum-inf",
        lambda: Backoff(maximum=INF),
        ValueError,
        "Backoff.maximum must be a finite",
    ),
    row(
        "backoff-maximum-below-initial",
        lambda: Backoff(initial=5, maximum=1),
        ValueError,
        r"maximum \(1\) is below Backoff.initial \(5\)",
    ),
    row(
        "backoff-jitter-negative",
        lambda: Backoff(jitter=-0.1),
        ValueError,
        "jitter must be between 0 and 1",
    ),
    row(
        "backoff-jitter-above-one",
        lambda: Backoff(jitter=1.5),
        ValueError,
        "jitter must be between 0 and 1",
    ),
    row(
        "backoff-jitter-nan",
        lambda: Backoff(jitter=NAN),
        ValueError,
        "jitter must be between 0 and 1",
    ),
    row(
        "restart-after-negative",
        lambda: Directive.restart_after(-1),
        ValueError,
        r"restart_after\(seconds\) must be >= 0",
    ),
    row(
        "restart-after-nan",
        lambda: Directive.restart_after(NAN),
        ValueError,
        "must be a finite number",
    ),
    row(
        "restart-after-inf",
        lambda: Directive.restart_after(INF),
        ValueError,
        "must be a finite number",
    ),
    row(
        "restart-after-none",
        lambda: Directive.restart_after(None),
        TypeError,
        "must be a number of seconds",
    ),
    # ManualClock
    row("clock-start-negative", lambda: ManualClock(-1), ValueError, "start must be >= 0"),
    row("clock-start-nan", lambda: ManualClock(NAN), ValueError, "start must be a finite"),
    row(
        "clock-advance-negative",
        lambda: ManualClock().advance(-1),
        ValueError,
        r"advance\(seconds\) must be >= 0",
    ),
    row(
        "clock-advance-nan",
        lambda: ManualClock().advance(NAN),
        ValueError,
        r"advance\(seconds\) must be a finite",
    ),
    row(
        "clock-advance-inf",
        lambda: ManualClock().advance(INF),
        ValueError,
        r"advance\(seconds\) must be a finite",
    ),
    row(
        "clock-advance-str",
        lambda: ManualClock().advance("1"),
        TypeError,
        r"advance\(seconds\) must be a number",
    ),
    row(
        "clock-advance-bool",
        lambda: ManualClock().advance(True),
        TypeError,
        r"advance\(seconds\) must be a number",
    ),
    row(
        "clock-advance-int-beyond-float",
        lambda: ManualClock().advance(10**400),
        ValueError,
        "advance",
        fixed="check_duration(10**400) lets float() raise 'OverflowError: int too large to "
        "convert to float' instead of a ValueError naming the argument "
        "(actors/clock.py check_duration)",
    ),
    # DownloadSource(...)
    row(
        "source-impl-not-callable",
        lambda: DownloadSource("s", "fetch"),
        TypeError,
        "impl must be callable",
    ),
    row(
        "source-impl-two-params",
        lambda: DownloadSource("s", lambda a, b: None),
        TypeError,
        "takes 2 positional argument",
    ),
    row(
        "source-impl-no-params",
        lambda: DownloadSource("s", lambda: None),
        TypeError,
        "takes 0 positional argument",
    ),
    row(
        "source-impl-keyword-only",
        lambda: DownloadSource("s", lambda a, b, *, c: None),
        TypeError,
        "takes 2 positional argument",
    ),
    row(
        "source-impl-builtin-one-param",
        lambda: DownloadSource("s", len),
        TypeError,
        "takes 1 positional argument",
    ),
    row(
        "source-name-int",
        lambda: DownloadSource(5, three),
        TypeError,
        "DownloadSource name must be a str",
    ),
    row(
        "source-name-empty",
        lambda: DownloadSource("", three),
        ValueError,
        "DownloadSource name must not be empty",
    ),
    row(
        "source-name-huge",
        lambda: DownloadSource("s" * 1000, three),
        ValueError,
        "1000 characters long",
    ),
    row(
        "source-name-control",
        lambda: DownloadSource("a\rb", three),
        ValueError,
        "control characters",
    ),
    row(
        "source-concurrency-zero",
        lambda: DownloadSource("s", three, concurrency=0),
        ValueError,
        "concurrency must be between 1 and 256, got 0",
    ),
    row(
        "source-concurrency-1000",
        lambda: DownloadSource("s", three, concurrency=1000),
        ValueError,
        "concurrency must be between 1 and 256, got 1000",
    ),
    row(
        "source-concurrency-bool",
        lambda: DownloadSource("s", three, concurrency=True),
        TypeError,
        "concurrency must be an int, got bool",
    ),
    row(
        "source-concurrency-float",
        lambda: DownloadSource("s", three, concurrency=2.0),
        TypeError,
        "concurrency must be an int, got float",
    ),
    row(
        "source-delay-negative",
        lambda: DownloadSource("s", three, delay=-1),
        ValueError,
        "delay must be >= 0",
    ),
    row(
        "source-delay-nan",
        lambda: DownloadSource("s", three, delay=NAN),
        ValueError,
        "delay must be a finite",
    ),
    row(
        "source-delay-str",
        lambda: DownloadSource("s", three, delay="1"),
        TypeError,
        "delay must be a number",
    ),
    row(
        "source-username-int",
        lambda: DownloadSource("s", three, username=5),
        TypeError,
        "username must be a str or None",
    ),
    row(
        "source-directory-int",
        lambda: DownloadSource("s", three, directory=5),
        TypeError,
        "directory must be a path",
    ),
    row(
        "source-open-worker-str",
        lambda: DownloadSource("s", three, open_worker="open"),
        TypeError,
        "open_worker must be callable",
    ),
    # HttpSource(...)
    row(
        "http-directory-none",
        lambda: HttpSource(directory=None),
        TypeError,
        "directory is required",
    ),
    row(
        "http-directory-int", lambda: HttpSource(directory=5), TypeError, "directory must be a path"
    ),
    row(
        "http-retries-negative",
        lambda: http_source(retries=-1),
        ValueError,
        "retries must be between 0 and 100",
    ),
    row(
        "http-retries-bool", lambda: http_source(retries=True), TypeError, "retries must be an int"
    ),
    row(
        "http-backoff-number",
        lambda: http_source(backoff=1.0),
        TypeError,
        "backoff must be a Backoff",
    ),
    row(
        "http-connect-timeout-zero",
        lambda: http_source(connect_timeout=0),
        ValueError,
        "connect_timeout must be > 0",
    ),
    row(
        "http-read-timeout-nan",
        lambda: http_source(read_timeout=NAN),
        ValueError,
        "read_timeout must be a finite",
    ),
    row(
        "http-chunk-size-zero",
        lambda: http_source(chunk_size=0),
        ValueError,
        "chunk_size must be between",
    ),
    row(
        "http-chunk-size-float",
        lambda: http_source(chunk_size=1.5),
        TypeError,
        "chunk_size must be an int",
    ),
    row(
        "http-max-bytes-negative",
        lambda: http_source(max_bytes=-1),
        ValueError,
        "max_bytes must be >= 0",
    ),
    row(
        "http-keep-partial-str",
        lambda: http_source(keep_partial="yes"),
        TypeError,
        "keep_partial must be a bool",
    ),
    row(
        "http-headers-list",
        lambda: http_source(headers=[("A", "b")]),
        TypeError,
        "headers must be a mapping",
    ),
    row(
        "http-headers-int-value",
        lambda: http_source(headers={"X-Retry": 3}),
        TypeError,
        "headers must map str to str",
    ),
    row(
        "http-headers-newline-value",
        lambda: http_source(headers={"Authorization": "token abc\n"}),
        ValueError,
        "Authorization",
        fixed="HttpSource accepts header values with CR/LF or leading whitespace; every "
        "download then fails with \"malformed URL '<url>': <the header value>\" - the wrong "
        "cause, and the value (a token) is leaked into DownloadRecord.error and the logs "
        "(actors/downloads/http.py _check_headers; _http_fetch.py Fetch._get)",
    ),
    row(
        "http-verify-missing-bundle",
        lambda: http_source(verify="/no/such/ca.pem"),
        ValueError,
        "CA bundle '/no/such/ca.pem' does not exist",
    ),
    row(
        "http-verify-int",
        lambda: http_source(verify=5),
        TypeError,
        "verify must be a bool or a CA bundle path",
    ),
    row(
        "http-max-redirects-101",
        lambda: http_source(max_redirects=101),
        ValueError,
        "max_redirects must be between 0 and 100",
    ),
    row(
        "http-max-retry-after-nan",
        lambda: http_source(max_retry_after=NAN),
        ValueError,
        "max_retry_after must be a finite",
    ),
    row("http-fsync-int", lambda: http_source(fsync=1), TypeError, "fsync must be a bool"),
    row("http-name-empty", lambda: http_source(name=""), ValueError, "name must not be empty"),
    row(
        "http-concurrency-zero",
        lambda: http_source(concurrency=0),
        ValueError,
        "concurrency must be between 1 and 256",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CONSTRUCTORS)
def test_constructor_rejects_bad_input(
    system: ActorSystem, call: Any, error: type, match: str
) -> None:
    failures = Probe(system, ChildFailed)
    with pytest.raises(error, match=match):
        call()
    still_works(system, failures)


# -- database URLs (refused at once, or the start fails naming the database stage) ---


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("nonsense", id="not-a-url"),
        pytest.param("postgresql://u:hunter2@host:port/x", id="port-not-a-number"),
    ],
)
def test_a_database_url_that_does_not_parse_is_refused_when_the_system_is_made(
    system: ActorSystem, url: str
) -> None:
    with pytest.raises(
        ValueError, match=r"database_url .* is not a valid SQLAlchemy URL"
    ) as caught:
        ActorSystem(database_url=url)
    assert "hunter2" not in str(caught.value)
    still_works(system)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://u:hunter2@127.0.0.1:1/x", id="unreachable-postgres"),
        pytest.param("mysql://u:hunter2@127.0.0.1:1/x", id="unreachable-mysql"),
        pytest.param("nosuchdialect://u:hunter2@host/x", id="unknown-dialect"),
        pytest.param("sqlite:////no/such/directory/x.db", id="sqlite-missing-directory"),
    ],
)
def test_bad_database_url_fails_the_start(system: ActorSystem, url: str) -> None:
    failing = ActorSystem(database_url=url)
    with pytest.raises(StartupError) as caught:
        failing.start()
    assert caught.value.child == "database"
    assert "database" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert not failing.running
    assert failing.threads() == []
    failing.stop()  # idempotent after a failed start
    still_works(system)


# -- calls on a running system ----------------------------------------------------------


class BrokenRepr:
    """A message whose repr() raises."""

    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


def _ask(name: Any, timeout: Any = WAIT) -> Any:
    return lambda s: s.ask(name, ("echo", 1), timeout=timeout)


SYSTEM_CALLS = [
    # names
    row(
        "tell-unknown",
        lambda s: s.tell("ghost", "hi"),
        UnknownActorError,
        "no actor named 'ghost'.*known names: .*'echo'",
    ),
    row("ask-unknown", _ask("ghost"), UnknownActorError, "no actor named 'ghost'"),
    row("ref-unknown", lambda s: s.ref("ghost"), UnknownActorError, "no actor named 'ghost'"),
    row(
        "stop-child-unknown",
        lambda s: s.stop_child("ghost"),
        UnknownActorError,
        "no actor named 'ghost'",
    ),
    row(
        "stop-child-system-actor",
        lambda s: s.stop_child("regisseur.events"),
        ValueError,
        "'regisseur.events'.*one of the system's own actors",
    ),
    row("ask-empty-name", _ask(""), ValueError, r"ask\(name\) must not be empty"),
    row("ask-huge-name", _ask("n" * 100_000), ValueError, "100000 characters long"),
    row("ask-control-name", _ask("echo\x00"), ValueError, "control characters"),
    row("tell-int-name", lambda s: s.tell(5, "hi"), TypeError, r"name\)? must be a str, got int"),
    row(
        "tell-none-name",
        lambda s: s.tell(None, "hi"),
        TypeError,
        r"name\)? must be a str, got NoneType",
    ),
    row(
        "tell-bytes-name",
        lambda s: s.tell(b"echo", "hi"),
        TypeError,
        r"name\)? must be a str, got bytes",
    ),
    row("ref-int-name", lambda s: s.ref(1), TypeError, r"ref\(name\) must be a str"),
    row("ask-int-label", _ask(5), TypeError, r"ask\(name\) must be a str"),
    row("tell-int-label", lambda s: s.tell(5, "hi"), TypeError, r"tell\(name\) must be a str"),
    row(
        "count-children-int",
        lambda s: s.count_children(3),
        TypeError,
        r"count_children\(supervisor\) must be a str",
    ),
    row(
        "stop-child-int", lambda s: s.stop_child(3), TypeError, r"stop_child\(name\) must be a str"
    ),
    row("resource-int", lambda s: s.resource(3), TypeError, r"resource\(name\) must be a str"),
    row(
        "tell-list-name",
        lambda s: s.tell(["echo"], "hi"),
        TypeError,
        r"name\)? must be a str",
        fixed=UNHASHABLE_NAME,
    ),
    row("ask-dict-name", _ask({}), TypeError, r"name\)? must be a str", fixed=UNHASHABLE_NAME),
    row(
        "ref-set-name",
        lambda s: s.ref(set()),
        TypeError,
        r"name\)? must be a str",
        fixed=UNHASHABLE_NAME,
    ),
    row(
        "stop-child-list-name",
        lambda s: s.stop_child(["echo"]),
        TypeError,
        r"name\)? must be a str",
        fixed=UNHASHABLE_NAME,
    ),
    # timeouts
    row("ask-timeout-nan", _ask("echo", NAN), ValueError, r"ask\(timeout\) must be a finite"),
    row("ask-timeout-inf", _ask("echo", INF), ValueError, r"ask\(timeout\) must be a finite"),
    row("ask-timeout-negative", _ask("echo", -1), ValueError, r"ask\(timeout\) must be >= 0"),
    row("ask-timeout-str", _ask("echo", "5"), TypeError, r"ask\(timeout\) must be a number"),
    row("ask-timeout-bool", _ask("echo", True), TypeError, r"ask\(timeout\) must be a number"),
    row("settle-nan", lambda s: s.settle(NAN), ValueError, r"settle\(timeout\) must be a finite"),
    row("settle-negative", lambda s: s.settle(-1), ValueError, r"settle\(timeout\) must be >= 0"),
    row("settle-str", lambda s: s.settle("1"), TypeError, r"settle\(timeout\) must be a number"),
    # dynamic children
    row(
        "spawn-str", lambda s: s.spawn("echo2"), TypeError, "spawn\\(\\) needs a ChildSpec, got str"
    ),
    row("spawn-class", lambda s: s.spawn(Echo), TypeError, "spawn\\(\\) needs a ChildSpec"),
    row(
        "spawn-taken-name",
        lambda s: s.spawn(ChildSpec("echo", Echo)),
        ValueError,
        "duplicate child name 'echo'",
    ),
    row(
        "spawn-taken-nested-name",
        lambda s: s.spawn(ChildSpec("group", Supervisor([ChildSpec("echo", Echo)]))),
        ValueError,
        "already in use: 'echo'",
    ),
    row(
        "spawn-unknown-dependency",
        lambda s: s.spawn(ChildSpec("late", Echo, depends_on=("ghost",))),
        ValueError,
        "depends on unknown child 'ghost'",
    ),
    row(
        "spawn-unknown-supervisor",
        lambda s: s.spawn(ChildSpec("late", Echo), supervisor="ghost"),
        UnknownActorError,
        "ghost",
    ),
    row(
        "spawn-under-non-supervisor",
        lambda s: s.spawn(ChildSpec("late", Echo), supervisor="echo"),
        TypeError,
        "'echo' is not a supervisor",
    ),
    row(
        "spawn-supervisor-int",
        lambda s: s.spawn(ChildSpec("late", Echo), supervisor=3),
        TypeError,
        r"spawn\(supervisor\) must be a str",
    ),
    row(
        "spawn-missing-constructor-argument",
        lambda s: s.spawn(ChildSpec("needy", NeedsArgument)),
        TypeError,
        r"ChildSpec 'needy': args/kwargs do not fit NeedsArgument\(value\): "
        "missing a required argument: 'value'",
        fixed="a missing constructor argument surfaced only at start, as a StartupError",
    ),
    row(
        "stop-child-with-dependents",
        lambda s: s.stop_child("download-keeper"),
        ValueError,
        "cannot stop 'download-keeper': source:books depend",
    ),
    # events, probe, faults
    row(
        "subscribe-int",
        lambda s: s.events.subscribe(5),
        TypeError,
        "needs a callable or an ActorRef, got int",
    ),
    row(
        "subscribe-type-name",
        lambda s: s.events.subscribe(print, "DeadLetter"),
        TypeError,
        "event types must be classes",
    ),
    row(
        "subscribe-type-instance",
        lambda s: s.events.subscribe(print, DeadLetter("a", 1, "x")),
        TypeError,
        "event types must be classes",
    ),
    row(
        "probe-type-name",
        lambda s: Probe(s, "ChildFailed"),
        TypeError,
        "event types must be classes",
    ),
    row(
        "probe-no-system",
        lambda s: Probe(None),
        TypeError,
        "system",
        fixed="Probe(None) raises \"AttributeError: 'NoneType' object has no attribute "
        "'events'\" (supervision/testing/probe.py Probe.__init__)",
    ),
    row(
        "probe-expect-timeout-nan",
        lambda s: Probe(s).expect(DeadLetter, timeout=NAN),
        ValueError,
        r"expect\(timeout\) must be a finite",
    ),
    row(
        "probe-expect-timeout-negative",
        lambda s: Probe(s).expect(DeadLetter, timeout=-1),
        ValueError,
        r"expect\(timeout\) must be >= 0",
    ),
    row(
        "probe-expect-no-within-inf",
        lambda s: Probe(s).expect_no(DeadLetter, within=INF),
        ValueError,
        r"expect_no\(within\) must be a finite",
    ),
    row(
        "probe-expect-type-name",
        lambda s: Probe(s).expect("DeadLetter", timeout=0),
        TypeError,
        "event",
        fixed="Probe.expect('DeadLetter') (a str, not a class) raises \"AttributeError: 'str' "
        "object has no attribute '__name__'\" once the timeout has passed, or a bare "
        "isinstance() TypeError if events were recorded (supervision/testing/probe.py "
        "Probe.expect)",
    ),
    row(
        "faults-no-system",
        lambda s: FaultInjector(None),
        TypeError,
        "system",
        fixed='FaultInjector(None) is accepted and every later call raises "AttributeError: '
        "'NoneType' object has no attribute '_lookup'\" (supervision/testing/faults.py "
        "FaultInjector.__init__)",
    ),
    row(
        "faults-crash-unknown",
        lambda s: FaultInjector(s).crash("ghost"),
        UnknownActorError,
        "ghost",
    ),
    row(
        "faults-crash-times-zero",
        lambda s: FaultInjector(s).crash("echo", times=0),
        ValueError,
        "times must be >= 1",
    ),
    row(
        "faults-crash-times-bool",
        lambda s: FaultInjector(s).crash("echo", times=True),
        TypeError,
        "times must be an int",
    ),
    row(
        "faults-crash-exc-str",
        lambda s: FaultInjector(s).crash("echo", exc="boom"),
        TypeError,
        "exc must be an exception",
    ),
    row(
        "faults-crash-exc-not-exception",
        lambda s: FaultInjector(s).crash("echo", exc=int),
        TypeError,
        "exc must be an exception",
    ),
    row(
        "faults-crash-message-type-str",
        lambda s: FaultInjector(s).crash("echo", message_type="str"),
        TypeError,
        "message_type must be a class",
    ),
    row(
        "faults-fail-start-negative",
        lambda s: FaultInjector(s).fail_start("echo", times=-1),
        ValueError,
        "times must be >= 1",
    ),
    row(
        "faults-hang-nan",
        lambda s: FaultInjector(s).hang("echo", NAN),
        ValueError,
        r"hang\(seconds\) must be a finite",
    ),
    row(
        "faults-hang-negative",
        lambda s: FaultInjector(s).hang("echo", -1),
        ValueError,
        r"hang\(seconds\) must be >= 0",
    ),
    row(
        "faults-hang-message-type-int",
        lambda s: FaultInjector(s).hang("echo", 1, message_type=5),
        TypeError,
        "message_type must be a class",
        fixed="FaultInjector.hang(name, s, message_type=5) is accepted (crash() checks "
        "message_type, hang() does not); the next message to the actor then fails with "
        "'TypeError: isinstance() arg 2 must be a type' and the actor is restarted "
        "(supervision/testing/faults.py FaultInjector.hang)",
    ),
    row(
        "faults-kill-unknown", lambda s: FaultInjector(s).kill("ghost"), UnknownActorError, "ghost"
    ),
    row("faults-kill-int", lambda s: FaultInjector(s).kill(7), TypeError, r"name\)? must be a str"),
    # downloads: arguments
    row(
        "submit-unknown-source",
        lambda s: s.downloads.submit("ghost", "t", "n"),
        UnknownSourceError,
        r"unknown download source 'ghost' \(registered: 'books'\)",
    ),
    row(
        "submit-source-int",
        lambda s: s.downloads.submit(5, "t", "n"),
        TypeError,
        "source must be a str, got int",
    ),
    row(
        "submit-source-empty",
        lambda s: s.downloads.submit("", "t", "n"),
        ValueError,
        "source must not be empty",
    ),
    row(
        "submit-target-empty",
        lambda s: s.downloads.submit("books", "", "n"),
        ValueError,
        "target_id must not be empty",
    ),
    row(
        "submit-target-blank",
        lambda s: s.downloads.submit("books", " \t", "n"),
        ValueError,
        "target_id must not be empty",
    ),
    row(
        "submit-target-huge",
        lambda s: s.downloads.submit("books", "t" * 100_000, "n"),
        ValueError,
        "target_id is 100000 characters long",
    ),
    row(
        "submit-target-bytes",
        lambda s: s.downloads.submit("books", b"isbn", "n"),
        TypeError,
        "target_id must be a str",
    ),
    row(
        "submit-name-none",
        lambda s: s.downloads.submit("books", "t", None),
        TypeError,
        "display_name must be a str",
    ),
    row(
        "submit-name-empty",
        lambda s: s.downloads.submit("books", "t", ""),
        ValueError,
        "display_name must not be empty",
    ),
    row(
        "submit-original-filename-int",
        lambda s: s.downloads.submit("books", "t", "n", original_filename=5),
        TypeError,
        "original_filename must be a str",
    ),
    row(
        "submit-original-filename-empty",
        lambda s: s.downloads.submit("books", "t", "n", original_filename=""),
        ValueError,
        "original_filename must not be empty",
    ),
    row(
        "submit-extra-list",
        lambda s: s.downloads.submit("books", "t", "n", extra=[1]),
        TypeError,
        "extra must be a mapping",
    ),
    row(
        "submit-extra-int-key",
        lambda s: s.downloads.submit("books", "t", "n", extra={1: 2}),
        TypeError,
        "extra keys must be str",
    ),
    row(
        "submit-extra-not-json",
        lambda s: s.downloads.submit("books", "t", "n", extra={"k": {1, 2}}),
        TypeError,
        "extra must be JSON-serialisable",
    ),
    row("status-int", lambda s: s.downloads.status(5), TypeError, "download_id must be a str"),
    row(
        "status-empty",
        lambda s: s.downloads.status(""),
        ValueError,
        "download_id must not be empty",
    ),
    row(
        "cancel-unknown",
        lambda s: s.downloads.cancel("ghost-id"),
        UnknownDownloadError,
        "unknown download id 'ghost-id'",
    ),
    row("cancel-none", lambda s: s.downloads.cancel(None), TypeError, "download_id must be a str"),
    row(
        "wait-unknown",
        lambda s: s.downloads.wait("ghost-id", 1),
        UnknownDownloadError,
        "unknown download id 'ghost-id'",
    ),
    row(
        "wait-timeout-nan",
        lambda s: s.downloads.wait("ghost-id", NAN),
        ValueError,
        r"wait\(timeout\) must be a finite",
    ),
    row(
        "wait-timeout-negative",
        lambda s: s.downloads.wait("ghost-id", -1),
        ValueError,
        r"wait\(timeout\) must be >= 0",
    ),
    row(
        "wait-timeout-str",
        lambda s: s.downloads.wait("ghost-id", "1"),
        TypeError,
        r"wait\(timeout\) must be a number",
    ),
    row("list-source-int", lambda s: s.downloads.list(source=5), TypeError, "source must be a str"),
    row(
        "list-state-unknown",
        lambda s: s.downloads.list(states="Done"),
        ValueError,
        "unknown download state 'Done'",
    ),
    row(
        "list-states-int",
        lambda s: s.downloads.list(states=5),
        TypeError,
        "states must be DownloadState values",
    ),
    row(
        "list-states-int-item",
        lambda s: s.downloads.list(states=[5]),
        ValueError,
        "unknown download state 5",
    ),
    row(
        "configure-unknown-source",
        lambda s: s.downloads.configure("ghost", concurrency=2),
        UnknownSourceError,
        "unknown download source 'ghost'",
    ),
    row(
        "configure-concurrency-zero",
        lambda s: s.downloads.configure("books", concurrency=0),
        ValueError,
        "concurrency must be between 1 and 256",
    ),
    row(
        "configure-concurrency-huge",
        lambda s: s.downloads.configure("books", concurrency=10_000),
        ValueError,
        "concurrency must be between 1 and 256",
    ),
    row(
        "configure-concurrency-bool",
        lambda s: s.downloads.configure("books", concurrency=True),
        TypeError,
        "concurrency must be an int",
    ),
    row(
        "configure-delay-nan",
        lambda s: s.downloads.configure("books", delay=NAN),
        ValueError,
        "delay must be a finite",
    ),
    row(
        "configure-delay-negative",
        lambda s: s.downloads.configure("books", delay=-2),
        ValueError,
        "delay must be >= 0",
    ),
    row(
        "configure-source-int",
        lambda s: s.downloads.configure(3, delay=1),
        TypeError,
        "source must be a str",
    ),
    row(
        "register-str",
        lambda s: s.downloads.register("books"),
        TypeError,
        "register\\(\\) needs a DownloadSource",
    ),
    row(
        "register-duplicate",
        lambda s: s.downloads.register(DownloadSource("books", book)),
        ValueError,
        "download source 'books' is already registered",
    ),
    row(
        "downloads-subscribe-int",
        lambda s: s.downloads.subscribe(5),
        TypeError,
        "needs a callable or an ActorRef",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), SYSTEM_CALLS)
def test_system_call_rejects_bad_input(
    system: ActorSystem, call: Any, error: type, match: str
) -> None:
    failures = Probe(system, ChildFailed)
    with pytest.raises(error, match=match):
        call(system)
    still_works(system, failures)


# -- stopped actors, unknown messages ------------------------------------------------------


def test_calls_to_a_stopped_actor(system: ActorSystem) -> None:
    system.spawn(ChildSpec("brief", Echo))
    old_ref = system.ref("brief")
    system.stop_child("brief")
    dead = Probe(system, DeadLetter)
    with pytest.raises(pykka.ActorDeadError, match="'brief' is stopped"):
        system.ask("brief", ("echo", 1))
    with pytest.raises(pykka.ActorDeadError, match="'brief' is stopped"):
        system.ref("brief")
    with pytest.raises(pykka.ActorDeadError):
        old_ref.tell(("echo", 1))
    with pytest.raises(pykka.ActorDeadError):
        old_ref.ask(("echo", 1), timeout=WAIT)
    with pytest.raises(pykka.ActorDeadError):
        old_ref.proxy()
    with pytest.raises(RuntimeError, match="'brief': it is stopped"):
        FaultInjector(system).crash("brief")
    system.tell("brief", ("echo", 2))  # a tell becomes a dead letter, no error
    assert dead.expect(DeadLetter, timeout=WAIT, recipient="brief", reason="stopped")
    system.stop_child("brief")  # stopping twice is harmless
    still_works(system)
    system.spawn(ChildSpec("brief", Echo))  # the name is free again
    assert system.ask("brief", ("echo", 3)) == 3


def test_calls_after_the_system_stopped() -> None:
    system = ActorSystem([ChildSpec("echo", Echo)], database_url=None)
    with pytest.raises(UnknownActorError):  # not started: no actors yet
        system.ask("echo", ("echo", 1))
    with pytest.raises(RuntimeError, match="not running"):
        system.downloads.status("x")
    system.start()
    system.stop()
    with pytest.raises(pykka.ActorDeadError, match="'echo' is stopped"):
        system.ask("echo", ("echo", 1))
    with pytest.raises(RuntimeError, match="is not running"):
        system.spawn(ChildSpec("late", Echo))
    with pytest.raises(RuntimeError, match="not running: downloads are unavailable"):
        system.downloads.list()
    with pytest.raises(UnknownSourceError):  # a system without sources has none
        system.downloads.submit("books", "t", "n")
    with pytest.raises(RuntimeError, match="already started"):
        system.start()
    system.tell("echo", ("echo", 1))  # a dead letter on a stopped bus: no error
    system.stop()
    assert system.threads() == []


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(object(), id="object"),
        pytest.param(None, id="none"),
        pytest.param(("echo",), id="short-tuple"),
        pytest.param({"a": [1, 2]}, id="dict"),
        pytest.param(b"\x00\xff" * 1000, id="bytes"),
        pytest.param("x" * 1_000_000, id="megabyte-string"),
        pytest.param(DeadLetter("x", "y", "z"), id="an-event"),
        pytest.param(ValueError("an exception as a message"), id="exception"),
    ],
)
def test_unknown_message_types_become_dead_letters(system: ActorSystem, message: Any) -> None:
    dead = Probe(system, DeadLetter)
    failures = Probe(system, ChildFailed)
    system.tell("echo", message)
    assert system.ask("echo", message) is None  # an unhandled ask answers None
    letter = dead.expect(DeadLetter, timeout=WAIT, recipient="echo", reason="unhandled")
    assert letter.message is message
    still_works(system, failures)


def test_message_with_broken_repr_is_a_dead_letter(system: ActorSystem) -> None:
    dead = Probe(system, DeadLetter)
    failures = Probe(system, ChildFailed)
    system.tell("echo", BrokenRepr())
    system.settle(WAIT)
    assert not [e for e in failures.events if isinstance(e, ChildFailed)], failures.events
    dead.expect(DeadLetter, timeout=WAIT, recipient="echo", reason="unhandled")
    system.spawn(ChildSpec("brief", Echo))
    system.stop_child("brief")
    system.tell("brief", BrokenRepr())
    dead.expect(DeadLetter, timeout=WAIT, recipient="brief", reason="stopped")
    still_works(system)


# -- durations the runtime cannot wait for -------------------------------------------------


class Scheduler(Actor):
    """Schedules messages to itself on request; reports ``"pong"`` on an event."""

    def __init__(self, pong: threading.Event) -> None:
        super().__init__()
        self.pong = pong

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "schedule":
            self.schedule(message[1], message[2])
            return True
        if message == "pong":
            self.pong.set()
            return None
        return super().on_receive(message)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_far_timer_does_not_stop_the_other_timers() -> None:
    pong = threading.Event()
    children = [ChildSpec("timers", Scheduler, args=(pong,))]
    with ActorSystem(children, database_url=None, name="far-timer") as system:
        [timer_thread] = [
            t for t in threading.enumerate() if t.name == "regisseur:far-timer/timers"
        ]
        assert system.ask("timers", ("schedule", HUGE, "never"))
        assert system.ask("timers", ("schedule", 0.01, "pong"))
        assert pong.wait(1.0), "a 10 ms timer did not fire within 1 s"
        # The far timer is now the next one: the thread must keep waiting for it.
        timer_thread.join(0.3)
        assert timer_thread.is_alive(), "the timer thread died"
        pong.clear()
        assert system.ask("timers", ("schedule", 0.01, "pong"))
        assert pong.wait(1.0), "a 10 ms timer did not fire within 1 s"


def test_ask_with_a_huge_timeout(system: ActorSystem) -> None:
    try:
        answer = system.ask("echo", ("echo", 42), timeout=HUGE)
    except ValueError as error:
        assert "timeout" in str(error)
    else:
        assert answer == 42
    still_works(system)


# -- lone surrogates: accepted, then lost in the database -----------------------------------


def test_surrogates_in_submit_are_refused(tmp_path: Path) -> None:
    with ActorSystem(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        download_sources=[DownloadSource("books", book)],
    ) as system:
        with pytest.raises(ValueError, match="target_id"):
            system.downloads.submit("books", "isbn:\ud800", "book")
        good = system.downloads.submit("books", "isbn:1", "book")
        assert system.downloads.wait(good, WAIT).state is DownloadState.SUCCEEDED


def test_control_characters_in_submit_are_stored(tmp_path: Path) -> None:
    with ActorSystem(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        download_sources=[DownloadSource("books", book)],
    ) as system:
        download = system.downloads.submit(
            "books",
            "isbn:\x00\x1b[31m",
            "na\x00me",
            original_filename="\x00",
            extra={"\x00": "\x7f"},
        )
        record = system.downloads.wait(download, WAIT)
        assert record.state is DownloadState.SUCCEEDED
        assert record.target_id == "isbn:\x00\x1b[31m"
        assert [r.id for r in system.downloads.list()] == [download]


# -- hypothesis: names, durations, file names ---------------------------------------------

NAME_LIKE = st.one_of(
    st.text(max_size=MAX_NAME_LENGTH + 20),
    st.text(alphabet="\x00\x01\t\n\r \x7f\x85\u2028ab.:/", max_size=8),
    st.integers(),
    st.none(),
    st.binary(max_size=10),
    st.floats(),
    st.booleans(),
)


def test_names_are_accepted_or_refused_clearly() -> None:
    with ActorSystem([ChildSpec("echo", Echo)], database_url=None) as system:

        @settings(max_examples=300, deadline=None)
        @given(NAME_LIKE)
        def check(name: Any) -> None:
            try:
                accepted = check_name(name)
            except (TypeError, ValueError) as error:
                kind = type(error)
                assert str(error).startswith("name ")
                with pytest.raises(kind, match="ChildSpec.name"):
                    ChildSpec(name, Echo)
                with pytest.raises(kind, match="DownloadSource name"):
                    DownloadSource(name, three)
                with pytest.raises(kind, match=r"^ask\(name\) "):
                    system.ask(name, ("echo", 1))
                assert kind is TypeError or isinstance(name, str)
                return
            assert accepted is name
            assert isinstance(name, str) and name.strip()
            assert 1 <= len(name) <= MAX_NAME_LENGTH
            assert not any(ord(c) < 32 or ord(c) == 127 for c in name)
            assert ChildSpec(name, Echo).name == name
            assert DownloadSource(name, three).name == name
            if name != "echo":
                with pytest.raises(UnknownActorError):
                    system.ask(name, ("echo", 1))

        check()
        assert system.ask("echo", ("echo", 1)) == 1


DURATION_LIKE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from([-0.0, 0, 0.0, 5e-324, 1e308]),
)


def _expected(value: Any, *, allow_zero: bool) -> type[BaseException] | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return TypeError
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
        return ValueError
    return None


DURATION_ENTRY_POINTS = [
    ("ManualClock.advance", lambda v: ManualClock().advance(v), True),
    ("ManualClock(start)", lambda v: ManualClock(v), True),
    ("Backoff.maximum", lambda v: Backoff(initial=0, maximum=v), True),
    ("Directive.restart_after", lambda v: Directive.restart_after(v), True),
    ("ChildSpec.start_timeout", lambda v: ChildSpec("a", Echo, start_timeout=v), False),
    ("Supervisor.within", lambda v: Supervisor(within=v), False),
    ("DownloadSource.delay", lambda v: DownloadSource("d", three, delay=v), True),
    ("check_duration", lambda v: check_duration(v, "x"), True),
]


@pytest.mark.parametrize(
    ("call", "allow_zero"),
    [pytest.param(call, zero, id=name) for name, call, zero in DURATION_ENTRY_POINTS],
)
@settings(max_examples=150, deadline=None)
@given(value=DURATION_LIKE)
def test_durations_are_accepted_or_refused_clearly(call: Any, allow_zero: bool, value: Any) -> None:
    expected = _expected(value, allow_zero=allow_zero)
    if expected is None:
        call(value)
    else:
        with pytest.raises(expected, match="seconds|number|finite"):
            call(value)


_RESERVED_STEMS = re.compile(
    r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|CLOCK\$|COM[0-9¹²³]|LPT[0-9¹²³])$"
)


def assert_safe(name: str, directory: Path, max_bytes: int = MAX_NAME_BYTES) -> None:
    """``name`` is one portable path component that stays in ``directory``."""
    assert isinstance(name, str) and name
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..")
    assert not name.startswith(".") and not name.endswith(".")
    assert name == name.strip()
    assert len(name.encode("utf-8")) <= max_bytes
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name)
    assert not any(c in '<>:"|?*' for c in name)
    assert not _RESERVED_STEMS.match(name.split(".", 1)[0].rstrip().upper())
    assert unicodedata.is_normalized("NFC", name)
    path = directory / name
    assert path.parent == directory
    with open(path, "x"):
        pass
    os.unlink(path)


HOSTILE_NAMES = [
    ("../../etc/passwd", "passwd"),
    ("/etc/passwd", "passwd"),
    ("..", "download"),
    (".", "download"),
    ("", "download"),
    ("/", "download"),
    ("a/../../b", "b"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("C:\\Windows\\system32\\x.dll", "x.dll"),
    ("~/.bashrc", "bashrc"),
    (".hidden", "hidden"),
    ("trailing. . .", "trailing"),
    ("  spaced  ", "spaced"),
    ("a\x00b", "a b"),
    ("a\nb\rc\td", "a b c d"),
    ("\x1b[31mred", "[31mred"),
    ("\u202etxt.exe", "txt.exe"),
    ("zero\u200bwidth", "zerowidth"),
    ("line\u2028sep", "line sep"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("NUL", "_NUL"),
    ("COM1.tar.gz", "_COM1.tar.gz"),
    ("LPT9", "_LPT9"),
    ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
    ("e\u0301.txt", "\u00e9.txt"),
    ("bad\ud800surrogate", "badsurrogate"),
]


@pytest.mark.parametrize(
    ("name", "expected"), HOSTILE_NAMES, ids=[repr(n)[:30] for n, _ in HOSTILE_NAMES]
)
def test_safe_filename_of_hostile_names(tmp_path: Path, name: str, expected: str) -> None:
    result = safe_filename(name)
    assert result == expected
    assert_safe(result, tmp_path)


@pytest.mark.parametrize("length", [256, 1000, 100_000])
def test_safe_filename_of_very_long_names(tmp_path: Path, length: int) -> None:
    for stem in ("x", "é", "😀"):
        name = stem * length + ".tar.gz"
        result = safe_filename(name)
        assert result.endswith(".tar.gz")
        assert_safe(result, tmp_path)


@pytest.mark.parametrize("value", [None, 5, b"name", ["a"], object()])
def test_safe_filename_of_non_text_falls_back(value: Any) -> None:
    assert safe_filename(value) == "download"
    assert safe_filename(value, fallback="book.epub") == "book.epub"


@pytest.mark.parametrize("max_bytes", [0, 15, -1, 2.5, True, None])
def test_safe_filename_refuses_bad_limits(max_bytes: Any) -> None:
    with pytest.raises(ValueError, match="max_bytes must be an int >= 16"):
        safe_filename("x", max_bytes=max_bytes)


def test_safe_filename_of_any_text() -> None:
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder).resolve()

        @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            st.one_of(
                st.text(max_size=300),
                st.text(alphabet=st.characters(codec=None), max_size=80),
                st.text(alphabet='./\\ \x00\x01\u202e\u200b:<>*?"|~CONULPT1.', max_size=24),
            ),
            st.integers(min_value=16, max_value=MAX_NAME_BYTES),
        )
        def check(name: str, max_bytes: int) -> None:
            result = safe_filename(name, max_bytes=max_bytes)
            assert_safe(result, directory, max_bytes)
            assert safe_filename(result, max_bytes=max_bytes) == result  # idempotent

        check()
        assert os.listdir(directory) == []


# -- enums given as text ------------------------------------------------------------------


def test_enum_values_given_as_text_are_accepted(system: ActorSystem) -> None:
    spec = ChildSpec("a", Echo, restart="transient")
    assert spec.restart is Restart.TRANSIENT
    assert Supervisor(strategy="rest_for_one").strategy is Strategy.REST_FOR_ONE
    assert system.downloads.list(states="Errored") == []
    still_works(system)
