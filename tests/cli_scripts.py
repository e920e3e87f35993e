"""``python -c`` scripts that run the console script with a patch applied first.

A test holds a race window of ``regisseur`` open (a signal between two
bytecodes, a file swapped between a check and an open) by patching the
library in a real process, then running ``python -m regisseur.cli`` with
the script's own arguments.
"""

from __future__ import annotations

import textwrap

__all__ = ["patched_cli"]

_RUN = (
    "import runpy, sys\n"
    'sys.argv[0] = "regisseur"\n'
    'runpy.run_module("regisseur.cli", run_name="__main__")\n'
)


def patched_cli(patch: str) -> str:
    """``patch`` (lines of Python, at any common indentation), then the
    console script, which takes the script's arguments as its own."""
    return textwrap.dedent(patch).strip("\n") + "\n" + _RUN
