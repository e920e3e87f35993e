"""An app process with downloads on a shared SQLite database (``single_instance=False``).

Usage: ``python app_child.py DB DIR [--submit URL]... [--wait-url URL]...
[--wait-for URL]... [--ready FILE] [--async]``

Submits each ``--submit`` URL to an ``HttpSource`` writing to ``DIR``, and
waits for those downloads, for the (unfinished) downloads of each
``--wait-url`` that this process took over at its start (the records whose
``owner`` names this process), and for the download of each ``--wait-for``
URL whoever holds it (``system.downloads.wait``, or ``wait_async`` with
``--async``). Creates ``--ready FILE``
once it has started and found what it waits for. Prints one JSON
line per download that ended (``id``, ``url``, ``state``, ``file_path``,
``owner_pid``: the pid in its record's ``owner`` then), then stops (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import sys
from pathlib import Path

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import HttpSource

WAIT = 60.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("directory")
    parser.add_argument("--submit", action="append", default=[])
    parser.add_argument("--wait-url", action="append", default=[])
    parser.add_argument("--wait-for", action="append", default=[])
    parser.add_argument("--ready")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args()
    source = HttpSource("http", directory=Path(args.directory), concurrency=2, retries=3)
    system = ActorSystem(
        name="app",
        database_url=f"sqlite:///{args.db}",
        download_sources=[source],
        single_instance=False,
    )
    system.start()
    try:
        ids = {
            system.downloads.submit("http", url, url.rsplit("/", 1)[-1]): url for url in args.submit
        }
        with sqlite3.connect(args.db) as db:
            owners = dict(db.execute("SELECT id, owner FROM regisseur_downloads").fetchall())
        me = f"{socket.gethostname()}:{os.getpid()}:"
        for record in system.downloads.list(source="http"):
            taken = str(owners.get(record.id)).startswith(me)
            if record.target_id in args.wait_url and not record.terminal and taken:
                ids[record.id] = record.target_id
            elif record.target_id in args.wait_for:
                ids[record.id] = record.target_id
        if args.ready:
            Path(args.ready).touch()
        for download_id, url in ids.items():
            if args.use_async:
                final = asyncio.run(system.downloads.wait_async(download_id, WAIT))
            else:
                final = system.downloads.wait(download_id, WAIT)
            with sqlite3.connect(args.db) as db:
                [(owner,)] = db.execute(
                    "SELECT owner FROM regisseur_downloads WHERE id = ?", (download_id,)
                ).fetchall()
            line = {
                "id": download_id,
                "url": url,
                "state": final.state.value,
                "file_path": final.file_path,
                "owner_pid": int(str(owner).split(":")[1]),
            }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
    finally:
        system.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
