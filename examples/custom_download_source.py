"""A download source of your own: progress, cancel, a delay between starts.

The impl takes the context (a fourth argument): it waits for each chunk
with ``ctx.sleep`` (which ends at once on a cancel), reports progress and
writes into ``ctx.destination``. Two run at a time, at least 0.2 s between
two starts. A subscriber prints every state change as "id state"; "big" is
cancelled midway; the script waits for all and prints the flat dicts.

Run: ``.venv/bin/python examples/custom_download_source.py``
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import DownloadContext, DownloadFailure, DownloadSource
from regisseur.messages import DownloadRecord, DownloadStateChanged

CHUNK, CHUNKS = 1000, 5
halfway = threading.Event()


def fetch_book(download_id: str, isbn: str, title: str, ctx: DownloadContext) -> str | None:
    """Runs on a worker thread: 'downloads' a book in five chunks."""
    if not isbn.startswith("978"):
        raise DownloadFailure(f"not an ISBN-13: {isbn}")  # Errored, with this text
    assert ctx.destination is not None  # the source's directory
    data = bytearray()
    for n in range(CHUNKS):
        if title == "big" and n == 2:
            halfway.set()  # main() cancels it now: the long wait below ends at once
        if not ctx.sleep(30 if title == "big" and n == 2 else 0.12):  # a slow network
            return None  # cancelled: the record is Cancelled already
        data += bytes(CHUNK)
        ctx.report(len(data), CHUNK * CHUNKS)  # progress, speed, time remaining
    path = ctx.destination / f"{title}.bin"
    path.write_bytes(data)
    return str(path)


def on_change(event: DownloadStateChanged) -> None:  # runs on the event bus thread
    print(f"{event.record.id} {event.record.state.value}  ({event.record.filename})")


def print_table(records: list[DownloadRecord]) -> None:
    print(f"\n{'name':<11} {'state':<22} {'progress':>8}  file / error")
    for record in records:
        row = record.as_dict()  # the legacy flat dict (extras merged in)
        detail = row["error"] or Path(row["file_path"] or "").name
        print(f"{row['filename']:<11} {row['state']:<22} {row['progress']:>7.0f}%  {detail}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="books-") as tmp:
        folder = Path(tmp)
        source = DownloadSource("books", fetch_book, concurrency=2, delay=0.2, directory=folder)
        with ActorSystem(
            database_url=f"sqlite:///{folder / 'books.db'}", download_sources=[source]
        ) as system:
            downloads = system.downloads
            downloads.subscribe(on_change, progress=False)
            ids = [downloads.submit("books", "9780441013593", t) for t in ("dune", "big")]
            ids.append(downloads.submit("books", "12345", "bad-isbn"))
            ids += [downloads.submit("books", "9780553293357", t) for t in ("foundation", "empire")]
            assert halfway.wait(10)
            assert downloads.cancel(ids[1])  # "big" is running: Cancelled at once
            for download_id in ids:
                downloads.wait(download_id, timeout=10)
            system.settle()  # the subscriber has printed every change
            print_table(downloads.list(source="books"))


if __name__ == "__main__":
    main()
