"""One error hierarchy: every exception the library raises is a RegisseurError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pykka
import pytest

import regisseur.actors
import regisseur.cli
import regisseur.messages
import regisseur.supervision
from regisseur.actors import RegisseurError

_PACKAGES = (regisseur.actors, regisseur.cli, regisseur.messages, regisseur.supervision)
# Optional dependencies (the cli extra): modules that need them are skipped
# when they are not installed, as in the README's test command.
_OPTIONAL = {"rich"}


def _import(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _OPTIONAL:
            return None
        raise


def _modules() -> list[str]:
    names = []
    for package in _PACKAGES:
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            names.append(info.name)
    return names


def _exported() -> dict[str, type]:
    """Every exception class named in the ``__all__`` of a package ``__init__``."""
    found: dict[str, type] = {}
    for name in _modules():
        module = _import(name)
        if module is None or not hasattr(module, "__path__"):
            continue
        for public in getattr(module, "__all__", ()):
            value = getattr(module, public)
            if inspect.isclass(value) and issubclass(value, BaseException):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _defined() -> dict[str, type]:
    """Exception classes defined with a public name in a public module."""
    found: dict[str, type] = {}
    for name in _modules():
        if any(part.startswith("_") for part in name.split(".")):
            continue
        module = _import(name)
        if module is None:
            continue
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")
            ):
                found[f"{name}.{value.__qualname__}"] = value
    return found


def test_every_error_of_the_library_is_a_regisseur_error_and_exported() -> None:
    defined = _defined()
    exported = _exported()
    assert len(defined) >= 10  # the walk found the modules
    not_ours = sorted(
        k for k, v in (defined | exported).items() if not issubclass(v, RegisseurError)
    )
    assert not_ours == []
    hidden = sorted(k for k in defined if k not in exported)
    assert hidden == []


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("regisseur.actors:UnknownActorError", LookupError),
        ("regisseur.actors:WaitTimeoutError", TimeoutError),
        ("regisseur.actors:WaitTimeoutError", pykka.Timeout),
        ("regisseur.actors:ActorStoppedError", pykka.ActorDeadError),
        ("regisseur.actors:DatabaseError", RuntimeError),
        ("regisseur.actors:InstanceHeldError", RuntimeError),
        ("regisseur.cli:StatusError", RuntimeError),
        ("regisseur.actors:UnhealthyError", RuntimeError),
        ("regisseur.actors.cluster:NodeIdInUseError", RuntimeError),
        ("regisseur.actors.downloads:UnknownDownloadError", LookupError),
        ("regisseur.actors.downloads:UnknownSourceError", LookupError),
        ("regisseur.actors.downloads:DownloadError", RegisseurError),
        ("regisseur.supervision:StartupError", RuntimeError),
        ("regisseur.supervision:EscalatedError", RuntimeError),
        ("regisseur.supervision:FatalError", RegisseurError),
        ("regisseur.supervision.testing:InjectedFault", RuntimeError),
    ],
)
def test_errors_stay_the_builtins_users_already_catch(name: str, builtin: type) -> None:
    module, attr = name.split(":")
    error = getattr(importlib.import_module(module), attr)
    assert issubclass(error, builtin)
    assert issubclass(error, RegisseurError)
