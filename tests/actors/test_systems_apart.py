"""Two systems in one process, served by two event loops, stay apart.

What the asyncio bridge and the records' store keep between calls belongs
to an object with a lifetime (the event loop, the database connection),
never to a module: each loop's asks are answered by its own system only,
and a loop or an engine that is gone leaves nothing behind.
(``tests/packaging/test_no_global_state.py`` checks the source for
module-level state in general.)
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import TYPE_CHECKING, Any

import pytest

from regisseur.actors import Actor, ActorSystem
from regisseur.actors.database import Database
from regisseur.actors.downloads import store
from regisseur.messages import DownloadRecord
from regisseur.supervision import ChildSpec

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

ASKS = 200
WAIT = 20.0


class Counter(Actor):
    """Counts the asks it got; answers with its system's name and the count."""

    def on_start(self) -> None:
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return (self.system.name, self.count)


@pytest.mark.timeout(60)
def test_two_loops_asking_two_systems_get_only_their_own_replies_and_leave_nothing(
    system_factory: Callable[..., ActorSystem],
) -> None:
    systems = [
        system_factory([ChildSpec("counter", Counter)], database_url=None, name=name)
        for name in ("left", "right")
    ]
    both_waiting = threading.Barrier(2, timeout=WAIT)
    loops: dict[str, weakref.ReferenceType[asyncio.AbstractEventLoop]] = {}
    records: dict[str, int] = {}
    replies: dict[str, list[Any]] = {}
    errors: list[BaseException] = []

    async def asking(system: ActorSystem) -> None:
        loop = asyncio.get_running_loop()
        loops[system.name] = weakref.ref(loop)
        pending = [asyncio.ensure_future(system.ask_async("counter", i)) for i in range(ASKS)]
        await asyncio.sleep(0)  # a turn of the loop: every ask is sent
        await asyncio.to_thread(both_waiting.wait)  # both loops have asks in flight
        replies[system.name] = await asyncio.gather(*pending)
        records[system.name] = id(loop.__dict__.get("_regisseur_wakeups"))

    def thread_main(system: ActorSystem) -> None:
        try:
            asyncio.run(asking(system))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [
        threading.Thread(target=thread_main, args=(s,), name=f"test-loop-{s.name}") for s in systems
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not errors, errors
    for system in systems:
        got = replies[system.name]
        assert sorted(got) == [(system.name, n) for n in range(1, ASKS + 1)]
    assert records["left"] != records["right"]  # one wake-up record per loop
    gc.collect()
    assert all(ref() is None for ref in loops.values()), "something kept a closed loop"


@pytest.mark.timeout(30)
def test_two_stores_compile_their_statements_for_their_own_connection(tmp_path: Path) -> None:
    databases = [Database(f"sqlite:///{tmp_path / name}.db") for name in ("left", "right")]
    for database in databases:
        database.open()
    try:
        left, right = (db.engine.connect() for db in databases)
        for connection in (left, right):
            store.ensure_table(connection)
            connection.commit()
        store.warm_statements(left)
        assert store._compiled(left)  # the insert and the update, for this connection
        assert store._compiled(right) == {}  # nothing learned from the other system
        record = DownloadRecord(id="r1", source="s", target_id="t", filename="f")
        store.insert_many(right, [(record, 1)])
        right.commit()
        left.close()
        databases[0].close()  # the left system is gone; the right one carries on
        store.update_many(right, [record.evolve(filename="g")])
        right.commit()
        assert store.read_record(right, "r1") == record.evolve(filename="g")
        right.close()
        databases[0].open()
        with databases[0].engine.connect() as again:
            assert store.read_record(again, "r1") is None  # each system's records are its own
    finally:
        for database in databases:
            database.close()
