"""``list()`` and ``status()`` while many downloads are queued.

Run: ``python bench/bench_list.py [--queued N] [--rounds R] [--memory]``

A source ``busy`` with one worker held busy (its impl waits for the end of
the run) gets N queued downloads; a source ``fast`` has run 2 to the end.
Then, round after round, interleaved:

* ``list(states=[Succeeded])`` and ``list("fast")``: 2 records out of N+2;
* ``status(id)`` of a queued download (in the keeper's memory) and of a
  finished one;
* the floor: the same query (``store.read_records``) on a plain connection
  to the same SQLite file, without the actor system.

Reported: the median milliseconds of each, with the spread (min-max) over
the rounds. With ``--memory`` the system has no database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import DownloadSource, store
from regisseur.messages.downloads import DownloadState

if TYPE_CHECKING:
    from collections.abc import Callable

SUCCEEDED = DownloadState.SUCCEEDED


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--memory", action="store_true", help="no database")
    args = parser.parse_args()
    release = threading.Event()

    def held(download_id: str, target_id: str, name: str) -> str:
        release.wait(600)
        return f"/files/{name}"

    def quick(download_id: str, target_id: str, name: str) -> str:
        return f"/files/{name}"

    with tempfile.TemporaryDirectory() as tmp:
        url = None if args.memory else f"sqlite:///{Path(tmp) / 'list.db'}"
        sources = [DownloadSource("busy", held), DownloadSource("fast", quick, concurrency=2)]
        system = ActorSystem(database_url=url, download_sources=sources).start()
        try:
            downloads = system.downloads
            done = [downloads.submit("fast", "t", f"done{i}") for i in range(2)]
            for download in done:
                downloads.wait(download, 60)
            start = time.perf_counter()
            queued = [downloads.submit("busy", "t", f"q{i}") for i in range(args.queued)]
            while True:  # answered once every submit before it is stored
                try:
                    record = downloads.status(queued[-1])
                    break
                except TimeoutError:
                    continue
            assert record is not None
            submit_s = time.perf_counter() - start
            print(
                f"{args.queued:,} queued ({'memory' if url is None else 'sqlite'}) "
                f"in {submit_s:.1f}s; {args.rounds} rounds"
            )
            probes: dict[str, Callable[[], object]] = {
                "list(states=[Succeeded])": lambda: downloads.list(states=[SUCCEEDED]),
                "list('fast')": lambda: downloads.list("fast"),
                "list('busy', states=[Succeeded])": lambda: downloads.list("busy", [SUCCEEDED]),
                "status(queued id)": lambda: downloads.status(queued[len(queued) // 2]),
                "status(finished id)": lambda: downloads.status(done[0]),
            }
            assert len(downloads.list(states=[SUCCEEDED])) == 2
            if url is not None:
                engine = create_engine(url)
                connection = engine.connect()

                def floor() -> object:
                    rows = store.read_records(connection, states=[SUCCEEDED])
                    connection.rollback()
                    return rows

                probes["floor: read_records, no system"] = floor
            times: dict[str, list[float]] = {name: [] for name in probes}
            for _ in range(args.rounds):
                for name, probe in probes.items():
                    times[name].append(timed(probe))
            if url is not None:
                connection.close()
                engine.dispose()
        finally:
            release.set()
            system.stop()
    print(f"{'call':<36}{'median ms':>10}{'min':>9}{'max':>9}")
    for name, values in times.items():
        print(f"{name:<36}{statistics.median(values):>10.2f}{min(values):>9.2f}{max(values):>9.2f}")


if __name__ == "__main__":
    main()
