"""A user's code under ``mypy --strict``: typed refs, proxies and subscriptions.

``good.py`` must type-check cleanly; ``bad.py`` holds one mistake per line
marked ``# E: <code>``, and mypy must report exactly those. mypy finds
regisseur through a link tree (``regisseur/actors -> <repo>/actors`` …) on
``MYPYPATH``, so the test works whatever way the package is installed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FOLDERS = ("actors", "messages", "supervision")
EXPECTED = re.compile(r"#\s*E:\s*([\w-]+)")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")

pytestmark = pytest.mark.timeout(300)


def expected_errors(path: Path) -> set[tuple[str, int, str]]:
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECTED.search(line)
        if match:
            found.add((path.name, number, match[1]))
    return found


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    tree = tmp_path_factory.mktemp("typing")
    (tree / "regisseur").mkdir()
    for folder in FOLDERS:
        (tree / "regisseur" / folder).symlink_to(ROOT / folder, target_is_directory=True)
    config = tree / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        "strict = True\n"
        f"mypy_path = {tree}\n"
        "[mypy-regisseur.*]\n"
        "follow_imports = silent\n"  # the library's own errors are not the user's
    )
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tree / "cache"),
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            str(HERE / "good.py"),
            str(HERE / "bad.py"),
        ]
    )
    assert not stderr, stderr
    return stdout, status


def reported(stdout: str) -> set[tuple[str, int, str]]:
    errors = set()
    for line in stdout.splitlines():
        match = REPORTED.match(line)
        if match:
            errors.add((os.path.basename(match["file"]), int(match["line"]), match["code"]))
    return errors


def test_the_users_good_file_passes_mypy_strict(mypy_report: tuple[str, int]) -> None:
    stdout, _ = mypy_report
    assert not [line for line in stdout.splitlines() if "good.py" in line], stdout


def test_mypy_strict_reports_each_mistake_in_the_bad_file(mypy_report: tuple[str, int]) -> None:
    stdout, status = mypy_report
    assert status == 1
    assert reported(stdout) == expected_errors(HERE / "bad.py"), stdout
