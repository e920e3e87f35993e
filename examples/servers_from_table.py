"""One server actor per row of a ``servers`` table, added and removed at runtime.

Each ``Poller`` writes a heartbeat row through its own ``self.db`` session
(opened lazily on the actor's thread, closed on stop). ``sync`` makes the
running actors match the table: ``system.spawn`` for a new row,
``system.stop_child`` for a deleted one. A ``ManualClock`` drives the
polling; the script ends with the health tree and the heartbeat counts.

Run: ``.venv/bin/python examples/servers_from_table.py``
"""

from __future__ import annotations

import tempfile

from sqlalchemy import create_engine, text

from regisseur.actors import ActorSystem, ManualClock, ServerActor
from regisseur.messages import HealthReport
from regisseur.supervision import ChildSpec


class Poller(ServerActor):
    def run_loop(self) -> None:  # right after start, then every `interval` seconds
        self.db.execute(
            text("INSERT INTO heartbeats (server, at) VALUES (:s, :t)"),
            {"s": self.server_id, "t": self.system.clock.now()},
        )
        self.db.commit()


def sync(system: ActorSystem, rows: list[str]) -> None:
    """Spawn an actor per new row, stop the actors whose row is gone."""
    running = {n.removeprefix("server-") for n in system.names() if n.startswith("server-")}
    for name in sorted(set(rows) - running):
        system.spawn(ChildSpec(f"server-{name}", Poller, args=(name,), kwargs={"interval": 10}))
        print(f"spawned server-{name}")
    for name in sorted(running - set(rows)):
        system.stop_child(f"server-{name}")
        print(f"stopped server-{name}")


def show(report: HealthReport, depth: int = 0) -> None:
    print(f"{'  ' * depth}{report.name} ({report.status})")
    for child in report.children:
        show(child, depth + 1)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="servers-") as folder:
        url = f"sqlite:///{folder}/app.db"  # the app's tables and the system's, one file
        app_db = create_engine(url)
        with app_db.begin() as db:
            db.execute(text("CREATE TABLE servers (name TEXT PRIMARY KEY)"))
            db.execute(text("CREATE TABLE heartbeats (server TEXT, at REAL)"))
            db.execute(text("INSERT INTO servers VALUES ('eu-1'), ('us-1')"))

        def rows() -> list[str]:
            with app_db.connect() as db:
                return [r[0] for r in db.execute(text("SELECT name FROM servers"))]

        clock = ManualClock()
        with ActorSystem(clock=clock, database_url=url) as system:
            sync(system, rows())
            system.settle()  # each actor has run once (right after its start)
            clock.advance(10)
            system.settle()
            with app_db.begin() as db:  # the table changes at runtime
                db.execute(text("INSERT INTO servers VALUES ('ap-1')"))
                db.execute(text("DELETE FROM servers WHERE name = 'us-1'"))
            sync(system, rows())
            system.settle()
            clock.advance(10)
            system.settle()
            show(system.health())
        with app_db.connect() as db:
            beats = db.execute(
                text("SELECT server, COUNT(*) FROM heartbeats GROUP BY server ORDER BY server")
            ).all()
        print("heartbeats:", ", ".join(f"{server}={count}" for server, count in beats))
        app_db.dispose()


if __name__ == "__main__":
    main()
