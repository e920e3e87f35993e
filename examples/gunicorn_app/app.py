"""A Flask app under gunicorn: one system per worker, all on one SQLite file.

The system is *made* at import and *started* in each worker after the fork
(``gunicorn.conf.py`` beside this file: ``post_fork`` starts it,
``worker_exit`` stops it). This works with and without ``--preload``. A
system started at import and then forked (``--preload``) would have no
threads in the workers: every use there raises ``SystemForkedError``
naming this fix, and ``/health`` answers 503.

- ``POST /jobs/<job_id>`` asks the ``recorder`` actor, which writes a row
  (job, worker pid) into the shared database.
- ``POST /downloads/<name>`` submits a download to the ``files`` source,
  which creates ``files/<name>`` (exclusively: a second run would fail)
  and appends ``<name> <pid>`` to ``runs.log``.
- ``GET /health``: 200 with ``{"healthy": true, "pid": ...}``, or 503.

Where files go: the folder in ``$APP_DATA`` (default: the working directory).

Run: ``cd examples/gunicorn_app && APP_DATA=/tmp/app gunicorn -c gunicorn.conf.py app:app``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import text

from regisseur.actors import Actor, ActorSystem, SystemForkedError
from regisseur.actors.downloads import DownloadSource
from regisseur.supervision import ChildSpec


class Recorder(Actor):
    """Writes one row per job, and when its worker's system starts and stops."""

    def on_start(self) -> None:
        self.connection.execute(
            text("CREATE TABLE IF NOT EXISTS jobs (job TEXT NOT NULL, pid INTEGER NOT NULL)")
        )
        self._row("<started>")

    def on_receive(self, message: Any) -> Any:
        self._row(str(message))
        return os.getpid()

    def on_stop(self) -> None:
        self._row("<stopped>")

    def _row(self, job: str) -> None:
        self.connection.execute(
            text("INSERT INTO jobs (job, pid) VALUES (:job, :pid)"),
            {"job": job, "pid": os.getpid()},
        )
        self.connection.commit()


def make_system(data: Path) -> ActorSystem:
    """The worker's system (not started): a recorder and a "files" source."""
    (data / "files").mkdir(parents=True, exist_ok=True)

    def fetch(download_id: str, target_id: str, name: str) -> str:
        path = data / "files" / name
        with path.open("x") as file:  # "x": a download run twice fails here
            file.write(target_id)
        with (data / "runs.log").open("a") as log:
            log.write(f"{target_id} {os.getpid()}\n")
        return str(path)

    return ActorSystem(
        [ChildSpec("recorder", Recorder)],
        database_url=f"sqlite:///{data / 'app.db'}",
        download_sources=[DownloadSource("files", fetch, concurrency=2)],
    )


def create_app(system: ActorSystem) -> Flask:
    app = Flask(__name__)

    @app.post("/jobs/<job_id>")
    def add_job(job_id: str) -> Any:
        return jsonify(job=job_id, pid=system.ask("recorder", job_id, timeout=5))

    @app.post("/downloads/<name>")
    def submit(name: str) -> Any:
        return jsonify(id=system.downloads.submit("files", name, f"{name}.txt"))

    @app.get("/health")
    def health() -> Any:
        report = system.health()
        body = {"healthy": report.healthy, "pid": os.getpid(), "error": report.last_error}
        return jsonify(body), 200 if report.healthy else 503

    @app.errorhandler(SystemForkedError)
    def forked(error: SystemForkedError) -> Any:
        return jsonify(error=str(error)), 500

    return app


system = make_system(Path(os.environ.get("APP_DATA", ".")))
app = create_app(system)
