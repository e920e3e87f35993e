"""A system and ``fork()``: a clear error in the child instead of silent timeouts.

Each case runs in a fresh interpreter (``fork()`` inside the test process
would copy pytest's own threads); the child reports what it saw as JSON on
stdout and exits with ``os._exit``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from regisseur.actors import Actor, ActorSystem, SystemForkedError
    from regisseur.actors.downloads import DownloadSource
    from regisseur.messages import ChildFailed
    from regisseur.supervision import ChildSpec

    class Echo(Actor):
        def on_receive(self, message):
            return message

    def make():
        return ActorSystem(
            [ChildSpec("echo", Echo)],
            database_url=f"sqlite:///{sys.argv[2]}",
            download_sources=[DownloadSource("files", lambda *a: "/x")],
        )

    def attempt(call):
        try:
            return ["ok", repr(call())]
        except Exception as exc:
            return [type(exc).__name__, str(exc)]

    def child_report(system):
        import asyncio
        report = {
            "ask": attempt(lambda: system.ask("echo", 1, timeout=2)),
            "tell": attempt(lambda: system.tell("echo", 1)),
            "ref": attempt(lambda: system.ref("echo")),
            "ask_async": attempt(lambda: asyncio.run(system.ask_async("echo", 1, timeout=2))),
            "spawn": attempt(lambda: system.spawn(ChildSpec("other", Echo))),
            "submit": attempt(lambda: system.downloads.submit("files", "t", "a.txt")),
            "subscribe": attempt(lambda: system.events.subscribe(print, ChildFailed)),
            "start": attempt(system.start),
            "healthy": system.healthy,
            "running": system.running,
            "last_error": system.health().last_error,
        }
        report["stop"] = attempt(system.stop)
        return report

    mode = sys.argv[1]
    system = make()
    if mode == "started-before":
        system.start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        if mode == "started-before":
            report = child_report(system)
        else:  # the post_fork pattern: made before, started in the child
            system.start()
            report = {"ask": attempt(lambda: system.ask("echo", 7, timeout=5)),
                      "healthy": system.healthy}
            system.stop()
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    parent = None
    if mode == "started-before":
        parent = {"ask": system.ask("echo", 2), "healthy": system.healthy}
        system.stop()
    print(json.dumps({"child": child, "parent": parent, "parent_pid": os.getpid()}))
    """
)


def run_case(mode: str, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(tmp_path / "app.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(90)
def test_a_system_started_before_a_fork_fails_clearly_in_the_child(tmp_path: Path) -> None:
    result = run_case("started-before", tmp_path)
    child = result["child"]
    for use in ("ask", "tell", "ref", "ask_async", "spawn", "submit", "subscribe", "start"):
        kind, text = child[use]
        assert kind == "SystemForkedError", (use, child[use])
        assert f"started in process {result['parent_pid']}" in text
        assert "post_fork" in text and "worker_exit" in text
    assert child["healthy"] is False  # before: healthy while every ask timed out
    assert child["running"] is False
    assert "post_fork" in child["last_error"]
    assert child["stop"] == ["ok", "None"]  # returns at once: nothing runs there
    assert result["parent"] == {"ask": 2, "healthy": True}  # the parent is untouched


@pytest.mark.timeout(90)
def test_a_system_made_before_a_fork_and_started_after_it_works(tmp_path: Path) -> None:
    result = run_case("made-before", tmp_path)
    assert result["child"] == {"ask": ["ok", "7"], "healthy": True}
