"""Download sources: concurrency, delay, runtime configuration, FIFO order,
the impl's context, cancellation, dead workers and stopping.

Impls are controlled with ``threading`` primitives and bounded waits; the
delay runs on the ``ManualClock`` and is observed with ``system.settle()``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors.downloads import DownloadSource, HttpSource
from regisseur.messages import ChildFailed, ChildRestarted, ChildRestarting, DownloadState
from regisseur.messages.downloads import DownloadStateChanged
from regisseur.supervision.testing import FaultInjector, Probe
from tests.downloads.helpers import CANCELLED, ERRORED, INIT, RUNNING, SUCCEEDED, WAIT, Gate

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors import ActorSystem


def in_state(system: ActorSystem, state: DownloadState, source: str | None = None) -> int:
    return len(system.downloads.list(source=source, states=[state]))


def queue_health(system: ActorSystem, source: str) -> dict[str, Any]:
    """The source queue's health details, asked on its own thread (a round trip).

    A keeper round trip first: the keeper tells the queue about submits and
    cancels before it answers any ask.
    """
    system.downloads.sources()
    details = system.ref(f"source:{source}.queue").proxy().health().get(timeout=WAIT)
    assert isinstance(details, dict)
    return details


def quick_impl(download_id: str, target_id: str, name: str) -> str:
    return f"/files/{name}"


def regisseur_threads() -> int:
    """Live threads of any system in this process (their names say so)."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("regisseur:"))


def workers(system: ActorSystem, source: str) -> list[str]:
    return [n for n in system.names() if n.startswith(f"source:{source}.worker-")]


# -- concurrency -----------------------------------------------------------------------


def test_concurrency_is_never_exceeded(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=2)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(6)]

    gate.wait_started(2)
    assert in_state(system, RUNNING) == 2  # the keeper has handled every submit
    assert queue_health(system, "s")["queued"] == 4  # and the queue every Enqueue
    assert gate.running == 2
    assert len(gate.started) == 2

    gate.open("d0")
    gate.wait_started(3)
    assert gate.peak == 2
    gate.open()
    for download in ids:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    assert gate.peak == 2
    assert sorted(gate.started) == [f"d{i}" for i in range(6)]


def test_threads_are_per_worker_not_per_download(system_factory):
    gate = Gate()
    big = system_factory(
        download_sources=[
            DownloadSource("a", gate, concurrency=2),
            DownloadSource("b", gate, concurrency=3),
        ]
    )
    small = system_factory(download_sources=[DownloadSource("a", gate), DownloadSource("b", gate)])
    idle_threads = len(big.threads())
    process_threads = regisseur_threads()
    # The same constant on top of the workers: threads = sum(concurrency) + c.
    assert idle_threads - (2 + 3) == len(small.threads()) - (1 + 1)

    ids = [big.downloads.submit(source, "t", f"{source}{i}") for source in "ab" for i in range(6)]
    gate.wait_started(5)
    assert in_state(big, RUNNING) == 5

    assert len(big.threads()) == idle_threads
    assert regisseur_threads() == process_threads
    gate.open()
    for download in ids:
        assert big.downloads.wait(download, WAIT).state is SUCCEEDED
    assert gate.peak == 5
    assert len(big.threads()) == idle_threads


# -- delay -------------------------------------------------------------------------------


def test_starts_are_at_least_delay_apart_on_the_system_clock(system_factory, manual_clock):
    starts: list[tuple[str, float]] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        starts.append((name, manual_clock.now()))
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl, delay=5)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    system.settle()
    assert starts == [("d0", 0.0)]
    assert system.downloads.status(ids[1]).state is INIT

    manual_clock.advance(4.9)
    assert starts == [("d0", 0.0)]

    manual_clock.advance(0.1)
    assert starts == [("d0", 0.0), ("d1", 5.0)]

    manual_clock.advance(5)
    assert starts == [("d0", 0.0), ("d1", 5.0), ("d2", 10.0)]
    assert [system.downloads.status(d).state for d in ids] == [SUCCEEDED] * 3


