"""SIGTERM taken like Ctrl-C by the console script, and only by it."""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING

import pytest

from regisseur.cli._interrupts import (
    Terminated,
    cleaning_up,
    exit_code,
    interrupt_behind,
    stopped_by,
    terminate_as_interrupt,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def default_sigterm() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("default_sigterm")
def test_sigterm_raises_terminated_inside_the_block_and_is_default_after() -> None:
    with terminate_as_interrupt(), pytest.raises(Terminated) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(5)  # the handler's exception cuts this wait short
    assert isinstance(caught.value, KeyboardInterrupt), "the Ctrl-C path handles it"
    assert exit_code(caught.value) == 143
    assert exit_code(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_or_handled_sigterm_is_left_as_it_was() -> None:
    handled: list[int] = []
    for disposition in (signal.SIG_IGN, lambda signum, frame: handled.append(signum)):
        previous = signal.signal(signal.SIGTERM, disposition)
        try:
            with terminate_as_interrupt():
                assert signal.getsignal(signal.SIGTERM) is disposition
            assert signal.getsignal(signal.SIGTERM) is disposition
        finally:
            signal.signal(signal.SIGTERM, previous)


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("default_sigterm")
def test_a_cleanup_before_any_signal_ignores_sigterm() -> None:
    """A command cleaning up after an error, not a signal: a SIGTERM in its
    cleanup is ignored (a second signal quits at once only after a first;
    see tests/test_cli_download_stops.py)."""
    with terminate_as_interrupt():
        with cleaning_up():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: nothing raised
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)


@pytest.mark.usefixtures("default_sigterm")
def test_outside_the_console_script_sigterm_keeps_its_default() -> None:
    with cleaning_up():
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "as before: main() in a program"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_error_raised_as_an_interrupt_unwound_is_taken_as_that_interrupt() -> None:
    # A signal landing while Condition.wait takes its lock back: the ``with``
    # around it releases a lock it does not hold, and that RuntimeError
    # replaces the interrupt (seen in the demo after Ctrl-C: exit 1, "failed").
    signum = signal.SIGTERM
    with pytest.raises(RuntimeError) as raised:
        try:
            raise Terminated(signum)
        finally:
            raise RuntimeError("cannot release un-acquired lock")  # noqa: B012
    interrupt = interrupt_behind(raised.value)
    assert isinstance(interrupt, Terminated)
    assert (exit_code(interrupt), stopped_by(interrupt)) == (143, "terminated")
    assert interrupt_behind(RuntimeError("a plain failure")) is None


def test_a_command_ended_by_an_interrupt_unwound_into_an_error_exits_as_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside a command's own handling (importing it, say): the console
    script's exit code is the interrupt's, and a plain error still raises."""
    from regisseur.cli import _main

    def interrupted(*_args: object) -> int:
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError("cannot release un-acquired lock")  # noqa: B012

    monkeypatch.setattr(_main, "_main", interrupted)
    assert _main._guarded([], None) == 130

    def failed(*_args: object) -> int:
        raise RuntimeError("a plain failure")

    monkeypatch.setattr(_main, "_main", failed)
    with pytest.raises(RuntimeError, match="a plain failure"):
        _main._guarded([], None)
