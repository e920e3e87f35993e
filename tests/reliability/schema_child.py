"""An app process that opens a records database at a moment it is told to.

Usage: ``python schema_child.py DIR ROUNDS``

For each round ``r``: waits until the gate ``DIR/r/gate`` opens (it takes a
shared ``flock`` on it; the test holds the exclusive one and lets go of it
once every process waits, so all of them start together), then starts and
stops an ``ActorSystem`` with downloads on ``DIR/r/records.db``
(``single_instance=False``: several processes share the database). Prints
``ready`` once, then one line per round: ``ok`` or ``failed <error>``.
Used by ``test_schema_race.py``.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from regisseur.actors import ActorSystem
from regisseur.actors.downloads import HttpSource
from regisseur.actors.errors import describe_error


def one_round(folder: Path) -> str:
    source = HttpSource("http", directory=folder / "files")
    system = ActorSystem(
        name="app",
        database_url=f"sqlite:///{folder / 'records.db'}",
        download_sources=[source],
        single_instance=False,
    )
    try:
        system.start()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"failed {describe_error(exc)}".replace("\n", " ")
    system.stop()
    return "ok"


def main() -> int:
    directory, rounds = Path(sys.argv[1]), int(sys.argv[2])
    gates = [os.open(directory / str(r) / "gate", os.O_RDONLY) for r in range(rounds)]
    print("ready", flush=True)
    for number, gate in enumerate(gates):
        fcntl.flock(gate, fcntl.LOCK_SH)  # blocks until the test opens this round
        print(one_round(directory / str(number)), flush=True)
        os.close(gate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
