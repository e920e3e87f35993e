"""The ``regisseur`` command line.

``regisseur demo`` runs a short, self-contained tour of every part;
``regisseur download`` is a resumable downloader; ``regisseur status`` shows
download records and supervision events kept in a database.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from regisseur.actors.demo import run_demo

    return run_demo(plain=args.plain, json_lines=args.json, database_url=args.db)


def _download(args: argparse.Namespace) -> int:
    from regisseur.actors.download_cli import run_download

    return run_download(args)


def _status(args: argparse.Namespace) -> int:
    from regisseur.actors.status import StatusError, collect, render_json, render_table

    try:
        data = collect(args.db, events=args.events)
    except StatusError as exc:
        print(f"regisseur status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        render_json(data, sys.stdout)
    else:
        render_table(data, sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regisseur`` console script."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before a command could handle it (e.g. while importing)
        return 130
    except BrokenPipeError:  # the reader went away (`regisseur demo --json | head`)
        # The command has stopped its system already; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="regisseur",
        description="Run an application's background work as supervised Pykka actors.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="every part at work, offline, in a few seconds (Ctrl-C ends it)"
    )
    demo.add_argument("--plain", action="store_true", help="plain lines, no live view")
    demo.add_argument("--json", action="store_true", help="one JSON event per line")
    demo.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    demo.set_defaults(func=_demo)
    download = commands.add_parser(
        "download", help="download URLs (resumable: run it again after Ctrl-C)"
    )
    from regisseur.actors.download_cli import add_arguments

    add_arguments(download)
    download.set_defaults(func=_download)
    status = commands.add_parser(
        "status", help="download records and recent supervision events in a database"
    )
    status.add_argument(
        "--db", default="sqlite:///regisseur.db", help="database URL (default: %(default)s)"
    )
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.add_argument(
        "--events", type=int, default=20, help="how many events to show (default: %(default)s)"
    )
    status.set_defaults(func=_status)
    args = parser.parse_args(argv)
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
