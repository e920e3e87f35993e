"""The bridge to Pykka's internals: present, and a clear error when they are not."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

import pykka
import pytest

from regisseur.actors import _pykka

BRIDGE = Path(_pykka.__file__)


def test_the_bridge_hands_out_pykkas_own_objects() -> None:
    envelope = _pykka.Envelope("hello")
    assert envelope.message == "hello"
    assert envelope.reply_to is None
    # ref.stop() sends this very type: the runtime must recognise it.
    assert type(pykka.messages._ActorStop()) is _pykka.ActorStop  # noqa: SLF001


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("pykka._envelope", "pykka._envelope.Envelope"),
        ("pykka._introspection", "pykka._introspection.get_attr_directly"),
        ("pykka._types", "pykka._types.OptExcInfo"),
    ],
)
def test_a_pykka_without_an_internal_fails_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, missing: str, named: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import of it now fails
    spec = importlib.util.spec_from_file_location("regisseur_bridge_probe", BRIDGE)
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError) as caught:
        spec.loader.exec_module(probe)
    text = str(caught.value)
    assert named in text
    assert "pykka>=4.4.2,<5" in text
    assert metadata.version("pykka") in text


@pytest.mark.parametrize("version", ["4.4.0", "4.4.1", "4.3.0", "3.1.1"])
def test_a_pykka_older_than_4_4_2_fails_with_a_clear_error(version: str) -> None:
    """Pykka 4.4.0 and 4.4.1 have every internal the bridge imports, but their
    proxies reach the actor through ``ref._actor``: every ``proxy()`` of a
    running system failed with ``AttributeError: 'Ref' object has no
    attribute '_actor'`` (found running the suite with the oldest versions
    setup.cfg allowed)."""
    with pytest.raises(ImportError) as caught:
        _pykka.check_version(version)
    assert f"Pykka {version} is installed" in str(caught.value)
    assert "pykka>=4.4.2,<5" in str(caught.value)


@pytest.mark.parametrize("version", ["4.4.2", "4.5.0", "4.10", "4.5.0rc1", "unknown"])
def test_a_supported_or_unreadable_pykka_version_passes(version: str) -> None:
    _pykka.check_version(version)