def test_a_source_without_delay_starts_at_once(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=3)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(3)]
    gate.wait_started(3)  # no clock advance needed
    gate.open()
    for download in ids:
        system.downloads.wait(download, WAIT)


# -- configure at runtime --------------------------------------------------------------------


def test_raising_concurrency_at_runtime_starts_more_at_once(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=1)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(4)]
    gate.wait_started(1)
    assert workers(system, "s") == ["source:s.worker-1"]

    system.downloads.configure("s", concurrency=3)

    gate.wait_started(3)
    assert gate.running == 3
    assert in_state(system, RUNNING) == 3
    gate.open()
    for download in ids:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    system.settle()
    assert workers(system, "s") == [f"source:s.worker-{i}" for i in (1, 2, 3)]
    assert gate.peak == 3


def test_lowering_concurrency_at_runtime_retires_workers(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=3)])
    threads_at_three = len(system.threads())
    first = [system.downloads.submit("s", "t", f"a{i}") for i in range(3)]
    gate.wait_started(3)

    system.downloads.configure("s", concurrency=1)
    # Running downloads are not interrupted...
    gate.open(*(f"a{i}" for i in range(3)))
    for download in first:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    system.settle()
    # ...but their workers retire once free.
    assert workers(system, "s") == ["source:s.worker-1"]
    assert len(system.threads()) == threads_at_three - 2

    gate.reset_peak()
    later = [system.downloads.submit("s", "t", f"b{i}") for i in range(3)]
    gate.wait_started(4)
    assert in_state(system, RUNNING) == 1
    gate.open()
    for download in later:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    assert gate.peak == 1


def test_lowering_concurrency_of_an_idle_source_retires_workers_at_once(system_factory):
    system = system_factory(download_sources=[DownloadSource("s", Gate(), concurrency=4)])
    before = len(system.threads())

    system.downloads.configure("s", concurrency=2)
    system.settle()

    assert workers(system, "s") == ["source:s.worker-1", "source:s.worker-2"]
    assert len(system.threads()) == before - 2


def test_raising_the_delay_at_runtime_takes_effect(system_factory, manual_clock):
    starts: list[tuple[str, float]] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        starts.append((name, manual_clock.now()))
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    system.downloads.configure("s", delay=5)
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(2)]
    system.settle()
    assert starts == [("d0", 0.0)]

    manual_clock.advance(5)
    assert starts == [("d0", 0.0), ("d1", 5.0)]
    assert [system.downloads.status(d).state for d in ids] == [SUCCEEDED] * 2


def test_lowering_the_delay_at_runtime_starts_the_waiting_download(system_factory, manual_clock):
    starts: list[tuple[str, float]] = []

    def impl(download_id: str, target_id: str, name: str) -> str:
        starts.append((name, manual_clock.now()))
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl, delay=3600)])
    ids = [system.downloads.submit("s", "t", f"d{i}") for i in range(2)]
    system.settle()
    assert starts == [("d0", 0.0)]

    system.downloads.configure("s", delay=0)
    system.settle()

    assert starts == [("d0", 0.0), ("d1", 0.0)]
    assert system.downloads.status(ids[1]).state is SUCCEEDED


# -- order ---------------------------------------------------------------------------------


def test_downloads_start_in_submit_order_per_source(system_factory):
    order: dict[str, list[str]] = {"a": [], "b": []}

    def recorder(source: str) -> Callable[[str, str, str], str]:
        def impl(download_id: str, target_id: str, name: str) -> str:
            order[source].append(name)
            return f"/files/{name}"

        return impl

    system = system_factory(
        download_sources=[DownloadSource("a", recorder("a")), DownloadSource("b", recorder("b"))]
    )
    names = [f"{i:02d}" for i in range(12)]
    ids = []
    for name in names:
        ids.append(system.downloads.submit("a", "t", f"a{name}"))
        ids.append(system.downloads.submit("b", "t", f"b{name}"))
    for download in ids:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED

    assert order["a"] == [f"a{n}" for n in names]
    assert order["b"] == [f"b{n}" for n in names]
    assert [r.id for r in system.downloads.list()] == ids
    assert [r.filename for r in system.downloads.list(source="a")] == order["a"]


