"""The one bridge to Pykka's private modules.

regisseur plugs into Pykka's runtime where Pykka offers no public name for
what it needs: the envelope a message travels in (``pykka._envelope``),
attribute lookup for proxy calls (``pykka._introspection``), the stop
message ``ActorRef.stop()`` sends (``pykka.messages._ActorStop``), and two
names for typing (``pykka._actor.ActorInbox``, ``pykka._types.OptExcInfo``).
Every other module imports them from here, so an upgrade of Pykka is
checked in one place (a test guards that no other module names
``pykka._``).

Checked against Pykka 4.4.0, 4.4.1, 4.4.2 (their sources) and 4.5.0 (the
test suite); setup.cfg accepts ``pykka>=4.4,<5``. A Pykka that lacks one of
these names fails the import of regisseur with an ``ImportError`` that
names the missing name, the installed Pykka version and the supported
range, instead of an ``AttributeError`` deep in a running actor.

Threads: import-time only; the names are Pykka's own, safe as Pykka says.
"""

from __future__ import annotations

from importlib import metadata

__all__ = [
    "SUPPORTED_PYKKA",
    "ActorInbox",
    "ActorStop",
    "Envelope",
    "OptExcInfo",
    "get_attr_directly",
]

SUPPORTED_PYKKA = "pykka>=4.4,<5"
"""The Pykka versions this bridge was checked against (setup.cfg says the same)."""


def _unsupported(name: str, exc: BaseException) -> ImportError:
    try:
        installed = metadata.version("pykka")
    except metadata.PackageNotFoundError:
        installed = "(version unknown)"
    msg = (
        f"regisseur needs Pykka's internal {name}, which the installed Pykka "
        f"{installed} does not have ({exc}); regisseur was checked against "
        f"Pykka 4.4 and 4.5: install {SUPPORTED_PYKKA!r}"
    )
    return ImportError(msg)


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
