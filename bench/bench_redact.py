"""The cost of redacting a URL, against running every pattern (the old way).

Run: ``python bench/bench_redact.py [--calls N] [--rounds R]``

Every download redacts its URL once up front (for its error texts and log
lines), so this is paid per file. ``redact_text`` runs each pattern only
where the text has what it needs; the baseline runs all six patterns on
every text, as before. Both sides run in the same process, interleaved
round by round; the report quotes medians and the spread (min-max) of
microseconds per call, and the median ratio baseline / redact_text.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import TYPE_CHECKING

from regisseur.messages import redaction as r

if TYPE_CHECKING:
    from collections.abc import Callable

TEXTS = {
    "plain URL": "http://127.0.0.1:8080/files/f00123.bin",
    "URL with password": "https://alice:s3cr3t@example.org/data/archive.tar.gz",
    "signed URL": (
        "https://bucket.s3.amazonaws.com/big.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20260101%2Fs3&X-Amz-Signature=deadbeef&X-Amz-Expires=60"
    ),
    "error text": "HTTP 404 Not Found: http://127.0.0.1:8080/files/gone.bin",
}


def every_pattern(text: str) -> str:
    """The baseline: all six patterns on every text."""
    text = r._URL_CREDENTIALS.sub(rf"\g<prefix>:{r.REDACTED}@", text)
    text = r._URL_TOKEN.sub(rf"\g<prefix>{r.REDACTED}@", text)
    text = r._HEADER.sub(r._redact_key_value, text)
    text = r._BEARER.sub(rf"\g<scheme> {r.REDACTED}", text)
    text = r._BASIC.sub(r._redact_basic, text)
    text = r._QUERY_KEY.sub(r._redact_parameter, text)
    return r._KEY_VALUE.sub(r._redact_key_value, text)


def _per_call(function: Callable[[str], str], text: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function(text)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for name, text in TEXTS.items():
        assert r.redact_text(text) == every_pattern(text), name
        new: list[float] = []
        old: list[float] = []
        for round_ in range(args.rounds):
            sides = [(new, r.redact_text), (old, every_pattern)]
            for times, function in sides if round_ % 2 == 0 else sides[::-1]:
                times.append(_per_call(function, text, args.calls))
        ratios = [b / a for a, b in zip(new, old, strict=True)]
        print(
            f"{name:18s} redact_text {statistics.median(new):6.2f} us "
            f"({min(new):.2f}-{max(new):.2f})   every pattern {statistics.median(old):6.2f} us "
            f"({min(old):.2f}-{max(old):.2f})   ratio {statistics.median(ratios):5.1f}x"
        )


if __name__ == "__main__":
    main()