# -- the impl and its context -------------------------------------------------------------------


def test_an_impl_with_a_fourth_argument_gets_the_context(system_factory, tmp_path):
    seen: dict[str, Any] = {}

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        seen.update(
            download_id=(download_id, ctx.download_id),
            target_id=(target_id, ctx.target_id),
            display_name=(name, ctx.display_name),
            original_filename=ctx.original_filename,
            extra=dict(ctx.extra),
            destination=ctx.destination,
            cancelled=ctx.cancelled,
        )
        ctx.report(40, 100)
        ctx.report(100, 100)
        return str(ctx.destination / name)

    system = system_factory(download_sources=[DownloadSource("s", impl, directory=tmp_path)])
    download = system.downloads.submit("s", "https://x/y", "y.bin", "Y.Original.bin", {"k": 1})
    final = system.downloads.wait(download, WAIT)

    assert final.state is SUCCEEDED
    assert final.file_path == str(tmp_path / "y.bin")
    assert (final.transferred, final.size, final.progress) == (100, 100, 100.0)
    assert seen == {
        "download_id": (download, download),
        "target_id": ("https://x/y", "https://x/y"),
        "display_name": ("y.bin", "y.bin"),
        "original_filename": "Y.Original.bin",
        "extra": {"k": 1},
        "destination": Path(tmp_path),
        "cancelled": False,
    }


def test_an_impl_with_three_arguments_gets_no_context(system_factory):
    calls: dict[str, tuple[Any, ...]] = {}

    def impl(download_id: str, target_id: str, name: str) -> str:
        calls["three"] = (download_id, target_id, name)
        return "/files/x"

    def impl_varargs(*args: Any) -> str:
        calls["var"] = args
        return "/files/y"

    system = system_factory(
        download_sources=[DownloadSource("three", impl), DownloadSource("var", impl_varargs)]
    )
    first = system.downloads.submit("three", "t1", "n1")
    second = system.downloads.submit("var", "t2", "n2")
    assert system.downloads.wait(first, WAIT).state is SUCCEEDED
    assert system.downloads.wait(second, WAIT).state is SUCCEEDED

    assert calls["three"] == (first, "t1", "n1")
    assert calls["var"][:3] == (second, "t2", "n2")
    assert len(calls["var"]) == 4  # *args accepts the context
    assert calls["var"][3].download_id == second


def test_a_source_without_directory_has_no_destination(system_factory):
    seen: list[Any] = []

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        seen.append(ctx.destination)
        return "/files/x"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    system.downloads.wait(system.downloads.submit("s", "t", "n"), WAIT)
    assert seen == [None]


def test_open_worker_state_reaches_the_context_and_is_closed_on_stop(system_factory):
    opened: list[object] = []
    closed: list[object] = []
    seen: list[object] = []

    def open_worker() -> object:
        state = object()
        opened.append(state)
        return state

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str:
        seen.append(ctx.worker_state)
        return "/files/x"

    system = system_factory(
        download_sources=[
            DownloadSource("s", impl, open_worker=open_worker, close_worker=closed.append)
        ]
    )
    system.downloads.wait(system.downloads.submit("s", "t", "n"), WAIT)
    system.stop()

    assert len(opened) == 1
    assert seen == opened
    assert closed == opened


def test_an_impl_error_does_not_fail_the_worker(system_factory):
    def impl(download_id: str, target_id: str, name: str) -> str:
        if name == "bad":
            raise RuntimeError("boom")
        return f"/files/{name}"

    system = system_factory(download_sources=[DownloadSource("s", impl)])
    probe = Probe(system, ChildFailed)
    bad = system.downloads.submit("s", "t", "bad")
    good = system.downloads.submit("s", "t", "good")

    assert system.downloads.wait(bad, WAIT).state is ERRORED
    assert system.downloads.wait(good, WAIT).state is SUCCEEDED
    system.settle()
    probe.expect_no(ChildFailed, within=0)
    probe.close()


