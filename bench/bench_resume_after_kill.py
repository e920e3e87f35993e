"""Bytes fetched again after a ``regisseur download`` is SIGKILLed mid-download.

Run: ``python bench/bench_resume_after_kill.py [--rounds R] [--mib M]
[--rate RATE] [--sha256] [--seed S]``

nginx (a config of this bench's own: 127.0.0.1, a free port, a temporary
directory, an access log with each request's ``Range``) serves one file of
M MiB (default 96) at ``limit_rate`` RATE (default ``32m``), so a run is
mid-download for a few seconds, past its first checkpoint (after the first
chunk; then every 32 MiB or 5 s). Each round:

1. ``regisseur download URL -o DIR --plain`` starts (a real process);
2. once its ``.part`` holds a random number of bytes (between 4 and
   M/2 MiB, from ``--seed``), the bench SIGKILLs it and reads the part's
   size and the good length its ``.meta`` records;
3. the same command runs again and must publish the server's bytes;
   nginx's log says where its ``Range`` started.

Per round: ``thrown away`` = the part's size at the kill minus where the
second run's ``Range`` began (bytes already on disk, fetched again). The
bench prints each round and the median, min and max. ``--sha256`` passes
the file's checksum (the copy loop instead of splice; the resume hashes
the part again from byte 0). Needs nginx (``apt-get install nginx-light``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_small_files import _Nginx as _BenchNginx  # this folder: run as a script

_WAIT = 120.0  # seconds any one step may take before the bench gives up


class _Nginx(_BenchNginx):
    """bench_small_files' nginx, with an access log of each request's ``Range``
    and a rate limit."""

    def __init__(self, prefix: Path, root: Path, rate: str) -> None:
        self.log = prefix / "access.log"
        super().__init__(
            prefix,
            root,
            http=(
                "log_format ranged '$request_uri \"$http_range\" $status'; "
                f"access_log {self.log} ranged; sendfile_max_chunk 128k;"
            ),
            server=f"limit_rate {rate};",
        )

    def ranges(self) -> list[str]:
        """The ``Range`` of each request logged so far (``-`` for none)."""
        text = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return re.findall(r'^\S+ "([^"]*)" \d+$', text, flags=re.MULTILINE)


def _command(url: str, directory: Path, sha256: str | None) -> list[str]:
    script = Path(sys.executable).with_name("regisseur")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "regisseur.cli"]
    extra = ["--sha256", sha256] if sha256 else []
    return [*base, "download", url, "-o", str(directory), "--plain", "-q", *extra]


def _part(directory: Path) -> Path | None:
    found = [p for p in directory.glob("big.bin.*.part") if p.is_file()]
    return found[0] if found else None


def _round(
    server: _Nginx, url: str, directory: Path, *, at: int, sha256: str | None, body_sha: str
) -> tuple[int, int, int]:
    """(size at the kill, good length recorded, where the second run's Range began)."""
    logged = len(server.ranges())
    process = subprocess.Popen(
        _command(url, directory, sha256), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + _WAIT
    try:
        while True:
            part = _part(directory)
            if part is not None and part.stat().st_size >= at:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"the run ended (or stalled) before its part held {at} bytes"
                raise RuntimeError(msg)
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(_WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    size = part.stat().st_size
    meta = json.loads(Path(f"{part}.meta").read_text(encoding="utf-8"))
    again = subprocess.run(
        _command(url, directory, sha256), capture_output=True, text=True, timeout=_WAIT, check=False
    )
    if again.returncode != 0:
        msg = f"the second run failed: {again.stderr}"
        raise RuntimeError(msg)
    published = hashlib.sha256((directory / "big.bin").read_bytes()).hexdigest()
    if published != body_sha:
        msg = "the published file differs from the server's"
        raise RuntimeError(msg)
    ranges = server.ranges()[logged:]
    resumed = ranges[-1]
    start = int(resumed.removeprefix("bytes=").split("-")[0]) if resumed.startswith("bytes=") else 0
    return size, int(meta["offset"]), start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mib", type=int, default=96)
    parser.add_argument("--rate", default="32m", help="nginx limit_rate (32m)")
    parser.add_argument("--sha256", action="store_true", help="pass --sha256 (the copy loop)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("nginx"):
        parser.error("nginx is not installed")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as temporary:
        root = Path(temporary)
        root.chmod(0o755)  # nginx's worker may run as another user
        served = root / "www"
        served.mkdir()
        body = os.urandom(args.mib * 1024 * 1024)
        (served / "big.bin").write_bytes(body)
        body_sha = hashlib.sha256(body).hexdigest()
        (root / "nginx").mkdir()
        server = _Nginx(root / "nginx", served, args.rate)
        url = f"http://127.0.0.1:{server.port}/big.bin"
        thrown: list[int] = []
        behind: list[int] = []
        try:
            print(f"{args.mib} MiB at {args.rate}/s, sha256={args.sha256}, seed {args.seed}")
            for number in range(args.rounds):
                at = rng.randint(4 * 1024 * 1024, args.mib * 1024 * 1024 // 2)
                directory = root / f"out{number}"
                sha = body_sha if args.sha256 else None
                size, recorded, start = _round(
                    server, url, directory, at=at, sha256=sha, body_sha=body_sha
                )
                thrown.append(size - start)
                behind.append(size - recorded)
                print(
                    f"round {number + 1}: killed at {size} bytes, recorded {recorded}, "
                    f"resumed at {start}: {size - start} bytes fetched again"
                )
                shutil.rmtree(directory)
        finally:
            server.stop()
    mib = 1024 * 1024
    print(
        f"fetched again: median {statistics.median(thrown) / mib:.2f} MiB, "
        f"min {min(thrown) / mib:.2f}, max {max(thrown) / mib:.2f} "
        f"(the part's size minus its last checkpoint: median "
        f"{statistics.median(behind) / mib:.2f} MiB, max {max(behind) / mib:.2f})"
    )


if __name__ == "__main__":
    main()
