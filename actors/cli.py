"""The ``regisseur`` command line.

``regisseur demo`` runs a short, self-contained tour: a system starts, gets
messages, one actor crashes and is restarted by its supervisor with backoff,
and the supervision events are printed as they happen.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from actors.demo import run_demo

    return run_demo(json_logs=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regisseur`` console script."""
    parser = argparse.ArgumentParser(
        prog="regisseur",
        description="Run an application's background work as supervised Pykka actors.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="a short tour: start, message, crash, restart")
    demo.add_argument("--json", action="store_true", help="print JSON log lines too")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
