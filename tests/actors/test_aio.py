"""asyncio: ask_async, awaiting the library's futures, event streams, async start/stop.

Each test drives its own event loop with ``asyncio.run``. Where a test must
show that the loop is not blocked, the actor waits for a gate that only the
loop can open: a blocked loop would leave the gate shut until the actor's
bounded wait gives up, and the test sees ``"timed out"`` instead of the reply.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from regisseur.actors import Actor, ActorSystem, UnknownActorError
from regisseur.actors._future import LoopFuture
from regisseur.actors.downloads import DownloadSource
from regisseur.actors.downloads.errors import UnknownDownloadError
from regisseur.messages import (
    ChildFailed,
    ChildRestarted,
    ChildStarted,
    DownloadState,
    DownloadStateChanged,
)
from regisseur.supervision import ChildSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

GATE_WAIT = 5.0  # how long an actor waits for a gate before giving up


class Gated(Actor):
    """Answers ``"wait"`` once its gate opens; anything else at once."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "wait":
            return self.wait_gate()
        if message == "boom":
            raise KeyError("x")
        return message

    def wait_gate(self) -> str:
        return "released" if self.gate.wait(GATE_WAIT) else "timed out"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def system(
    system_factory: Callable[..., ActorSystem], gate: threading.Event
) -> Iterator[ActorSystem]:
    yield system_factory(
        [ChildSpec("busy", Gated, args=(gate,)), ChildSpec("idle", Gated, args=(gate,))],
        database_url=None,
    )
    gate.set()  # let a waiting handler end before the system stops


async def yield_to_loop(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)  # a turn of the loop, not a timed wait


# -- ask_async ------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_ask_async_returns_the_reply_and_raises_the_handlers_error(system: ActorSystem) -> None:
    async def main() -> None:
        assert await system.ask_async("idle", 42) == 42
        with pytest.raises(KeyError, match="x"):
            await system.ask_async("idle", "boom")
        with pytest.raises(UnknownActorError, match="'nope'"):
            await system.ask_async("nope", 1)
        with pytest.raises(ValueError, match=r"ask_async\(timeout\)"):
            await system.ask_async("idle", 1, timeout=-1)

    run(main())


@pytest.mark.timeout(20)
def test_an_idle_actor_answers_while_asks_wait_on_a_busy_one_with_no_thread_per_ask(
    system: ActorSystem, gate: threading.Event
) -> None:
    # With asyncio.to_thread, 16 asks waiting on "busy" fill the default
    # pool and the ask to "idle" waits behind them.
    async def main() -> None:
        threads_before = threading.active_count()
        pending = [asyncio.ensure_future(system.ask_async("busy", "wait")) for _ in range(16)]
        await yield_to_loop()
        assert threading.active_count() == threads_before
        assert await system.ask_async("idle", "ping", timeout=GATE_WAIT / 2) == "ping"
        assert not any(task.done() for task in pending)
        gate.set()
        assert await asyncio.gather(*pending) == ["released"] * 16

    run(main())


