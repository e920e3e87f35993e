"""The bus refuses to subscribe to what it never publishes."""

from __future__ import annotations

import pytest

from regisseur.messages import ChildFailed, DownloadRecord, Event, Pause, QueueDownload


@pytest.mark.parametrize("kind", [QueueDownload, Pause, DownloadRecord, int])
def test_subscribing_to_a_type_never_published_is_refused_naming_it(actor_system, kind) -> None:
    with pytest.raises(TypeError, match=f"{kind.__name__} is never published"):
        actor_system.events.subscribe(lambda event: None, ChildFailed, kind)


def test_an_instance_instead_of_a_class_is_refused(actor_system) -> None:
    with pytest.raises(TypeError, match="must be classes"):
        actor_system.events.subscribe(lambda event: None, ChildFailed("x", "y"))


def test_events_and_their_bases_are_accepted(actor_system) -> None:
    with actor_system.events.subscribe(lambda event: None, Event, ChildFailed):
        pass
