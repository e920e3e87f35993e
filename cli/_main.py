"""The ``regisseur`` command line.

``regisseur demo`` runs a short, self-contained tour of every part;
``regisseur download`` is a resumable downloader; ``regisseur status`` shows
download records and supervision events kept in a database.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regisseur.cli._interrupts import exit_code, interrupted, terminate_as_interrupt

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["console_main", "main"]

_DEFAULT_DB = "sqlite:///regisseur.db"  # ActorSystem's default database
# A directory's records are read as a run opens them there: every file
# checked, nothing followed, nothing created (cli/_private_records.py).
_NOFOLLOW = "nofollow=1"


def _startup_over(args: argparse.Namespace) -> None:
    """Tell the console script's collector that this command's start-up is done."""
    over = getattr(args, "startup_over", None)
    if over is not None:
        over()


def _demo(args: argparse.Namespace) -> int:
    from regisseur.cli.demo import run_demo

    _startup_over(args)  # a run of seconds: its start-up is not what it is timed by
    return run_demo(plain=args.plain, json_lines=args.json, database_url=args.db)


def _download(args: argparse.Namespace) -> int:
    from regisseur.cli.download import run_download

    return run_download(args)


def _status_database(args: argparse.Namespace) -> str:
    """The database ``regisseur status`` reads.

    ``ValueError`` (bad arguments) or ``StatusError`` (nothing to read
    without arguments) saying why not.
    """
    from regisseur.cli._records_db import DB_NAME, database_url, directory_database

    given = [v for v in (args.directory, args.output) if v is not None]
    if len(given) + (args.db is not None) > 1:
        msg = "give the records to read once: DIR, -o DIR or --db"
        raise ValueError(msg)
    if args.db is not None:
        return database_url(args.db)
    if given:
        directory = Path(given[0]).expanduser()
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            msg = f"{directory} {what} (DIR is the directory given to `regisseur download -o`)"
            raise ValueError(msg)
        _refuse_link(directory / DB_NAME)
        if not (directory / DB_NAME).is_file():
            msg = f"no download records in {directory} (no {DB_NAME}: nothing was downloaded there)"
            raise ValueError(msg)
        return f"{directory_database(directory)}?{_NOFOLLOW}"
    _refuse_link(Path(DB_NAME))
    if Path(DB_NAME).is_file():  # `regisseur download` ran here with the default -o
        return f"{directory_database('.')}?{_NOFOLLOW}"
    if not Path(_DEFAULT_DB.removeprefix("sqlite:///")).is_file():
        from regisseur.cli.status import StatusError

        msg = (
            f"no records here: no {DB_NAME} (nothing was downloaded here) and no "
            f"{_DEFAULT_DB.removeprefix('sqlite:///')}; give the download directory "
            "(regisseur status DIR) or --db"
        )
        raise StatusError(msg)
    return _DEFAULT_DB


def _refuse_link(records: Path) -> None:
    """``ValueError`` if the records file in a download directory is a symbolic link.

    ``regisseur download`` never opens one (whoever can write to the
    directory could point it at another application's database); neither
    does ``status``.
    """
    if records.is_symlink():
        msg = f"{records} is a symbolic link, not download records: not read (remove the link)"
        raise ValueError(msg)


_EVENTS = 20  # the events status reads by default


def _status(args: argparse.Namespace) -> int:
    from regisseur.cli.status import StatusError, collect, render_json, render_table

    try:
        # By default the table lists the last events that are not an actor's
        # plain start or stop; --events N (and --json) the last N of all.
        routine = args.json or args.events is not None
        events = _EVENTS if args.events is None else args.events
        data = collect(_status_database(args), events=events, routine=routine)
        _startup_over(args)
    except ValueError as exc:
        print(f"regisseur status: {exc}", file=sys.stderr)
        return 2
    except StatusError as exc:
        print(f"regisseur status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        render_json(data, sys.stdout)
    else:
        render_table(data, sys.stdout)
    return 0


def _count(text: str) -> int:
    """A whole number >= 0 for an option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


class _Version(argparse.Action):
    """``--version``: the version is read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from regisseur.actors import __version__

        print(f"regisseur {__version__}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``regisseur`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code; safe to call inside another program (it changes
    no process-wide setting). The console script is :func:`console_main`.
    """
    return _guarded(argv, None)


def console_main() -> int:
    """Entry point of the ``regisseur`` console script and ``python -m regisseur.cli``.

    :func:`main` in a process that exits right after it: the garbage
    collector is paused during the command's start-up and skips the
    start-up's objects from then on (see :mod:`regisseur.cli._collector`).
    """
    from regisseur.cli._collector import StartupCollector

    collector = StartupCollector()
    try:
        with terminate_as_interrupt():  # SIGTERM stops a command as Ctrl-C does
            return _guarded(None, collector.over)
    finally:
        collector.at_exit()


def _guarded(argv: Sequence[str] | None, startup_over: Callable[[], None] | None) -> int:
    try:
        return _main(argv, startup_over)
    except KeyboardInterrupt as interrupt:  # before a command could handle it (importing, say)
        return exit_code(interrupt)
    except BrokenPipeError:  # the reader went away (`regisseur demo --json | head`)
        # The command has stopped its system already; silence the final flush.
        # (Before the clause for any Exception: a raise there skips this one.)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        ended = interrupted(exc)  # a lock's error raised as the interrupt unwound?
        if ended is None:
            raise
        return ended[0]


def _main(argv: Sequence[str] | None, startup_over: Callable[[], None] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="regisseur",
        description="Run an application's background work as supervised Pykka actors.",
    )
    parser.add_argument("--version", action=_Version)
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
    from regisseur.cli._download_args import add_arguments

    add_arguments(download)
    download.add_argument("--version", action=_Version)
    download.set_defaults(func=_download)
    status = commands.add_parser(
        "status", help="download records and recent supervision events in a database"
    )
    status.add_argument(
        "directory",
        nargs="?",
        metavar="DIR",
        help="a download directory: reads its records (DIR/.regisseur-downloads.db)",
    )
    status.add_argument("-o", "--output", metavar="DIR", help="the same as DIR")
    status.add_argument(
        "--db",
        default=None,
        metavar="URL|FILE",
        help=(
            "a database URL or SQLite file (default: ./.regisseur-downloads.db "
            f"if there is one, else {_DEFAULT_DB})"
        ),
    )
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.add_argument(
        "--events",
        type=_count,
        default=None,
        metavar="N",
        help=(
            f"list the last N events, starts and stops included (default: the last {_EVENTS} "
            "that are not an actor's plain start or stop; with --json, the last "
            f"{_EVENTS})"
        ),
    )
    status.add_argument("--version", action=_Version)
    status.set_defaults(func=_status)
    args = parser.parse_args(argv)
    args.startup_over = startup_over  # each command calls it once its start-up is done
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result
