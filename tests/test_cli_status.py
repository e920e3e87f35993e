"""``regisseur status``: reads the database a ``regisseur download`` run left behind."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
BODY = b"regisseur " * 10_000


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regisseur.actors.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The output directory of one download run: one file fetched, one 404."""
    served = tmp_path_factory.mktemp("served")
    (served / "report.txt").write_bytes(BODY)
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http"
    )
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    out = tmp_path_factory.mktemp("out")
    try:
        result = run("download", f"{base}/report.txt", f"{base}/gone.txt", "-o", str(out))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert result.returncode == 1, result.stdout + result.stderr
    return out


def test_status_json_after_a_download_run(downloaded: Path) -> None:
    result = run("status", "--db", f"sqlite:///{downloaded / '.regisseur-downloads.db'}", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    records = {Path(d["filename"]).name: d for d in data["downloads"]}
    assert set(records) == {"report.txt", "gone.txt"}
    done = records["report.txt"]
    assert done["state"] == "Completed, Succeeded"
    assert done["source"] == "http"
    assert done["size"] == len(BODY)
    assert Path(done["file_path"]).read_bytes() == BODY
    gone = records["gone.txt"]
    assert gone["state"] == "Errored"
    assert gone["error"].startswith("HTTP 404")
    names = {(e["event"], e["name"]) for e in data["events"]}
    assert ("ChildStopped", "downloads") in names


def test_status_table_after_a_download_run(downloaded: Path) -> None:
    result = run("status", "--db", f"sqlite:///{downloaded / '.regisseur-downloads.db'}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("downloads: 2\n")
    assert "report.txt" in result.stdout and "Completed, Succeeded" in result.stdout
    assert "gone.txt" in result.stdout and "HTTP 404" in result.stdout
    assert "last supervision events:" in result.stdout


def test_status_of_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run("status", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.returncode == 1
    assert "no database file" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_status_of_a_bad_url_is_a_clear_error() -> None:
    result = run("status", "--db", "not a url", "--json")
    assert result.returncode == 1
    assert "not a database URL" in result.stderr
    assert "Traceback" not in result.stderr
