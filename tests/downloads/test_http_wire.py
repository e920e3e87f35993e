"""The reason a network error is shown with: the same text whichever urllib3
major raised it, never an object's repr.

The errors are raised here the way each urllib3 major raises them (2.x
chains the socket's ``OSError`` with ``from``; 1.26, which ``requests``
2.31+ still accepts, raises inside the ``except`` without it), then wrapped
as ``requests`` wraps them.
"""

from __future__ import annotations

import pytest
import requests
import urllib3.exceptions

from regisseur.actors.downloads._http_wire import network_reason


class _Connection:
    """Stands for urllib3's connection object: only its default repr matters."""


def _refused(*, chained: bool) -> BaseException:
    connection = _Connection()
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            message = f"Failed to establish a new connection: {exc}"
            if chained:  # urllib3 2.x
                raise urllib3.exceptions.NewConnectionError(connection, message) from exc  # type: ignore[arg-type]
            raise urllib3.exceptions.NewConnectionError(connection, message)  # type: ignore[arg-type]  # noqa: B904  # 1.26
    except urllib3.exceptions.NewConnectionError as new:
        wrapped = urllib3.exceptions.MaxRetryError(None, "/x", reason=new)  # type: ignore[arg-type]
        return requests.ConnectionError(wrapped)
    raise AssertionError


@pytest.mark.parametrize("chained", [True, False], ids=["urllib3-2", "urllib3-1.26"])
def test_a_refused_connection_reads_connection_refused(chained: bool) -> None:
    assert network_reason(_refused(chained=chained)) == "Connection refused"


def test_an_error_whose_text_starts_with_an_object_repr_is_shown_without_it() -> None:
    connection = _Connection()
    try:
        try:
            raise TimeoutError("timed out")  # no strerror: nothing to take from it
        except OSError:
            message = "Connection to example.org timed out. (connect timeout=1)"
            raise urllib3.exceptions.ConnectTimeoutError(f"{connection}: {message}")  # noqa: B904
    except urllib3.exceptions.ConnectTimeoutError as exc:
        reason = network_reason(requests.ConnectTimeout(exc))
    assert reason == "Connection to example.org timed out. connect timeout=1"
    assert "object at 0x" not in reason


def test_an_error_raised_from_none_does_not_take_the_reason_of_what_it_replaced() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except OSError:
            raise ValueError("the chunk size line is not a number") from None
    except ValueError as exc:
        assert network_reason(exc) == "the chunk size line is not a number"
