"""``python -m regisseur.cli``: the same as the ``regisseur`` console script."""

from __future__ import annotations

import sys

from regisseur.cli._main import console_main

if __name__ == "__main__":
    sys.exit(console_main())
