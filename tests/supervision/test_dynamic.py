"""Dynamic children: system.spawn / system.stop_child, at the root and nested."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pykka
import pytest

from regisseur.actors import UnknownActorError
from regisseur.messages import (
    ChildRestarted,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    DeadLetter,
    StartupFailed,
)
from regisseur.supervision import Backoff, ChildSpec, StartupError
from tests.supervision.helpers import Fail, Journal, StartFails, Worker, events_of, spec, sub

if TYPE_CHECKING:
    from regisseur.actors import ActorSystem, ManualClock
    from regisseur.supervision.testing import Probe


@pytest.fixture
def journal() -> Journal:
    return Journal()


def test_spawn_starts_a_child_and_returns_its_ref(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    ref = actor_system.spawn(spec("w", journal))
    probe.expect(ChildStarted, name="w")
    assert journal.lifecycle() == ["start w"]  # on_start ran before spawn returned
    assert ref.ask("hi", timeout=1) == "hi"
    assert actor_system.ref("w") is ref
    assert actor_system.ask("w", "there") == "there"
    assert "w" in actor_system.names()


def test_a_spawned_child_is_supervised_with_restarts(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    ref = actor_system.spawn(spec("w", journal))
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=2.0)
    manual_clock.advance(2.0)
    probe.expect(ChildRestarted, name="w")
    assert ref.ask("after", timeout=1) == "after"


def test_spawn_under_a_nested_supervisor(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    actor_system.spawn(sub("sub", [spec("first", journal)], backoff=Backoff(initial=0.5)))
    ref = actor_system.spawn(spec("w", journal, depends_on=("first",)), supervisor="sub")
    assert ref.ask("hi", timeout=1) == "hi"
    sub_report = actor_system.health().find("sub")
    assert sub_report is not None
    assert [c.name for c in sub_report.children] == ["first", "w"]
    actor_system.tell("w", Fail(RuntimeError("boom")))
    probe.expect(ChildRestarting, name="w", delay=0.5)  # sub's backoff, not the root's
    manual_clock.advance(0.5)
    probe.expect(ChildRestarted, name="w")
    journal.clear()
    actor_system.stop()  # the spawned child stops before what it depends on
    assert journal.lifecycle() == ["stop w", "stop first"]


@pytest.mark.parametrize("where", [None, "sub"])
def test_duplicate_names_are_rejected_anywhere_in_the_tree(
    actor_system: ActorSystem, journal: Journal, where: str | None
) -> None:
    actor_system.spawn(spec("top", journal))
    actor_system.spawn(sub("sub", [spec("inner", journal)]))
    for taken in ("top", "inner", "sub"):
        with pytest.raises(ValueError, match=repr(taken)):
            actor_system.spawn(spec(taken, journal), supervisor=where)
    with pytest.raises(ValueError, match="'inner'"):
        actor_system.spawn(sub("other", [spec("inner", journal)]), supervisor=where)
    assert "other" not in actor_system.names()
    # Nothing was disturbed: each name still reaches its original actor.
    assert journal.lifecycle() == ["start top", "start inner"]
    assert actor_system.ask("inner", "ok") == "ok"


def test_spawn_with_an_unknown_dependency_is_a_value_error(
    actor_system: ActorSystem, journal: Journal
) -> None:
    actor_system.spawn(sub("sub", [spec("inner", journal)]))
    with pytest.raises(ValueError, match="'w' depends on unknown child 'ghost'"):
        actor_system.spawn(spec("w", journal, depends_on=("ghost",)))
    # A dependency must be a sibling: a child of another supervisor is unknown here.
    with pytest.raises(ValueError, match="unknown child 'inner'"):
        actor_system.spawn(spec("w", journal, depends_on=("inner",)))
    assert "w" not in actor_system.names()
    assert journal.lifecycle() == ["start inner"]


def test_spawn_rejects_bad_arguments_and_unknown_supervisors(
    actor_system: ActorSystem, journal: Journal
) -> None:
    actor_system.spawn(spec("plain", journal))
    with pytest.raises(TypeError, match="ChildSpec"):
        actor_system.spawn("w")  # type: ignore[arg-type]
    with pytest.raises(UnknownActorError, match="nowhere"):
        actor_system.spawn(spec("w", journal), supervisor="nowhere")
    with pytest.raises(TypeError, match="'plain' is not a supervisor"):
        actor_system.spawn(spec("w", journal), supervisor="plain")
    assert "w" not in actor_system.names()


def test_stop_child_stops_it_for_good(
    actor_system: ActorSystem, probe: Probe, manual_clock: ManualClock, journal: Journal
) -> None:
    ref = actor_system.spawn(spec("w", journal))
    actor_system.spawn(spec("other", journal))
    actor_system.stop_child("w")
    probe.expect(ChildStopped, name="w")
    assert journal.lifecycle("w") == ["start w", "stop w"]
    actor_system.tell("w", "hello?")
    probe.expect(DeadLetter, recipient="w", message="hello?", reason="stopped")
    with pytest.raises(pykka.ActorDeadError):
        actor_system.ask("w", "hello?")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("hello?", timeout=1)
    manual_clock.advance(3600)
    assert events_of(probe, ChildRestarted) == []
    assert "w" not in actor_system.names()
    assert actor_system.health().find("w") is None
    assert actor_system.ask("other", "fine") == "fine"
    # The name is free again.
    actor_system.spawn(spec("w", journal))
    assert actor_system.ask("w", "new") == "new"


def test_stop_child_of_a_nested_child(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    actor_system.spawn(sub("sub", [spec("a", journal), spec("b", journal)]))
    actor_system.stop_child("b")
    probe.expect(ChildStopped, name="b")
    sub_report = actor_system.health().find("sub")
    assert sub_report is not None
    assert [c.name for c in sub_report.children] == ["a"]
    assert actor_system.ask("a", "fine") == "fine"


def test_stop_child_of_a_child_others_depend_on_is_refused(
    actor_system: ActorSystem, journal: Journal
) -> None:
    actor_system.spawn(spec("db", journal))
    actor_system.spawn(spec("web", journal, depends_on=("db",)))
    with pytest.raises(ValueError, match="'db'.*web"):
        actor_system.stop_child("db")
    assert actor_system.ask("db", "still up") == "still up"
    assert journal.lifecycle() == ["start db", "start web"]
    actor_system.stop_child("web")
    actor_system.stop_child("db")  # nobody depends on it any more
    assert journal.lifecycle() == ["start db", "start web", "stop web", "stop db"]


def test_stop_child_of_an_unknown_name_is_an_error(actor_system: ActorSystem) -> None:
    with pytest.raises(UnknownActorError, match="ghost"):
        actor_system.stop_child("ghost")


def test_stop_child_twice_is_harmless(actor_system: ActorSystem, journal: Journal) -> None:
    actor_system.spawn(spec("w", journal))
    actor_system.stop_child("w")
    actor_system.stop_child("w")
    assert journal.lifecycle() == ["start w", "stop w"]


def test_a_failing_on_start_in_spawn_raises_startup_error_and_frees_the_name(
    actor_system: ActorSystem, probe: Probe, journal: Journal
) -> None:
    with pytest.raises(StartupError, match="'w' failed to start: OSError: port 8080") as info:
        actor_system.spawn(ChildSpec("w", StartFails, kwargs={"journal": journal}))
    assert info.value.child == "w"
    assert isinstance(info.value.cause, OSError)
    failed = probe.expect(StartupFailed, name="w")
    assert "OSError" in failed.error
    assert "w" not in actor_system.names()
    actor_system.settle()
    assert events_of(probe, ChildRestarting) == []  # a failed spawn is not retried
    ref = actor_system.spawn(ChildSpec("w", Worker, kwargs={"journal": journal}))
    assert ref.ask("second try", timeout=1) == "second try"
    assert actor_system.healthy


def test_a_failing_nested_spawn_leaves_nothing_behind(
    actor_system: ActorSystem, journal: Journal
) -> None:
    bad = sub(
        "team", [spec("ok", journal), spec("bad", journal, actor=StartFails, depends_on=("ok",))]
    )
    with pytest.raises(StartupError) as info:
        actor_system.spawn(bad)
    assert info.value.child == "bad"  # the innermost child that failed
    assert journal.lifecycle() == ["start ok", "stop ok"]
    assert not {"team", "ok", "bad"} & set(actor_system.names())
    actor_system.spawn(sub("team", [spec("ok", journal)]))
    assert actor_system.ask("ok", "again") == "again"
