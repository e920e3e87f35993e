"""A download source of your own: progress, cancel, a delay between starts.

The impl takes the context (a fourth argument): it reports progress,
checks ``cancelled`` between chunks and writes into ``destination``.
Two at a time, at least 0.2 s between two starts. One download is
cancelled while it runs; a subscriber prints every state change.

Run: ``.venv/bin/python examples/custom_download_source.py``
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from actors import ActorSystem
from actors.downloads import DownloadContext, DownloadFailure, DownloadSource
from messages import DownloadState, DownloadStateChanged

IN_PROGRESS = DownloadState.IN_PROGRESS

release_big = threading.Event()


def fetch_book(download_id: str, isbn: str, title: str, ctx: DownloadContext) -> str | None:
    """'Downloads' a book in 10 chunks; the one called 'big' waits to be cancelled."""
    if not isbn.startswith("978"):
        raise DownloadFailure(f"not an ISBN-13: {isbn}")
    assert ctx.destination is not None
    chunks = []
    for n in range(10):
        if title == "big" and n == 5:
            release_big.wait(5)  # stands in for a slow network
        if ctx.cancelled:
            return None  # the keeper has recorded Cancelled already
        chunks.append(f"{title} part {n}\n")
        ctx.report(n + 1, 10)
    path = Path(ctx.destination) / f"{title}.txt"
    path.write_text("".join(chunks))
    return str(path)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="books-"))
    source = DownloadSource("books", fetch_book, concurrency=2, delay=0.2, directory=folder)
    with ActorSystem(
        database_url=f"sqlite:///{folder / 'books.db'}", download_sources=[source]
    ) as system:
        running = threading.Event()

        def on_change(event: object) -> None:
            if isinstance(event, DownloadStateChanged):
                print(f"  {event.record.filename:<8} {event.record.state.value}")
                if event.record.filename == "big" and event.record.state is IN_PROGRESS:
                    running.set()

        system.downloads.subscribe(on_change, progress=False)
        downloads = system.downloads
        ids = [downloads.submit("books", "9780441013593", title) for title in ("dune", "big")]
        ids.append(downloads.submit("books", "12345", "bad-isbn"))
        ids += [downloads.submit("books", "9780553293357", t) for t in ("foundation", "empire")]
        assert running.wait(5)
        downloads.cancel(ids[1])  # "big" is running: Cancelled at once
        release_big.set()
        for download_id in ids:
            downloads.wait(download_id, timeout=10)
        print()
        print(f"{'name':<11} {'state':<22} {'progress':>8}  file / error")
        for record in downloads.list(source="books"):
            row = record.as_dict()  # the legacy flat dict
            detail = row["error"] or row["file_path"] or ""
            print(f"{row['filename']:<11} {row['state']:<22} {row['progress']:>7.0f}%  {detail}")


if __name__ == "__main__":
    main()