@pytest.mark.timeout(20)
def test_pending_asks_share_the_loops_timers_and_wake_ups(
    system: ActorSystem, gate: threading.Event
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
        pending = [asyncio.ensure_future(system.ask_async("busy", "wait")) for _ in range(200)]
        await yield_to_loop()
        assert len(loop._scheduled) - timers_before <= 2  # type: ignore[attr-defined]
        woken = []
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            woken.append(args[0])
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        gate.set()
        assert await asyncio.gather(*pending) == ["released"] * 200
        assert 1 <= len(woken) < 50  # one wake-up per burst of replies, not one per reply

    run(main())


@pytest.mark.timeout(20)
def test_ask_async_times_out_with_the_same_error_as_ask(system: ActorSystem) -> None:
    with pytest.raises(TimeoutError) as blocking:
        system.ask("busy", "wait", timeout=0.05)

    async def main() -> None:
        with pytest.raises(TimeoutError) as awaited:
            await system.ask_async("busy", "wait", timeout=0.05)
        assert str(awaited.value) == str(blocking.value) == "no reply from 'busy' within 0.05s"

    run(main())


@pytest.mark.timeout(20)
def test_cancelling_an_ask_async_leaves_the_actor_running_and_nothing_behind(
    system: ActorSystem, gate: threading.Event
) -> None:
    async def main() -> None:
        future = system.ref("busy").ask("wait", block=False)
        assert isinstance(future, LoopFuture)
        task = asyncio.ensure_future(_await(future))
        asked = asyncio.ensure_future(system.ask_async("busy", "wait"))
        await yield_to_loop()
        assert future._box is not None and len(future._box.pending or ()) == 1  # one wake-up
        task.cancel()
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(asyncio.CancelledError):
            await asked
        assert future._box.pending == []  # withdrawn: the future keeps no loop alive
        gate.set()
        assert future.get(timeout=GATE_WAIT) == "released"  # the actor carried on
        assert await system.ask_async("busy", "ping") == "ping"

    run(main())
    assert system.health().healthy


async def _await(awaitable: Any) -> Any:
    return await awaitable


# -- futures handed out by the library ------------------------------------------------
@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["ask", "proxy", "map", "join"])
def test_awaiting_a_library_future_does_not_block_the_loop(
    system: ActorSystem, gate: threading.Event, how: str
) -> None:
    # Pykka's own __await__ calls get(): the loop would stall until the
    # actor gave up waiting for the gate only the loop can open.
    ref = system.ref("busy")

    def make() -> pykka.Future[Any]:
        if how == "proxy":
            return ref.proxy().wait_gate()  # type: ignore[no-any-return]
        future = ref.ask("wait", block=False)
        if how == "map":
            return future.map(str.upper)
        if how == "join":
            return future.join(system.ref("idle").ask("other", block=False))
        return future

    async def main() -> Any:
        task = asyncio.ensure_future(_await(make()))
        await yield_to_loop()
        gate.set()  # only reached if the loop was free
        return await task

    expected = {"ask": "released", "proxy": "released", "map": "RELEASED"}
    assert run(main()) == expected.get(how, ["released", "other"])


@pytest.mark.timeout(20)
def test_awaiting_a_failed_future_raises_the_handlers_error(system: ActorSystem) -> None:
    async def main() -> None:
        with pytest.raises(KeyError):
            await system.ref("idle").ask("boom", block=False)

    run(main())


@pytest.mark.timeout(20)
def test_a_callback_registered_while_the_value_is_set_runs_exactly_once() -> None:
    futures: list[LoopFuture[int]] = [LoopFuture() for _ in range(3000)]
    runs = [0] * len(futures)
    started = threading.Event()

    def setter() -> None:
        started.set()
        for i, future in enumerate(futures):
            future.set(i)

    thread = threading.Thread(target=setter, name="regisseur:test-setter")
    thread.start()
    started.wait()
    for i, future in enumerate(futures):  # races with the setter on purpose

        def count(i: int = i) -> None:
            runs[i] += 1

        assert future.when_done(count) is not None
    thread.join()
    assert runs == [1] * len(futures)


# -- event streams -------------------------------------------------------------------------
def _subscribers(system: ActorSystem) -> int:
    system.settle()
    return system.events.subscriber_count()


@pytest.mark.timeout(20)
def test_a_stream_yields_the_requested_events_in_order_and_unsubscribes_on_exit(
    system: ActorSystem,
) -> None:
    before = _subscribers(system)

    async def main() -> list[Any]:
        got = []
        async with system.events.stream(ChildFailed, ChildRestarted) as events:
            system.events.publish(ChildFailed("a", "boom"))
            system.events.publish(ChildStarted("a"))  # not asked for
            system.events.publish(ChildRestarted("a"))
            async for event in events:
                got.append(event)
                if len(got) == 2:
                    break
            assert _subscribers(system) == before + 1
        assert events.closed
        return got

    assert run(main()) == [ChildFailed("a", "boom"), ChildRestarted("a")]
    assert _subscribers(system) == before


@pytest.mark.timeout(20)
def test_leaving_a_plain_async_for_unsubscribes(system: ActorSystem) -> None:
    before = _subscribers(system)

    async def main() -> None:
        system.events.publish(ChildStarted("x"))  # before the stream: not seen
        async for event in system.events.stream(ChildStarted):
            assert event == ChildStarted("y")
            break

    async def publisher() -> None:
        await yield_to_loop()
        system.events.publish(ChildStarted("y"))

    async def both() -> None:
        await asyncio.gather(main(), publisher())

    run(both())
    assert _subscribers(system) == before