def test_a_directory_whose_path_is_not_utf8_text_is_refused(tmp_path):
    latin1 = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    for make in (
        lambda: DownloadSource("s", lambda *a: "x", directory=latin1),
        lambda: HttpSource("h", directory=latin1),
    ):
        with pytest.raises(ValueError, match=r"caf\\xe9.* is not UTF-8 text"):
            make()
    assert not latin1.exists()


def test_a_path_the_records_cannot_keep_ends_the_download_errored(system_factory, tmp_path):
    """Before: the record stayed InProgress for good (its store failed on
    every try) while the file existed; a bytes path was stored as "b'...'"."""
    latin1 = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.bin")

    def impl(download_id: str, target_id: str, name: str) -> object:
        return latin1 if name == "latin1" else PurePosixBytes(f"/files/{name}")

    system = system_factory(
        download_sources=[DownloadSource("s", impl)],
        database_url=f"sqlite:///{tmp_path / 'records.db'}",
    )
    bad = system.downloads.submit("s", "t", "latin1")
    good = system.downloads.submit("s", "t", "plain.bin")
    failed = system.downloads.wait(bad, WAIT)
    assert failed.state is ERRORED
    assert "caf\\xe9.bin', which is not UTF-8 text" in (failed.error or "")
    done = system.downloads.wait(good, WAIT)
    assert (done.state, done.file_path) == (SUCCEEDED, "/files/plain.bin")
    system.settle()
    assert [r.state for r in system.downloads.list(source="s")] == [ERRORED, SUCCEEDED]


class PurePosixBytes:
    """A path-like object whose path is bytes (``os.fspath`` gives bytes)."""

    def __init__(self, text: str) -> None:
        self.path = text.encode()

    def __fspath__(self) -> bytes:
        return self.path


# -- cancellation -------------------------------------------------------------------------------


