"""The system's database, resource stages and the single-instance guard."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError

from regisseur.actors import Actor, ActorSystem, ManualClock, resource
from regisseur.actors.clock import wall_time
from regisseur.actors.database import Database, DatabaseError
from regisseur.actors.lease import InstanceHeldError, lease_table
from regisseur.messages import StartupFailed
from regisseur.supervision import ChildSpec, StartupError


def _url(tmp_path: Path, name: str = "app.db") -> str:
    return f"sqlite:///{tmp_path / name}"


class Writer(Actor):
    def on_receive(self, message: Any) -> Any:
        self.db.execute(text("CREATE TABLE IF NOT EXISTS t (v TEXT)"))
        self.db.execute(text("INSERT INTO t VALUES (:v)"), {"v": message})
        self.db.commit()
        return id(self.db)


def test_sqlite_runs_in_wal_mode_and_actors_write_through_their_sessions(
    system_factory: Any,
) -> None:
    system = system_factory([ChildSpec("w1", Writer), ChildSpec("w2", Writer)])
    first = system.ask("w1", "a")
    assert system.ask("w1", "b") == first  # one session per actor, reused
    assert system.ask("w2", "c") != first
    with system.database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        rows = connection.execute(text("SELECT v FROM t ORDER BY v")).scalars().all()
    assert rows == ["a", "b", "c"]


@pytest.mark.parametrize(
    "url",
    ["nosuchdialect://x/y", "sqlite:////definitely/not/a/dir/app.db"],
)
def test_a_bad_or_unreachable_database_fails_the_start_naming_the_stage(url: str) -> None:
    system = ActorSystem([ChildSpec("w", Writer)], clock=ManualClock(), database_url=url)
    with pytest.raises(StartupError, match="'database' failed to start") as info:
        system.start()
    assert info.value.child == "database"
    assert system.threads() == []


def test_database_url_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="database_url must be a str"):
        ActorSystem(database_url=42)  # type: ignore[arg-type]


def test_self_db_without_a_database_is_a_clear_error() -> None:
    with ActorSystem([ChildSpec("w", Writer)], clock=ManualClock(), database_url=None) as system:
        with pytest.raises(RuntimeError, match="no database_url"):
            system.ask("w", "x")


class UsesCache(Actor):
    def on_receive(self, message: Any) -> Any:
        return self.resource("cache")[message]


def test_resources_open_before_dependents_and_close_after(tmp_path: Path) -> None:
    log: list[str] = []

    def open_cache() -> dict[str, int]:
        log.append("open")
        return {"answer": 42}

    specs = [
        resource("cache", open_cache, close=lambda c: log.append("close"), check=bool),
        ChildSpec("user", UsesCache, depends_on=("cache",)),
    ]
    with ActorSystem(specs, clock=ManualClock(), database_url=_url(tmp_path)) as system:
        assert system.ask("user", "answer") == 42
        assert system.resource("cache") == {"answer": 42}
        report = system.health().find("cache")
        assert report is not None
        assert report.healthy
        with pytest.raises(LookupError, match="'nope' is not running.*cache"):
            system.resource("nope")
    assert log == ["open", "close"]
    with pytest.raises(LookupError):
        system.resource("cache")


class Broken(Actor):
    def on_start(self) -> None:
        raise ConnectionError("upstream down")


def test_a_failed_stage_rolls_back_resources_in_reverse_order(tmp_path: Path) -> None:
    log: list[str] = []
    specs = [
        resource(
            "engine", lambda: log.append("open engine"), close=lambda _: log.append("close engine")
        ),
        resource(
            "session",
            lambda: log.append("open session"),
            close=lambda _: log.append("close session"),
            depends_on=("engine",),
        ),
        ChildSpec("api", Broken, depends_on=("session",)),
    ]
    system = ActorSystem(specs, clock=ManualClock(), database_url=_url(tmp_path))
    events: list[Any] = []
    system.events.subscribe(events.append, StartupFailed)
    with pytest.raises(StartupError, match="'api' failed to start: ConnectionError") as info:
        system.start()
    assert info.value.rolled_back == ("session", "engine")
    assert log == ["open engine", "open session", "close session", "close engine"]
    assert system.threads() == []


def test_an_unhealthy_resource_fails_the_start(tmp_path: Path) -> None:
    system = ActorSystem(
        [resource("flaky", lambda: None, check=lambda _: False)],
        clock=ManualClock(),
        database_url=_url(tmp_path),
    )
    with pytest.raises(StartupError, match="'flaky'.*not healthy"):
        system.start()


def test_resource_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="close must be callable"):
        resource("x", lambda: 1, close="nope")  # type: ignore[arg-type]


# -- single-instance guard ---------------------------------------------------


def test_a_second_system_on_the_same_database_is_refused_until_the_first_stops(
    tmp_path: Path,
) -> None:
    url = _url(tmp_path)
    first = ActorSystem(clock=ManualClock(), database_url=url, single_instance=True, name="app")
    first.start()
    try:
        second = ActorSystem(
            clock=ManualClock(), database_url=url, single_instance=True, name="app"
        )
        with pytest.raises(StartupError, match="single-instance guard.*held by .*:app:") as info:
            second.start()
        assert isinstance(info.value.cause, InstanceHeldError)
        assert str(os.getpid()) in info.value.cause.holder
        assert second.threads() == []
        report = first.health().find("single-instance guard")
        assert report is not None
        assert report.healthy
    finally:
        first.stop()
    third = ActorSystem(clock=ManualClock(), database_url=url, single_instance=True, name="app")
    third.start()
    third.stop()


def test_an_expired_lease_of_a_crashed_holder_is_taken_over(tmp_path: Path) -> None:
    url = _url(tmp_path)
    probe = ActorSystem(clock=ManualClock(), database_url=url, single_instance=True, name="app")
    probe.start()  # creates the table
    probe.stop()
    assert probe.database is not None
    probe.database.open()
    with probe.database.engine.begin() as connection:
        connection.execute(
            insert(lease_table).values(
                name="app",
                holder="crashed-host:1:app:dead",
                acquired_at=0.0,
                expires_at=wall_time() - 1,
            )
        )
    probe.database.close()
    system = ActorSystem(clock=ManualClock(), database_url=url, single_instance=True, name="app")
    system.start()
    system.stop()


_HOLDER = textwrap.dedent(
    """
    import sys
    from regisseur.actors import ActorSystem
    system = ActorSystem(database_url=sys.argv[1], single_instance=True, lease_ttl=0.5, name="app")
    system.start()
    print("ready", flush=True)
    sys.stdin.read()  # hold until killed
    """
)


@pytest.mark.timeout(30)
def test_the_guard_works_across_processes_and_survives_a_sigkill(tmp_path: Path) -> None:
    url = _url(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        second = ActorSystem(
            clock=ManualClock(), database_url=url, single_instance=True, name="app"
        )
        with pytest.raises(StartupError) as info:
            second.start()
        cause = info.value.cause
        assert isinstance(cause, InstanceHeldError)
        assert f":{holder.pid}:app:" in cause.holder
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        # The killed holder stops renewing; its lease (0.5 s) expires on the wall clock.
        threading.Event().wait(cause.expires_in + 0.1)
        third = ActorSystem(clock=ManualClock(), database_url=url, single_instance=True, name="app")
        third.start()
        third.stop()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


class CoreWriter(Actor):
    """Writes with Core statements through ``self.connection``."""

    def on_start(self) -> None:
        self.connection.execute(text("CREATE TABLE IF NOT EXISTS c (v TEXT)"))
        self.connection.commit()

    def on_receive(self, message: Any) -> Any:
        self.connection.execute(text("INSERT INTO c VALUES (:v)"), {"v": message})
        if message == "boom":
            raise ValueError("after an uncommitted insert")
        self.connection.commit()
        return id(self.connection)

    def on_stop(self) -> None:
        # Both handles are still open in on_stop: they close after it.
        self.connection.execute(text("INSERT INTO c VALUES ('stopped')"))
        self.connection.commit()
        self.db.execute(text("INSERT INTO c VALUES ('stopped via db')"))
        self.db.commit()


def test_self_connection_is_per_actor_rolled_back_on_failure_and_usable_in_on_stop(
    tmp_path: Path,
) -> None:
    url = _url(tmp_path)
    clock = ManualClock()
    system = ActorSystem([ChildSpec("w", CoreWriter)], clock=clock, database_url=url)
    with system:
        first = system.ask("w", "a")
        assert system.ask("w", "b") == first  # one connection, reused
        with pytest.raises(ValueError, match="uncommitted"):
            system.ask("w", "boom")
        system.settle()  # the supervisor has scheduled the restart
        clock.advance(60)  # past its backoff
        system.ask("w", "c")  # the restarted actor writes again
        assert system.database is not None
        engine = system.database.engine
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT v FROM c")).scalars().all()
    # "boom" was rolled back; each incarnation's on_stop wrote through both handles.
    assert sorted(rows) == sorted(
        ["a", "b", "c", "stopped", "stopped via db", "stopped", "stopped via db"]
    )
    assert engine.pool.checkedout() == 0


def test_self_connection_from_another_thread_or_without_a_database_is_a_clear_error(
    tmp_path: Path,
) -> None:
    class Leaky(Actor):
        def on_receive(self, message: Any) -> Any:
            if message == "here":
                return self.connection
            caught: list[BaseException] = []

            def use() -> None:
                try:
                    self.connection  # noqa: B018 - the access is the test
                except RuntimeError as exc:
                    caught.append(exc)

            thread = threading.Thread(target=use)
            thread.start()
            thread.join(5)
            return str(caught[0]) if caught else "no error"

    with ActorSystem([ChildSpec("w", Leaky)], clock=ManualClock(), database_url=None) as system:
        with pytest.raises(RuntimeError, match="self.connection but the system has no database"):
            system.ask("w", "here")
    url = _url(tmp_path)
    with ActorSystem([ChildSpec("w", Leaky)], clock=ManualClock(), database_url=url) as system:
        assert system.ask("w", "thread") == (
            "self.connection of 'w' may only be used on that actor's own thread"
        )


def test_a_new_sqlite_file_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    """Records hold URLs (passwords included): the files are the user's alone."""
    from regisseur.actors.database import Database

    old = os.umask(0o022)
    try:
        database = Database(_url(tmp_path))
        database.open()
        try:
            with database.engine.begin() as connection:
                connection.execute(text("CREATE TABLE t (v TEXT)"))
                connection.execute(text("INSERT INTO t VALUES ('x')"))
            modes = {path.name: oct(path.stat().st_mode & 0o777) for path in tmp_path.iterdir()}
        finally:
            database.close()
    finally:
        os.umask(old)
    assert modes == {"app.db": "0o600", "app.db-wal": "0o600", "app.db-shm": "0o600"}


