"""Two real ``regisseur download`` processes on one ``-o DIR``, the second
started while the first is mid-download (see ``two_writers``).

Every published file is byte-identical to the server's (SHA-256), each URL
has exactly one Succeeded record and one file, no record is Errored with a
complete file, no part file is left, and both runs exit 0. The second run
of the same URL says which process is downloading it and waits for it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from tests.reliability import two_writers

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def server() -> Iterator[two_writers.Server]:
    with contextlib.contextmanager(two_writers.serve)() as running:
        yield running


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["same", "different", "mixed", "together"])
def test_two_cli_runs_on_one_directory(
    server: two_writers.Server, mode: str, tmp_path: Path
) -> None:
    result = two_writers.run_round(server, mode, tmp_path / "out")
    assert result.ok, result
    if mode == "together":  # whichever planned second waited for the other
        assert server.fetched("a.bin") == [None]
    if mode in ("same", "mixed"):
        # The second run did not resume the first run's download: it waited.
        assert "waiting for " in result.outputs[1], result.outputs[1]
        assert "is downloading it" in result.outputs[1]
        assert "resuming" not in result.outputs[1]
        assert server.fetched("a.bin") == [None]  # one request for a.bin, by the first run
