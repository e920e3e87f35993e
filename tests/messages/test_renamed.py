"""The download commands' old names still import, warning, until 1.0.

This file (like ``messages/_renamed.py``) spells the old names on purpose:
``vocab-rename.sh`` skips it.
"""

from __future__ import annotations

import importlib
import warnings

import pytest

import regisseur.messages
import regisseur.messages.downloads
from regisseur.messages import (
    CancelDownload,
    ClaimDownload,
    CompleteDownload,
    FailDownload,
    QueueDownload,
    ReportProgress,
)

OLD_TO_NEW = {
    "DownloadQueued": QueueDownload,
    "DownloadStarted": ClaimDownload,
    "DownloadProgress": ReportProgress,
    "DownloadSucceeded": CompleteDownload,
    "DownloadFailed": FailDownload,
    "DownloadCancelled": CancelDownload,
}


@pytest.mark.parametrize("module", ["regisseur.messages", "regisseur.messages.downloads"])
@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_an_old_name_is_the_new_class_with_a_deprecation_warning(module: str, old: str) -> None:
    new = OLD_TO_NEW[old]
    with pytest.warns(DeprecationWarning, match=rf"{old} was renamed to {new.__name__}"):
        kind = getattr(importlib.import_module(module), old)
    assert kind is new


def test_from_import_of_an_old_name_works_and_warns() -> None:
    with pytest.warns(DeprecationWarning, match="renamed to QueueDownload"):
        from regisseur.messages import DownloadQueued  # type: ignore[attr-defined]
    assert DownloadQueued("d1", "http", "u", "f") == QueueDownload("d1", "http", "u", "f")


def test_the_new_names_do_not_warn_and_unknown_names_still_fail() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert regisseur.messages.QueueDownload is QueueDownload
    with pytest.raises(AttributeError, match="has no attribute 'DownloadQueud'"):
        regisseur.messages.DownloadQueud  # noqa: B018
    with pytest.raises(ImportError):
        from regisseur.messages.downloads import Nope  # type: ignore[attr-defined]  # noqa: F401
