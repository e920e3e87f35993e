"""What a ``regisseur download`` of one file loads: only what the run uses.

Issue 15's start-up goal (one small file in at most 0.3 s, wall, of which
the interpreter and the two dependencies take most) leaves no room for
modules the run never uses: the cluster, asyncio bridging, the server and
service actors, the single-instance lease, ``regisseur status``, the demo,
the terminal bars. A behaviour test, not a timed one: it names what must
stay out of ``sys.modules`` after a real run.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fresh_python import run_python
from tests.serving import serving

pytestmark = pytest.mark.timeout(120)

#: Modules (and their submodules) a download of one file must not load.
NOT_LOADED = (
    "regisseur.actors.cluster",
    "regisseur.actors.downloads.cluster_keeper",
    "regisseur.actors.downloads.cluster_store",
    "regisseur.actors.aio",
    "regisseur.actors.lease",
    "regisseur.actors.server",
    "regisseur.actors.service",
    "regisseur.actors._planned",
    "regisseur.messages.cluster",
    "regisseur.messages.service",
    "regisseur.supervision.testing",
    "regisseur.cli.status",
    "regisseur.cli.demo",
    "regisseur.cli._download_bars",
    "rich",
    "psycopg",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.orm",
)

_RUN = """
import json, sys
from regisseur.cli import main
code = main(["download", "-q", sys.argv[1], "-o", sys.argv[2]])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def _loaded(names: list[str], prefix: str) -> list[str]:
    return [n for n in names if n == prefix or n.startswith(f"{prefix}.")]


def test_a_download_of_one_file_loads_no_module_it_does_not_use(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "file.bin").write_bytes(os.urandom(16 * 1024))
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}/file.bin"
    with serving(server):
        result = run_python(_RUN, url, str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(tmp_path / "out" / "file.bin")  # the run delivered the file
    seen = json.loads(lines[-1])
    assert seen["code"] == 0
    modules: list[str] = seen["modules"]
    # What the run does use is there (the check below sees real names).
    for used in ("regisseur.actors.system", "regisseur.actors.downloads.http", "sqlalchemy"):
        assert used in modules
    assert {prefix: _loaded(modules, prefix) for prefix in NOT_LOADED} == {
        prefix: [] for prefix in NOT_LOADED
    }
