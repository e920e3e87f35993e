"""The one bridge to Pykka's private modules.

regisseur plugs into Pykka's runtime where Pykka offers no public name for
what it needs: the envelope a message travels in (``pykka._envelope``),
attribute lookup for proxy calls (``pykka._introspection``), the stop
message ``ActorRef.stop()`` sends (``pykka.messages._ActorStop``), and two
names for typing (``pykka._actor.ActorInbox``, ``pykka._types.OptExcInfo``).
Every other module imports them from here, so an upgrade of Pykka is
checked in one place (a test guards that no other module names
``pykka._``).

It also relies on how Pykka's ``ActorProxy`` reaches its actor: through
the ref's ``_actor_weakref`` (``Ref`` in ``_cell`` sets it), since Pykka
4.4.2; 4.4.0 and 4.4.1 read ``_actor`` instead, and every proxy failed
with ``AttributeError``. Run against Pykka 4.4.2 (the newest on Python
3.10) and 4.5.0 (the test suite); setup.cfg accepts ``pykka>=4.4.2,<5``.
A Pykka that is older, or lacks one of these names, fails the import of
regisseur with an ``ImportError`` that names what is missing, the
installed Pykka version and the supported range, instead of an
``AttributeError`` deep in a running actor.

Threads: import-time only; the names are Pykka's own, safe as Pykka says.
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = [
    "SUPPORTED_PYKKA",
    "ActorInbox",
    "ActorStop",
    "Envelope",
    "OptExcInfo",
    "check_version",
    "get_attr_directly",
]

SUPPORTED_PYKKA = "pykka>=4.4.2,<5"
"""The Pykka versions this bridge was checked against (setup.cfg says the same)."""


_OLDEST = (4, 4, 2)
_RELEASE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _installed() -> str:
    try:
        return metadata.version("pykka")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def _unsupported(name: str, exc: BaseException) -> ImportError:
    msg = (
        f"regisseur needs Pykka's internal {name}, which the installed Pykka "
        f"{_installed()} does not have ({exc}); regisseur was checked against "
        f"Pykka 4.4.2 and 4.5: install {SUPPORTED_PYKKA!r}"
    )
    return ImportError(msg)


def check_version(installed: str) -> None:
    """``ImportError`` if Pykka ``installed`` (a version string) is older than
    4.4.2; an unreadable version passes (the names below are checked anyway)."""
    found = _RELEASE.match(installed)
    if found is None:
        return
    release = tuple(int(part or 0) for part in found.groups())
    if release < _OLDEST:
        msg = (
            f"regisseur needs Pykka 4.4.2 or newer (its proxies reach an actor "
            f"through the ref's _actor_weakref), but Pykka {installed} is "
            f"installed: install {SUPPORTED_PYKKA!r}"
        )
        raise ImportError(msg)


check_version(_installed())


try:
    from pykka._envelope import Envelope
except ImportError as exc:
    raise _unsupported("pykka._envelope.Envelope", exc) from exc
try:
    from pykka._introspection import get_attr_directly
except ImportError as exc:
    raise _unsupported("pykka._introspection.get_attr_directly", exc) from exc
try:
    from pykka.messages import _ActorStop as ActorStop
except ImportError as exc:
    raise _unsupported("pykka.messages._ActorStop", exc) from exc
try:
    from pykka._actor import ActorInbox
except ImportError as exc:
    raise _unsupported("pykka._actor.ActorInbox", exc) from exc
try:
    from pykka._types import OptExcInfo
except ImportError as exc:
    raise _unsupported("pykka._types.OptExcInfo", exc) from exc