# -- the file SQLite opens is the file the system opened -----------------------------


def _other_application(path: Path) -> Path:
    """Another application's SQLite file, in rollback-journal mode."""
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE theirs (x)")
    other.close()
    return path


def _untouched(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as other:
        tables = [row[0] for row in other.execute("SELECT name FROM sqlite_master")]
        mode = other.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == ["theirs"]
    assert mode == "delete"


def _swapped_then_refused(database: Database, ours: Path, theirs: Path) -> None:
    """Put a link to ``theirs`` in place of ``ours``: the next connection is refused."""
    ours.unlink()
    ours.symlink_to(theirs)
    database.engine.dispose()  # the next use opens a new connection
    with pytest.raises(DatabaseError, match="SQLite opened .*theirs.db"):
        database.engine.connect()


def test_a_link_put_in_place_of_the_database_is_refused_at_the_next_connection(
    tmp_path: Path,
) -> None:
    theirs = _other_application(tmp_path / "theirs.db")
    ours = tmp_path / "ours.db"
    database = Database(f"sqlite:///{ours}")
    database.open()
    try:
        _swapped_then_refused(database, ours, theirs)
    finally:
        database.close()
    _untouched(theirs)


def test_nofollow_refuses_a_link_when_the_system_opens_the_database(tmp_path: Path) -> None:
    theirs = _other_application(tmp_path / "theirs.db")
    (tmp_path / "ours.db").symlink_to(theirs)
    with pytest.raises(DatabaseError, match="symbolic link"):
        Database(f"sqlite:///{tmp_path / 'ours.db'}?nofollow=1").open()
    _untouched(theirs)
    with pytest.raises(DatabaseError, match="nofollow must be 1 or true, got 'yes'"):
        Database(f"sqlite:///{tmp_path / 'x.db'}?nofollow=yes").open()


def test_a_database_configured_as_a_link_keeps_working(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "app.db").symlink_to(real / "app.db")
    with ActorSystem(database_url=f"sqlite:///{tmp_path / 'app.db'}") as system:
        assert system.database is not None
        system.database.engine.dispose()
        with system.database.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    assert (real / "app.db").stat().st_size > 0
    nofollow = Database(f"sqlite:///{tmp_path / 'plain.db'}?nofollow=1")
    nofollow.open()
    nofollow.close()


def test_a_directory_name_that_is_not_utf8_is_opened_and_still_checked(tmp_path: Path) -> None:
    """Before: SQLite's name of the file could not be decoded (and the URL
    not shown): every connection failed in a Latin-1 ``café`` folder."""
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    folder.mkdir()
    ours = folder / "ours.db"
    database = Database(f"sqlite:///{ours}")
    database.open()
    try:
        assert database.check()
        assert "caf" in database.url
        theirs = _other_application(tmp_path / "theirs.db")
        _swapped_then_refused(database, ours, theirs)
    finally:
        database.close()
    _untouched(theirs)


def test_a_dangling_link_put_in_place_of_the_database_creates_nothing(tmp_path: Path) -> None:
    """Before: SQLite created the link's target (any file this user may
    write) before the connection's check refused it."""
    ours = tmp_path / "ours.db"
    target = tmp_path / "elsewhere" / "created.db"
    target.parent.mkdir()
    database = Database(f"sqlite:///{ours}")
    database.open()
    try:
        ours.unlink()
        ours.symlink_to(target)
        database.engine.dispose()
        with pytest.raises((DatabaseError, OperationalError)):
            database.engine.connect()
    finally:
        database.close()
    assert not target.exists()
    assert not list(target.parent.iterdir())


@pytest.mark.parametrize(
    ("option", "name"),
    [("?uri=true", "app.db"), ("?cache=shared&uri=true", "app.db?cache=shared")],
)
def test_a_url_with_sqlites_own_uri_options_still_opens(
    tmp_path: Path, option: str, name: str
) -> None:
    """Before: refused ('SQLite opened …app.db?cache=shared instead of
    …app.db'): with uri=true SQLite names the file itself, as SQLAlchemy
    hands it over (here a file of that very name, as before the check)."""
    database = Database(f"sqlite:///{tmp_path / 'app.db'}{option}")
    database.open()
    try:
        assert database.check()
    finally:
        database.close()
    assert (tmp_path / name).is_file()


@pytest.mark.parametrize(
    "url", ["sqlite://?nofollow=1", "sqlite:///file:app.db?uri=true&nofollow=1"]
)
def test_nofollow_where_it_cannot_apply_is_refused_not_ignored(url: str) -> None:
    with pytest.raises(DatabaseError, match="nofollow is for a file path"):
        Database(url).open()


@pytest.mark.parametrize("name", ["a#b c&d=e.db", "100%.db", "plain.db"])
def test_a_file_name_with_uri_characters_opens_as_itself(tmp_path: Path, name: str) -> None:
    database = Database(f"sqlite:///{tmp_path / name}?timeout=5")
    database.open()
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x)"))
    finally:
        database.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