def test_cancel_of_a_queued_download_removes_it_and_the_next_one_runs(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    first = system.downloads.submit("s", "t", "first")
    gate.wait_started(1)
    dropped = system.downloads.submit("s", "t", "dropped")
    last = system.downloads.submit("s", "t", "last")

    assert system.downloads.cancel(dropped) is True
    assert queue_health(system, "s")["queued"] == 1  # gone from the queue at once

    gate.open()
    assert system.downloads.wait(first, WAIT).state is SUCCEEDED
    assert system.downloads.wait(last, WAIT).state is SUCCEEDED
    assert gate.started == ["first", "last"]
    assert system.downloads.status(dropped).state is CANCELLED


def test_cancel_of_a_running_download_frees_its_worker(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    running = system.downloads.submit("s", "t", "running")
    gate.wait_started(1)
    waiting = system.downloads.submit("s", "t", "waiting")

    assert system.downloads.cancel(running) is True
    assert system.downloads.status(running).state is CANCELLED

    gate.wait_for(lambda: gate.saw_cancel == ["running"], "the impl saw ctx.cancelled")
    gate.wait_started(2)
    gate.open("waiting")
    assert system.downloads.wait(waiting, WAIT).state is SUCCEEDED
    assert system.downloads.status(running).state is CANCELLED


# -- failures and stopping ----------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_later_downloads_run(system_factory, manual_clock):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    probe = Probe(system, ChildFailed, ChildRestarted)
    first = system.downloads.submit("s", "t", "first")
    gate.wait_started(1)

    FaultInjector(system).kill("source:s.worker-1")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    manual_clock.advance(60)  # past any restart backoff
    probe.expect(ChildRestarted, timeout=WAIT, name="source:s.worker-1")

    gate.open()
    later = system.downloads.submit("s", "t", "later")
    assert system.downloads.wait(later, WAIT).state is SUCCEEDED
    assert "later" in gate.started
    assert system.downloads.status(first).state is not INIT
    probe.close()


def test_a_download_whose_worker_is_killed_is_errored(system_factory, manual_clock):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    probe = Probe(system, ChildFailed)
    download = system.downloads.submit("s", "t", "victim")
    gate.wait_started(1)

    FaultInjector(system).kill("source:s.worker-1")
    probe.expect(ChildFailed, timeout=WAIT, name="source:s.worker-1")
    system.settle()

    record = system.downloads.status(download)
    assert record.state is ERRORED, record
    assert "worker died" in (record.error or "")

    manual_clock.advance(60)
    gate.open()
    later = system.downloads.submit("s", "t", "later")
    assert system.downloads.wait(later, WAIT).state is SUCCEEDED
    assert system.downloads.status(download).state is ERRORED  # not run again
    probe.close()


def test_a_crashed_idle_queue_still_starts_downloads(system_factory, manual_clock):
    system = system_factory(download_sources=[DownloadSource("s", quick_impl, concurrency=2)])
    assert system.downloads.wait(system.downloads.submit("s", "t", "a"), WAIT).state is SUCCEEDED
    system.settle()

    probe = Probe(system, ChildRestarting)
    FaultInjector(system).crash("source:s.queue")
    system.downloads.configure("s", delay=0)  # a message to the queue: it crashes
    probe.expect(ChildRestarting, timeout=WAIT, name="source:s.queue")
    probe.close()
    manual_clock.advance(60)  # past the restart backoff

    later = system.downloads.submit("s", "t", "b")
    assert system.downloads.wait(later, 2.0).state is SUCCEEDED


def test_a_crashed_queue_rebuilds_its_fifo_from_the_keeper(system_factory, manual_clock):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    first = system.downloads.submit("s", "t", "d0")
    gate.wait_started(1)
    queued = [system.downloads.submit("s", "t", f"d{i}") for i in (1, 2)]
    assert queue_health(system, "s")["queued"] == 2

    probe = Probe(system, ChildRestarting)
    FaultInjector(system).crash("source:s.queue")
    late = system.downloads.submit("s", "t", "d3")  # its Enqueue hits the crash
    assert system.downloads.status(late).state is INIT
    probe.expect(ChildRestarting, timeout=WAIT, name="source:s.queue")
    probe.close()
    manual_clock.jump(60)  # past the restart backoff (d0 holds its worker: no settling)
    gate.open()

    for download in (first, *queued, late):
        assert system.downloads.wait(download, 2.0).state is SUCCEEDED
    assert gate.started[-3:] == ["d1", "d2", "d3"]


def test_stopping_the_system_ends_running_downloads_promptly(system_factory):
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=3)])
    for i in range(5):
        system.downloads.submit("s", "t", f"d{i}")
    gate.wait_started(3)
    ours = {t for t in threading.enumerate() if t in system.threads()}
    assert ours

    began = time.monotonic()
    system.stop()

    assert time.monotonic() - began < 2.0
    assert system.threads() == []
    assert not any(t.is_alive() for t in ours)
    assert sorted(gate.saw_cancel) == ["d0", "d1", "d2"]
    assert len(gate.started) == 3  # nothing new started while stopping


def test_stopping_with_downloads_waiting_and_running_loses_no_message(system_factory, caplog):
    """The workers take from the board themselves: a stop mid-backlog leaves no dead letter."""
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate, concurrency=3)])
    downloads = [system.downloads.submit("s", "t", f"d{i}") for i in range(12)]
    gate.open("d0", "d1", "d2", "d3")
    for download in downloads[:4]:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    gate.wait_started(7)  # three held runs, eight waiting on the board
    system.stop()
    assert [r.getMessage() for r in caplog.records if "dead_letter" in r.getMessage()] == []
    assert sorted(gate.saw_cancel) == ["d4", "d5", "d6"]