@pytest.mark.timeout(20)
def test_a_full_stream_drops_the_oldest_events_and_counts_them(system: ActorSystem) -> None:
    async def main() -> None:
        async with system.events.stream(ChildStarted, maxsize=3) as events:
            system.events.publish_many(ChildStarted(f"c{i}") for i in range(10))
            system.settle()  # the bus has delivered all ten
            got = [await events.__anext__() for _ in range(3)]
            assert [e.name for e in got] == ["c7", "c8", "c9"]
            assert events.dropped == 7

    run(main())


def test_a_stream_refuses_what_the_bus_never_publishes(system: ActorSystem) -> None:
    with pytest.raises(TypeError, match=r"stream\(\): str is never published"):
        system.events.stream(str)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="at least one event type"):
        system.events.stream()
    with pytest.raises(ValueError, match=r"maxsize\) must be an int >= 1, got 0"):
        system.events.stream(ChildStarted, maxsize=0)


# -- downloads ------------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_wait_async_returns_the_final_record_without_blocking_the_loop(
    system_factory: Callable[..., ActorSystem], gate: threading.Event
) -> None:
    def fetch(download_id: str, target_id: str, name: str) -> str:
        return f"/tmp/{name}" if gate.wait(GATE_WAIT) else ""

    system = system_factory(download_sources=[DownloadSource("files", fetch)])

    async def main() -> None:
        download_id = system.downloads.submit("files", "t1", "a.txt")
        task = asyncio.ensure_future(system.downloads.wait_async(download_id, timeout=GATE_WAIT))
        await yield_to_loop()
        gate.set()
        record = await task
        assert record.state is DownloadState.SUCCEEDED
        assert record.file_path == "/tmp/a.txt"
        again = await system.downloads.wait_async(download_id)  # already ended
        assert again.state is DownloadState.SUCCEEDED
        with pytest.raises(UnknownDownloadError):
            await system.downloads.wait_async("nope")

    run(main())


@pytest.mark.timeout(20)
def test_wait_async_times_out_naming_the_download(
    system_factory: Callable[..., ActorSystem], gate: threading.Event
) -> None:
    system = system_factory(
        download_sources=[DownloadSource("files", lambda *a: "/x" if gate.wait(GATE_WAIT) else "")]
    )

    async def main() -> None:
        download_id = system.downloads.submit("files", "t1", "a.txt")
        with pytest.raises(TimeoutError, match=f"download '{download_id}' did not end within"):
            await system.downloads.wait_async(download_id, timeout=0.05)
        gate.set()
        async with system.events.stream(DownloadStateChanged) as events:
            assert (await system.downloads.wait_async(download_id)).terminal
            assert events.dropped == 0

    run(main())


# -- async with ActorSystem ------------------------------------------------------------------
class LoopGated(Actor):
    """Waits in on_start and on_stop for gates that the event loop opens."""

    def __init__(self, gates: dict[str, Any], seen: list[str]) -> None:
        super().__init__()
        self.gates = gates
        self.seen = seen

    def on_start(self) -> None:
        self.gates["entered"].set()
        self.seen.append("start " + ("released" if self.gates["start"].wait(5) else "timed out"))

    def on_stop(self) -> None:
        self.seen.append("stop " + ("released" if self.gates["stop"].wait(5) else "timed out"))


@pytest.mark.timeout(30)
def test_async_with_starts_and_stops_without_blocking_the_loop() -> None:
    gates = {k: threading.Event() for k in ("entered", "start", "stop")}
    seen: list[str] = []
    system = ActorSystem([ChildSpec("g", LoopGated, args=(gates, seen))], database_url=None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(gates["start"].set)  # runs only if the loop is free during start
        async with system as running:
            assert running is system and system.running
            assert await system.ask_async("g", "hi") is None
            loop.call_soon(gates["stop"].set)
        assert not system.running

    run(main())
    assert seen == ["start released", "stop released"]
    assert system.threads() == []


class LoopSignal:
    """Sets an ``asyncio.Event`` from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self.loop = loop
        self.event = event

    def set(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


@pytest.mark.timeout(30)
def test_cancelling_an_async_start_stops_what_it_started() -> None:
    gates: dict[str, Any] = {k: threading.Event() for k in ("start", "stop")}
    gates["stop"].set()
    system = ActorSystem([ChildSpec("g", LoopGated, args=(gates, []))], database_url=None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        entered = asyncio.Event()
        gates["entered"] = LoopSignal(loop, entered)
        task = asyncio.ensure_future(system.__aenter__())
        await entered.wait()  # on_start runs: the start is under way
        task.cancel()
        gates["start"].set()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert not system.running
    assert system.threads() == []
