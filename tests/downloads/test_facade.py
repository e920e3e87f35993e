"""``system.downloads``: argument checking, unknown names and ids, waiting,
configuring, registering at runtime, listing, subscribing, and isolation
between systems.

A call that raises records nothing; every error names what was wrong.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import (
    DownloadSettings,
    DownloadSource,
    UnknownDownloadError,
    UnknownSourceError,
)
from regisseur.messages import DownloadRecord
from regisseur.messages.downloads import DownloadProgressed, DownloadStateChanged
from tests.downloads.helpers import (
    CANCELLED,
    ERRORED,
    INIT,
    RUNNING,
    SUCCEEDED,
    WAIT,
    Hold,
    fails,
    quick,
)

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def system(system_factory) -> ActorSystem:
    """A system with sources ``s`` (succeeds) and ``a`` (fails)."""
    return system_factory(download_sources=[DownloadSource("s", quick), DownloadSource("a", fails)])


def workers(system: ActorSystem, source: str) -> list[str]:
    return [n for n in system.names() if n.startswith(f"source:{source}.worker-")]


# -- submit ----------------------------------------------------------------------------------


def test_submit_returns_an_id_at_once_and_status_sees_it(system_factory):
    hold = Hold()
    system = system_factory(download_sources=[DownloadSource("s", hold)])
    first = system.downloads.submit("s", "t", "first")
    assert hold.entered.wait(WAIT)

    queued = system.downloads.submit("s", "t", "queued")  # does not wait for a worker

    assert isinstance(queued, str) and queued
    assert queued != first
    record = system.downloads.status(queued)
    assert isinstance(record, DownloadRecord)
    assert (record.state, record.source, record.filename) == (INIT, "s", "queued")
    hold.release.set()
    assert system.downloads.wait(queued, WAIT).state is SUCCEEDED


def test_submit_to_an_unknown_source_names_it_and_the_registered_ones(system):
    with pytest.raises(UnknownSourceError) as caught:
        system.downloads.submit("nope", "t", "d")

    message = str(caught.value)
    assert "'nope'" in message
    assert "'s'" in message and "'a'" in message
    assert caught.value.name == "nope"
    assert sorted(caught.value.known) == ["a", "s"]
    assert isinstance(caught.value, LookupError)
    assert system.downloads.list() == []


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "argument"),
    [
        ((5, "t", "d"), {}, TypeError, "source"),
        ((None, "t", "d"), {}, TypeError, "source"),
        (("s", 5, "d"), {}, TypeError, "target_id"),
        (("s", b"t", "d"), {}, TypeError, "target_id"),
        (("s", "", "d"), {}, ValueError, "target_id"),
        (("s", "t", None), {}, TypeError, "display_name"),
        (("s", "t", "   "), {}, ValueError, "display_name"),
        (("s", "t", "d"), {"original_filename": 3}, TypeError, "original_filename"),
        (("s", "t", "d"), {"original_filename": ""}, ValueError, "original_filename"),
        (("s", "t", "d"), {"extra": [("k", 1)]}, TypeError, "extra"),
        (("s", "t", "d"), {"extra": "k=1"}, TypeError, "extra"),
        (("s", "t", "d"), {"extra": {1: "x"}}, TypeError, "extra"),
        (("s", "t", "d"), {"extra": {"when": object()}}, TypeError, "extra"),
        (("s", "t", "d"), {"extra": {"raw": b"bytes"}}, TypeError, "extra"),
        (("s", "t", "d"), {"extra": {"nested": {"set": {1, 2}}}}, TypeError, "extra"),
        (("s", "x" * 10_000, "d"), {}, ValueError, "target_id"),
    ],
)
def test_submit_rejects_bad_arguments_naming_them(system, args, kwargs, error, argument):
    with pytest.raises(error, match=argument):
        system.downloads.submit(*args, **kwargs)
    assert system.downloads.list() == []


def test_extra_that_is_not_json_serialisable_says_so(system):
    with pytest.raises(TypeError, match="JSON"):
        system.downloads.submit("s", "t", "d", extra={"when": object()})


def test_extra_is_copied_at_submit(system):
    extra: dict[str, Any] = {"k": [1]}
    download = system.downloads.submit("s", "t", "d", extra=extra)
    extra["k"] = "changed"
    extra["new"] = True
    assert dict(system.downloads.wait(download, WAIT).extra) == {"k": [1]}


@pytest.mark.parametrize("source", ["", "   "])
def test_submit_to_an_empty_source_name_is_a_value_error(system, source):
    with pytest.raises(ValueError, match="source"):
        system.downloads.submit(source, "t", "d")


def test_submit_after_the_system_stopped_raises(system_factory):
    system = system_factory(download_sources=[DownloadSource("s", quick)])
    system.downloads.wait(system.downloads.submit("s", "t", "d"), WAIT)
    system.stop()

    with pytest.raises(RuntimeError):
        system.downloads.submit("s", "t", "lost")


# -- ids: status, cancel, wait ----------------------------------------------------------------


def test_status_of_an_unknown_id_is_none(system):
    assert system.downloads.status("no-such-download") is None


def test_cancel_of_an_unknown_id_raises(system):
    with pytest.raises(UnknownDownloadError) as caught:
        system.downloads.cancel("no-such-download")
    assert caught.value.download_id == "no-such-download"
    assert "no-such-download" in str(caught.value)
    assert isinstance(caught.value, LookupError)


def test_wait_for_an_unknown_id_raises(system):
    with pytest.raises(UnknownDownloadError, match="no-such-download"):
        system.downloads.wait("no-such-download", WAIT)


@pytest.mark.parametrize(
    ("call", "error", "argument"),
    [
        (lambda d: d.status(5), TypeError, "download_id"),
        (lambda d: d.status(""), ValueError, "download_id"),
        (lambda d: d.cancel(None), TypeError, "download_id"),
        (lambda d: d.cancel(" "), ValueError, "download_id"),
        (lambda d: d.wait(7, 1.0), TypeError, "download_id"),
        (lambda d: d.wait("x", -1), ValueError, "timeout"),
        (lambda d: d.wait("x", "1"), TypeError, "timeout"),
        (lambda d: d.wait("x", math.nan), ValueError, "timeout"),
        (lambda d: d.list(source=5), TypeError, "source"),
        (lambda d: d.list(source=""), ValueError, "source"),
        (lambda d: d.list(states=["Bogus"]), ValueError, "Bogus"),
        (lambda d: d.list(states=5), TypeError, "states"),
    ],
)
def test_bad_arguments_name_the_argument(system, call, error, argument):
    with pytest.raises(error, match=argument):
        call(system.downloads)


def test_wait_times_out_with_a_timeout_error(system_factory):
    hold = Hold()
    system = system_factory(download_sources=[DownloadSource("s", hold)])
    download = system.downloads.submit("s", "t", "slow")
    assert hold.entered.wait(WAIT)

    began = time.monotonic()
    with pytest.raises(TimeoutError, match=download):
        system.downloads.wait(download, 0.05)
    assert time.monotonic() - began < 2.0

    hold.release.set()
    assert system.downloads.wait(download, WAIT).state is SUCCEEDED


def test_wait_returns_the_final_record(system):
    good = system.downloads.submit("s", "t", "good")
    bad = system.downloads.submit("a", "t", "bad")

    final = system.downloads.wait(good, WAIT)
    failed = system.downloads.wait(bad, WAIT)

    assert final.state is SUCCEEDED and final.file_path == "/files/good"
    assert failed.state is ERRORED and "cannot fetch bad" in (failed.error or "")
    assert system.downloads.wait(good, 0) == final  # ended: returns at once


def test_wait_from_another_thread_sees_a_cancel(system_factory):
    hold = Hold()
    system = system_factory(download_sources=[DownloadSource("s", hold)])
    download = system.downloads.submit("s", "t", "d")
    assert hold.entered.wait(WAIT)
    result: list[DownloadRecord] = []
    waiter = threading.Thread(target=lambda: result.append(system.downloads.wait(download, WAIT)))
    waiter.start()

    assert system.downloads.cancel(download) is True
    waiter.join(WAIT)

    assert not waiter.is_alive()
    assert [r.state for r in result] == [CANCELLED]


# -- configure ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"concurrency": -2}, ValueError, "concurrency"),
        ({"concurrency": True}, TypeError, "concurrency"),
        ({"concurrency": 2.0}, TypeError, "concurrency"),
        ({"concurrency": "2"}, TypeError, "concurrency"),
        ({"concurrency": 10**6}, ValueError, "concurrency"),
        ({"delay": -1}, ValueError, "delay"),
        ({"delay": math.nan}, ValueError, "delay"),
        ({"delay": math.inf}, ValueError, "delay"),
        ({"delay": True}, TypeError, "delay"),
        ({"delay": "5"}, TypeError, "delay"),
    ],
)
def test_configure_rejects_bad_limits(system, kwargs, error, argument):
    with pytest.raises(error, match=argument):
        system.downloads.configure("s", **kwargs)
    system.settle()
    assert workers(system, "s") == ["source:s.worker-1"]  # nothing changed


def test_configure_an_unknown_source_raises(system):
    with pytest.raises(UnknownSourceError, match="nope"):
        system.downloads.configure("nope", concurrency=2)
    with pytest.raises(TypeError, match="source"):
        system.downloads.configure(None, concurrency=2)


def test_configure_with_nothing_to_change_changes_nothing(system):
    system.downloads.configure("s")
    system.settle()
    assert workers(system, "s") == ["source:s.worker-1"]


# -- sources: register -----------------------------------------------------------------------------


def test_register_a_duplicate_name_raises(system):
    with pytest.raises(ValueError, match="'s'"):
        system.downloads.register(DownloadSource("s", quick))
    assert sorted(system.downloads.sources()) == ["a", "s"]
    assert system.downloads.wait(system.downloads.submit("s", "t", "d"), WAIT).state is SUCCEEDED


def test_register_needs_a_download_source(system):
    with pytest.raises(TypeError, match="DownloadSource"):
        system.downloads.register(quick)  # type: ignore[arg-type]


def test_register_at_runtime_on_a_system_started_without_sources(actor_system):
    downloads = actor_system.downloads
    assert downloads.sources() == []
    assert downloads.status("anything") is None

    downloads.register(DownloadSource("late", quick, concurrency=2, username="carol"))

    assert downloads.sources() == ["late"]
    download = downloads.submit("late", "t", "d")
    final = downloads.wait(download, WAIT)
    assert final.state is SUCCEEDED
    assert final.username == "carol"
    actor_system.settle()
    assert workers(actor_system, "late") == ["source:late.worker-1", "source:late.worker-2"]

    downloads.register(DownloadSource("later", fails))
    assert sorted(downloads.sources()) == ["late", "later"]
    assert downloads.wait(downloads.submit("later", "t", "x"), WAIT).state is ERRORED


def test_a_source_registered_at_runtime_is_unknown_before(actor_system):
    with pytest.raises(UnknownSourceError, match="none"):
        actor_system.downloads.submit("late", "t", "d")


@pytest.mark.parametrize(
    ("make", "error", "argument"),
    [
        (lambda: DownloadSource("", quick), ValueError, "name"),
        (lambda: DownloadSource(5, quick), TypeError, "name"),
        (lambda: DownloadSource("s", "not callable"), TypeError, "impl"),
        (lambda: DownloadSource("s", lambda a, b: "/x"), TypeError, "positional"),
        (lambda: DownloadSource("s", quick, concurrency=0), ValueError, "concurrency"),
        (lambda: DownloadSource("s", quick, concurrency=True), TypeError, "concurrency"),
        (lambda: DownloadSource("s", quick, delay=-1), ValueError, "delay"),
        (lambda: DownloadSource("s", quick, delay=math.nan), ValueError, "delay"),
        (lambda: DownloadSource("s", quick, username=5), TypeError, "username"),
        (lambda: DownloadSource("s", quick, directory=5), TypeError, "directory"),
        (lambda: DownloadSource("s", quick, open_worker=5), TypeError, "open_worker"),
    ],
)
def test_download_source_checks_its_arguments(make, error, argument):
    with pytest.raises(error, match=argument):
        make()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"download_sources": [DownloadSource("s", quick), DownloadSource("s", fails)]},
            ValueError,
            "'s'",
        ),
        ({"download_sources": "s"}, TypeError, "download_sources"),
        ({"download_sources": [quick]}, TypeError, "DownloadSource"),
        ({"downloads": {"history": 5}}, TypeError, "DownloadSettings"),
    ],
)
def test_the_system_checks_its_download_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ActorSystem(database_url=None, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"history": -1}, ValueError, "history"),
        ({"history": 1.5}, TypeError, "history"),
        ({"flush_interval": 0}, ValueError, "flush_interval"),
        ({"flush_interval": -1}, ValueError, "flush_interval"),
        ({"flush_interval": "1"}, TypeError, "flush_interval"),
    ],
)
def test_download_settings_check_their_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DownloadSettings(**kwargs)


# -- list ---------------------------------------------------------------------------------------


def test_list_filters_by_source_and_states(system):
    good = [system.downloads.submit("s", "t", f"g{i}") for i in range(3)]
    bad = [system.downloads.submit("a", "t", f"b{i}") for i in range(2)]
    for download in good + bad:
        system.downloads.wait(download, WAIT)

    def ids(records: list[DownloadRecord]) -> list[str]:
        return [r.id for r in records]

    assert ids(system.downloads.list()) == [r.id for r in system.downloads.list()]
    assert set(ids(system.downloads.list())) == set(good + bad)
    assert ids(system.downloads.list(source="s")) == good
    assert ids(system.downloads.list(source="a")) == bad
    assert ids(system.downloads.list(states=[SUCCEEDED])) == good
    assert ids(system.downloads.list(states=ERRORED)) == bad
    assert ids(system.downloads.list(states="Errored")) == bad  # the legacy string
    assert set(ids(system.downloads.list(states=[SUCCEEDED, "Errored"]))) == set(good + bad)
    assert ids(system.downloads.list(states=(s for s in [CANCELLED]))) == []
    assert ids(system.downloads.list(source="s", states=[ERRORED])) == []
    assert ids(system.downloads.list(source="unknown")) == []


def test_list_sees_queued_and_running_downloads(system_factory):
    hold = Hold()
    system = system_factory(download_sources=[DownloadSource("s", hold)])
    running = system.downloads.submit("s", "t", "running")
    assert hold.entered.wait(WAIT)
    queued = system.downloads.submit("s", "t", "queued")

    assert [r.id for r in system.downloads.list(states=[RUNNING])] == [running]
    assert [r.id for r in system.downloads.list(states=[INIT])] == [queued]
    assert [r.id for r in system.downloads.list(states=[INIT, RUNNING])] == [running, queued]
    hold.release.set()
    system.downloads.wait(queued, WAIT)


# -- subscribe ---------------------------------------------------------------------------------


def test_subscribe_delivers_state_changes_and_progress_until_cancelled(system_factory):
    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        ctx.report(1, 2)
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    every: list[Any] = []
    changes: list[Any] = []
    lock = threading.Lock()

    def collect(into: list[Any]) -> Callable[[Any], None]:
        def callback(event: Any) -> None:
            with lock:
                into.append(event)

        return callback

    sub_all = system.downloads.subscribe(collect(every))
    sub_changes = system.downloads.subscribe(collect(changes), progress=False)
    first = system.downloads.submit("s", "t", "first")
    system.downloads.wait(first, WAIT)
    system.settle()

    with lock:
        assert {type(e) for e in every} == {DownloadStateChanged, DownloadProgressed}
        assert {type(e) for e in changes} == {DownloadStateChanged}
        assert [e.record.state for e in changes] == [INIT, RUNNING, SUCCEEDED]

    sub_all.cancel()
    sub_changes.cancel()
    with lock:
        counts = (len(every), len(changes))
    system.downloads.wait(system.downloads.submit("s", "t", "second"), WAIT)
    system.settle()
    with lock:
        assert (len(every), len(changes)) == counts


def test_a_failing_subscriber_does_not_stop_downloads(system):
    def broken(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    system.downloads.subscribe(broken)
    download = system.downloads.submit("s", "t", "d")
    assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    assert system.downloads.wait(system.downloads.submit("s", "t", "e"), WAIT).state is SUCCEEDED


# -- isolation -----------------------------------------------------------------------------------


def test_two_systems_do_not_see_each_other(system_factory):
    one = system_factory(download_sources=[DownloadSource("s", quick)])
    two = system_factory(download_sources=[DownloadSource("s", quick)])
    seen_by_two: list[Any] = []
    two.downloads.subscribe(seen_by_two.append)

    download = one.downloads.submit("s", "t", "only-in-one")
    assert one.downloads.wait(download, WAIT).state is SUCCEEDED
    one.settle()
    two.settle()

    assert two.downloads.status(download) is None
    assert two.downloads.list() == []
    with pytest.raises(UnknownDownloadError):
        two.downloads.cancel(download)
    assert seen_by_two == []
    assert [r.id for r in one.downloads.list()] == [download]

    two.downloads.register(DownloadSource("extra", quick))
    assert one.downloads.sources() == ["s"]
    assert sorted(two.downloads.sources()) == ["extra", "s"]