def test_a_system_stopping_starts_nothing_a_stopped_worker_released(system_factory, manual_clock):
    """Workers end one by one: one still up must not take what a stopped one let go.

    worker-2 runs ``b`` while worker-1 is parked. The stop cancels ``b``
    first; the keeper queues it again (for the next start), which wakes
    worker-1. Before, worker-1 started ``b`` again, only to be stopped in
    turn: a run begun to be cut off, a request wasted. worker-2's stop is
    held (in ``close_worker``) until that happens, or for at most a second.
    """
    starts: list[str] = []
    runners: dict[str, str] = {}
    again = threading.Event()
    a_may_end = threading.Event()

    def impl(download_id: str, target_id: str, name: str, ctx: Any) -> str | None:
        starts.append(name)
        runners[name] = ctx.worker_state  # the name of the thread that runs it
        if starts.count(name) > 1:
            again.set()
        while not ctx.cancelled and not (name == "a" and a_may_end.is_set()):
            ctx.sleep(1.0)  # on the manual clock: settle() counts the run as waiting
        return None if ctx.cancelled else f"/files/{name}"

    def open_worker() -> str:
        return threading.current_thread().name

    def close_worker(thread_name: str) -> None:
        if "source:s.worker-2#" in thread_name:
            again.wait(1.0)  # a bounded wait for what must not happen

    system = system_factory(
        download_sources=[
            DownloadSource("s", impl, open_worker=open_worker, close_worker=close_worker)
        ]
    )
    a = system.downloads.submit("s", "t", "a")
    system.settle()  # worker-1 runs a
    system.downloads.configure("s", concurrency=2)
    b = system.downloads.submit("s", "t", "b")
    system.settle()  # worker-2 runs b
    a_may_end.set()
    manual_clock.advance(1.0)
    assert system.downloads.wait(a, WAIT).state is SUCCEEDED
    system.settle()  # worker-1 parked
    assert "source:s.worker-2#" in runners["b"]
    assert system.downloads.status(b).state is RUNNING
    system.stop()
    assert starts == ["a", "b"]


def test_events_of_one_source_do_not_block_another(system_factory):
    gate = Gate()
    probe_names: list[str] = []

    def quick(download_id: str, target_id: str, name: str) -> str:
        probe_names.append(name)
        return f"/files/{name}"

    system = system_factory(
        download_sources=[DownloadSource("slow", gate), DownloadSource("fast", quick)]
    )
    probe = Probe(system, DownloadStateChanged)
    slow = system.downloads.submit("slow", "t", "slow")
    gate.wait_started(1)

    fast = [system.downloads.submit("fast", "t", f"f{i}") for i in range(3)]
    for download in fast:
        assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    assert system.downloads.status(slow).state is RUNNING
    gate.open()
    assert system.downloads.wait(slow, WAIT).state is SUCCEEDED
    assert probe_names == ["f0", "f1", "f2"]
    probe.close()


# -- health -------------------------------------------------------------------------------------


def _find_report(report: Any, name: str) -> Any:
    if report.name == name:
        return report
    for child in report.children:
        found = _find_report(child, name)
        if found is not None:
            return found
    return None


def test_a_worker_busy_in_a_download_is_healthy_and_names_it(system_factory):
    # Health is asked through each actor's mailbox; a worker in the middle of
    # a download used to be reported "unresponsive", making the system unhealthy.
    gate = Gate()
    system = system_factory(download_sources=[DownloadSource("s", gate)])
    download = system.downloads.submit("s", "t", "busy")
    gate.wait_started(1)

    report = system.health()
    worker = _find_report(report, "source:s.worker-1")
    assert worker is not None
    assert worker.details == {"download": download}
    assert worker.healthy and report.healthy

    gate.open()
    assert system.downloads.wait(download, WAIT).state is SUCCEEDED
    system.settle()
    idle = _find_report(system.health(), "source:s.worker-1")
    assert idle.details == {"download": None} and idle.healthy
