"""The arguments of ``regisseur download``: the parser, and what they mean once parsed.

Runs on the caller's thread while the command line is read, before any of
the runtime is imported (``--help`` and bad arguments load none of it). A
bad value is an ``argparse`` error naming its option; header values are
never echoed (they often hold a credential).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regisseur.actors.http_headers import (
    BODY_HEADER_PROBLEM,
    BODY_HEADERS,
    HEADER_NAME,
    OWN_HEADERS,
    value_problem,
)
from regisseur.cli._download_places import plain_reason
from regisseur.cli._records_db import DB_NAME
from regisseur.messages.downloads import TEXT_LIMIT

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MOST_JOBS", "add_arguments", "bounds", "read_urls", "request_headers"]


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


#: The most ``-j``: a source's bound on its workers (``MAX_CONCURRENCY``,
#: a thread each), not imported here (``--help`` loads no runtime).
#: Before, ``-j 1000`` ran with a few URLs and, with 300, ended with
#: ``DownloadSource 'http' concurrency must be between 1 and 256``.
MOST_JOBS = 256

#: The most bytes a size may say (8 EiB, a signed 64-bit count).
_MOST_BYTES = 2**63 - 1

#: The longest a socket or a lock can wait (about 292 years); HttpSource
#: refuses a longer timeout or low-speed window.
_LONGEST_WAIT = threading.TIMEOUT_MAX


def _count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            msg = f"must be between {minimum} and {maximum}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _bytes(text: str) -> int:
    """``100``, ``512K``, ``1.5M``, ``2G``, ``10MiB`` (powers of 1024, as curl reads them).

    Counted in decimal, not float: 400 digits were an ``OverflowError``.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500K, 10M, 2G)")
    value = int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    if value > _MOST_BYTES:
        raise argparse.ArgumentTypeError(f"must be at most 8 EiB, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    if value > _LONGEST_WAIT:
        msg = f"must be at most {_LONGEST_WAIT:.0f} seconds (about 292 years), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _sha256(text: str) -> str:
    if not _SHA256.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not 64 hex digits: {text!r}")
    return text.strip().lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``download`` command's options."""
    parser.add_argument("urls", nargs="*", metavar="URL", help="http or https URLs")
    parser.add_argument("-o", "--output", default=".", metavar="DIR", help="directory (default: .)")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_count(1, MOST_JOBS),
        default=4,
        metavar="N",
        help=f"parallel downloads (4; at most {MOST_JOBS})",
    )
    parser.add_argument(
        "--retries", type=_count(0, 100), default=3, metavar="N", help="retries per download (3)"
    )
    parser.add_argument(
        "--sha256", type=_sha256, default=None, metavar="HEX", help="expected SHA-256 (one URL)"
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL|FILE",
        help=f"records database: a URL or a SQLite file (default: DIR/{DB_NAME})",
    )
    parser.add_argument("--plain", action="store_true", help="plain lines, no progress bars")
    parser.add_argument(
        "--no-fsync",
        dest="fsync",
        action="store_false",
        help=(
            "do not flush each file to disk before it counts as done (faster for many "
            "small files, as wget and curl do; a power cut may then leave a short file, "
            "which the next run fetches again beside it)"
        ),
    )
    # Bounds against hostile or broken servers (HttpSource max_bytes, max_time,
    # speed_limit, speed_time).
    parser.add_argument(
        "--max-size",
        type=_bytes,
        default=None,
        metavar="SIZE",
        help="fail a download larger than SIZE (e.g. 500K, 10M, 2G), with or without "
        "Content-Length",
    )
    parser.add_argument(
        "--max-time",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="fail a download that takes longer than this, retries included",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="fail (and retry) an attempt whose connection or next read waits longer than "
        "this (default: 10 to connect, 30 between reads)",
    )
    parser.add_argument(
        "--speed-limit",
        type=_bytes,
        default=None,
        metavar="BYTES",
        help="fail (and retry) a download slower than BYTES per second for --speed-time",
    )
    parser.add_argument(
        "--speed-time",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="the period of --speed-limit (30; alone it means --speed-limit 1)",
    )
    _add_io_arguments(parser)


def _add_io_arguments(parser: argparse.ArgumentParser) -> None:
    """``-i``, ``-q``, ``--header``, ``--ca-certificate``, ``--user-agent``."""
    parser.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        help=(
            "read URLs from FILE, one a line ('-': stdin; blank lines skipped, "
            "# after a space or at the start of a line begins a comment)"
        ),
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress or per-file lines (failures and the files' paths still print)",
    )
    parser.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header (repeatable; never printed or logged)",
    )
    parser.add_argument(
        "--ca-certificate",
        type=_ca_file,
        default=None,
        metavar="FILE",
        help="trust the CA certificates in FILE (PEM) instead of the certifi bundle",
    )
    parser.add_argument(
        "--user-agent",
        type=_user_agent,
        default=None,
        metavar="TEXT",
        help="User-Agent (default: regisseur/VERSION)",
    )


def _ca_file(text: str) -> str:
    """A ``--ca-certificate`` (wget's name; curl's ``--cacert``): a file of PEM
    certificates, loaded once here so that a wrong file is one error now,
    not a ``TLS error`` for every download."""
    import ssl  # only when the option is given

    path = Path(text).expanduser()
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:  # (an OSError too)
        msg = f"{text} holds no PEM certificate ({exc.reason or exc})"
        raise argparse.ArgumentTypeError(msg) from None
    except OSError as exc:  # missing, unreadable, a directory
        raise argparse.ArgumentTypeError(f"cannot read {text}: {plain_reason(exc)}") from None
    return str(path)


