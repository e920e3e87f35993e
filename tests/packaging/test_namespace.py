"""regisseur installs as one ``regisseur`` namespace and lives beside anything.

An application with its own ``messages.py``, ``actors/`` package and a
``supervision`` package on its path (the PyPI package of that name is a
computer-vision library) imports regisseur, and its own pytest suite runs
green with regisseur's plugin loaded.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("actors", "cli", "messages", "supervision")

pytestmark = pytest.mark.timeout(120)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(cwd)  # the host's own modules come first, as in an app
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


HOST = {
    "messages.py": """
        # The host's own module named like regisseur's folder.
        class Event:
            kind = "host"
    """,
    "actors/__init__.py": """
        HOST_ACTORS = True
    """,
    "cli.py": """
        # An application's own command line, a very common module name.
        HOST_CLI = True
    """,
    "actors/clock.py": """
        raise ImportError("the host's actors.clock must never be imported by regisseur")
    """,
    "supervision/__init__.py": """
        # Stands in for the computer-vision package of the same name.
        __version__ = "0.0-host"
        Detections = object
    """,
    "pyproject.toml": """
        [tool.pytest.ini_options]
        addopts = "-p no:cacheprovider"
    """,
    "tests/test_host.py": """
        import messages
        import actors
        import cli
        import supervision


        def test_the_hosts_own_modules_are_its_own():
            assert messages.Event.kind == "host"
            assert actors.HOST_ACTORS
            assert cli.HOST_CLI
            assert supervision.__version__ == "0.0-host"


        def test_regisseur_imports_beside_them():
            from regisseur.actors import Actor, ActorSystem
            from regisseur.messages import ChildStarted, DownloadState
            from regisseur.supervision import ChildSpec, Supervisor

            assert ActorSystem.__module__ == "regisseur.actors.system"
            assert Supervisor.__module__ == "regisseur.supervision.supervisor"
            assert DownloadState.SUCCEEDED.value == "Completed, Succeeded"
            assert issubclass(ChildStarted, object) and Actor and ChildSpec
            assert messages.Event.kind == "host"  # not replaced by regisseur's


        def test_regisseurs_command_line_imports_beside_the_hosts():
            from regisseur.cli import main

            assert main.__module__ == "regisseur.cli._main"
            assert cli.HOST_CLI


        def test_the_plugins_fixtures_work(actor_system):
            from regisseur.actors import Actor
            from regisseur.supervision import ChildSpec

            class Echo(Actor):
                def on_receive(self, message):
                    return ("echo", message)

            actor_system.spawn(ChildSpec("echo", Echo))
            assert actor_system.ask("echo", 7, timeout=5) == ("echo", 7)
    """,
}


def test_a_host_app_with_clashing_names_runs_its_suite_with_the_plugin(tmp_path: Path) -> None:
    _write(tmp_path, HOST)
    result = _run(["-m", "pytest", "-q", "tests"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert "regisseur" in _run(["-m", "pytest", "--trace-config", "-q", "--co"], tmp_path).stdout


def test_loading_the_plugin_imports_none_of_the_runtime(tmp_path: Path) -> None:
    code = (
        "import sys, regisseur.supervision.testing.plugin as p\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('regisseur.actors', "
        "'regisseur.messages', 'pykka', 'sqlalchemy')))\n"
        "print(loaded)\n"
    )
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_public_names_resolve_through_the_lazy_package() -> None:
    from regisseur import supervision
    from regisseur.supervision import testing

    for name in supervision.__all__:
        assert getattr(supervision, name) is not None
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError, match="Nope"):
        _ = supervision.Nope
    with pytest.raises(AttributeError, match="Nope"):
        _ = testing.Nope


def _packages_on_disk() -> set[str]:
    found = set()
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("regisseur." + ".".join(rel.parts))
    return found


def test_setup_cfg_lists_every_package_under_regisseur() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    assert listed == _packages_on_disk()


@pytest.mark.slow
def test_the_wheel_installs_nothing_but_regisseur_at_the_top(tmp_path: Path) -> None:
    # The build backend without isolation: pip fetches nothing. Both come with
    # the test extra (a Python 3.12+ venv has no setuptools of its own).
    pytest.importorskip("wheel")
    pytest.importorskip("setuptools")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("regisseur-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"regisseur"}
    assert "regisseur/__init__.py" not in names  # a namespace: nothing to clash with
    for folder in FOLDERS:
        assert f"regisseur/{folder}/__init__.py" in names
        assert f"regisseur/{folder}/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "regisseur.supervision.testing.plugin" in text
    assert "regisseur = regisseur.cli:console_main" in text
    assert "regisseur/cli/demo/__init__.py" in names
