"""examples/gunicorn_app under a real gunicorn: two workers, one SQLite file.

The server runs on 127.0.0.1 in its own process group. What the workers
did is read from what they leave behind (rows in the shared database, files
and ``runs.log``), polled with a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.polling import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gunicorn_app"
JOBS = 24


def control_socket_off() -> list[str]:
    """gunicorn 25+ opens a control socket in ~/.gunicorn unless told not to."""
    import gunicorn.config

    names = {setting.name for setting in gunicorn.config.KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def request(url: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    call = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def poll(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``check`` until truthy: the workers' state is another process's."""
    return wait_until(check, timeout, what, ignoring=(OSError, sqlite3.Error))


def rows(data: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data / "app.db", timeout=5) as db:
        return list(db.execute("SELECT job, pid FROM jobs"))


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, chdir: Path = EXAMPLE) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {**os.environ, "APP_DATA": str(tmp_path), "PYTHONPATH": str(EXAMPLE)}
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--chdir", str(chdir)]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--graceful-timeout", "10"]
            + control_socket_off()
            + list(args),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "gunicorn.log").open("wb"),
            start_new_session=True,
        )
        started.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.timeout(120)
def test_two_workers_each_run_a_system_and_nothing_runs_twice(
    gunicorn: Callable[..., tuple[subprocess.Popen[bytes], str]], tmp_path: Path
) -> None:
    master, base = gunicorn("-c", str(EXAMPLE / "gunicorn.conf.py"), "app:app")

    def both_started() -> set[int] | None:
        pids = {pid for job, pid in rows(tmp_path) if job == "<started>"}
        return pids if len(pids) == 2 else None

    started: set[int] = poll("both workers' systems", both_started)
    assert master.pid not in started  # started in the workers, not the master
    assert poll("health", lambda: request(f"{base}/health")[0] == 200)

    names = [f"n{i}" for i in range(JOBS)]
    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(lambda n: request(f"{base}/jobs/{n}", "POST"), names))
        submits = list(pool.map(lambda n: request(f"{base}/downloads/{n}", "POST"), names))
    assert all(status == 200 for status, _ in jobs + submits), jobs + submits
    assert {body["pid"] for _, body in jobs} <= started

    def all_ran() -> list[str] | None:
        lines = (tmp_path / "runs.log").read_text().splitlines()
        return lines if len(lines) >= JOBS else None

    runs = poll("every download", all_ran)
    assert Counter(line.split()[0] for line in runs) == Counter(names)  # each once
    assert {int(line.split()[1]) for line in runs} <= started
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == sorted(
        f"{n}.txt" for n in names
    )
    job_rows = [job for job, _ in rows(tmp_path) if not job.startswith("<")]
    assert Counter(job_rows) == Counter(names)  # each job written once

    os.killpg(master.pid, signal.SIGTERM)  # graceful: worker_exit stops each system
    assert master.wait(60) == 0
    stopped = {pid for job, pid in rows(tmp_path) if job == "<stopped>"}
    assert stopped == started


BROKEN = textwrap.dedent(
    """
    # The mistake this guards against: the system started at import, which
    # --preload runs in the master, before gunicorn forks the workers.
    import os
    from pathlib import Path

    from app import create_app, make_system

    system = make_system(Path(os.environ["APP_DATA"]))
    system.start()
    app = create_app(system)
    """
)


@pytest.mark.timeout(120)
def test_a_system_started_before_preload_forks_fails_clearly_in_the_workers(
    gunicorn: Callable[..., tuple[subprocess.Popen[bytes], str]], tmp_path: Path
) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    master, base = gunicorn("--preload", "broken:app", chdir=tmp_path)

    status, body = poll("a worker", lambda: request(f"{base}/health"))
    assert status == 503 and body["healthy"] is False  # before: 200 "healthy"
    assert "post_fork" in body["error"]

    began = time.monotonic()
    status, body = request(f"{base}/jobs/x", "POST")
    assert status == 500
    assert "is a fork of it" in body["error"] and "post_fork" in body["error"]
    assert time.monotonic() - began < 5  # at once, not after the ask's timeout
    os.killpg(master.pid, signal.SIGTERM)
    master.wait(60)