def _user_agent(text: str) -> str:
    """A ``--user-agent``: one line, not blank (as ``HttpSource`` takes it)."""
    if not text.strip() or any(char in text for char in "\r\n\0"):
        msg = f"must be one line of text, not blank: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    problem = value_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"has {problem}")
    return text


def _header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair; the text is not echoed (often a credential)."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name:
        msg = "expected 'Name: value' (a header name, a colon, the value)"
        raise argparse.ArgumentTypeError(msg)
    if not HEADER_NAME.fullmatch(name):
        msg = f"{name!r} is not a valid HTTP header name"
        raise argparse.ArgumentTypeError(msg)
    if name.lower() in OWN_HEADERS:
        msg = f"{name!r} is set by regisseur itself (to resume a download)"
        raise argparse.ArgumentTypeError(msg)
    if name.lower() in BODY_HEADERS:
        raise argparse.ArgumentTypeError(f"{name!r} {BODY_HEADER_PROBLEM}")
    value = value.strip()
    if any(char in value for char in "\r\n\0"):
        msg = f"the value of header {name!r} has a line break"
        raise argparse.ArgumentTypeError(msg)
    problem = value_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"the value of header {name!r} has {problem}")
    return name, value


def request_headers(args: argparse.Namespace) -> dict[str, str]:
    """``--header`` pairs as a mapping; ``ValueError`` for a name given twice."""
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in args.headers:
        if name.lower() in seen:
            msg = f"--header {name} is given twice"
            raise ValueError(msg)
        seen.add(name.lower())
        headers[name] = value
    if args.user_agent is not None and "user-agent" in seen:
        msg = "--user-agent and --header 'User-Agent: ...' both set the User-Agent: give one"
        raise ValueError(msg)
    return headers


def _url(text: str) -> str:
    """``text`` as the URL to fetch: trimmed, its fragment dropped, a literal
    space sent as ``%20``.

    A fragment (after the first ``#``) names a part of the page to a
    browser and is never sent (curl and wget drop it too): kept, ``a.bin``
    and ``a.bin#x`` were two downloads of one file, the second saved as
    ``a (1).bin``, and a run with the other spelling did not find the first
    one's record.

    curl and wget accept ``http://host/my file.pdf`` the same way; any other
    whitespace or control character is refused by the source, naming it. A
    byte of an argument that is not UTF-8 (Python keeps it as a lone
    surrogate, which no record can store) is sent percent-encoded, as curl
    sends the byte itself: before, ``http://host/caf\xe9.txt`` (Latin-1)
    ended the whole run with ``target_id is not valid text``.
    """
    url = text.strip().partition("#")[0]
    return _NOT_UTF8.sub(_percent, url.replace(" ", "%20"))


#: A byte of ``sys.argv`` that was not UTF-8 (``surrogateescape``).
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _percent(match: re.Match[str]) -> str:
    return f"%{ord(match.group()) - 0xDC00:02X}"


def _check(url: str, where: str) -> str:
    """``url``, or a ``ValueError`` saying where it is and why no download can
    take it (``submit()`` would refuse it once earlier URLs were queued)."""
    if len(url) > TEXT_LIMIT:
        msg = f"{where}: the URL is {len(url)} characters long; the limit is {TEXT_LIMIT}"
        raise ValueError(msg)
    return url


# A comment: a ``#`` that starts the line or follows whitespace, to the end
# of the line (``URL  # the mirror``). A ``#`` inside a URL is its fragment.
_COMMENT = re.compile(r"(?:^|\s)#.*")


def _read_list(name: str) -> list[tuple[int, str]]:
    """The URLs in ``-i`` file ``name`` (``-``: stdin) with their line numbers;
    ``ValueError`` if unreadable."""
    try:
        if name == "-":
            text = sys.stdin.buffer.read().decode("utf-8-sig")
        else:
            text = Path(name).expanduser().read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"-i {name}: not UTF-8 text (byte {exc.start})"
        raise ValueError(msg) from None
    except OSError as exc:
        msg = f"cannot read -i {name}: {plain_reason(exc)}"
        raise ValueError(msg) from None
    lines = (_COMMENT.sub("", line).strip() for line in text.splitlines())
    return [(number, line) for number, line in enumerate(lines, 1) if line]


def read_urls(args: argparse.Namespace) -> list[str]:
    """Every URL to fetch, once each, in order; ``ValueError`` if there are
    none, or naming the argument or line of one that no download can take
    (checked before anything starts: nothing is queued then)."""
    given = [_check(_url(u), f"URL argument {n}") for n, u in enumerate(args.urls, 1)]
    if args.input_file is not None:
        listed = _read_list(args.input_file)
        if not listed and not given:
            msg = f"no URLs in -i {args.input_file} (one a line; # starts a comment)"
            raise ValueError(msg)
        given += (_check(_url(u), f"line {n} of -i {args.input_file}") for n, u in listed)
    if not given:
        msg = "no URLs: give them as arguments or in a file with -i FILE"
        raise ValueError(msg)
    return list(dict.fromkeys(given))


def bounds(args: argparse.Namespace) -> dict[str, Any]:
    """HttpSource's limits and timeouts from the options.

    As curl's, ``--speed-time`` alone means 1 byte/s; ``--timeout`` sets both
    of HttpSource's timeouts, as wget's sets its connect and read timeouts.
    """
    speed_limit = args.speed_limit
    if speed_limit is None and args.speed_time is not None:
        speed_limit = 1
    limits: dict[str, Any] = {
        "max_bytes": args.max_size,
        "max_time": args.max_time,
        "speed_limit": speed_limit,
        "speed_time": 30.0 if args.speed_time is None else args.speed_time,
    }
    if args.timeout is not None:  # wget's --timeout: the connect and the read timeout
        limits.update(connect_timeout=args.timeout, read_timeout=args.timeout)
    return limits
