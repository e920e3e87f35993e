"""A short demo of the runtime: start, messages, a crash, a restart.

It runs on the real clock with a small backoff so it finishes in about a
second, printing every supervision event from the system's event bus.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from typing import Any

from actors.actor import Actor
from actors.log import configure_logging
from actors.system import ActorSystem
from messages import ChildRestarted, DeadLetter, Event
from supervision import Backoff, ChildSpec, FatalError

__all__ = ["run_demo"]


class Greeter(Actor):
    """Counts greetings; fresh state after every restart."""

    def __init__(self, greeting: str) -> None:
        super().__init__()
        self.greeting = greeting
        self.count = 0

    def on_start(self) -> None:
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        match message:
            case ("greet", who):
                self.count += 1
                return f"{self.greeting}, {who}! (greeting #{self.count})"
            case "crash":
                raise RuntimeError("the greeter tripped over a cable")
            case "fatal":
                raise FatalError("the greeter lost its voice for good")
            case _:
                return super().on_receive(message)


def run_demo(*, json_logs: bool = False, out: Any = None) -> int:
    """Run the demo, printing to ``out`` (stdout); return the exit code."""
    out = out or sys.stdout
    if json_logs:
        configure_logging(logging.INFO, json=True, stream=out)

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    restarted = threading.Event()

    def on_event(event: Event) -> None:
        if not isinstance(event, DeadLetter):
            say(f"  event: {event}")
        if isinstance(event, ChildRestarted):
            restarted.set()

    specs = [
        ChildSpec("greeter", Greeter, args=("Hello",), backoff=Backoff(0.2, 2.0, 1.0)),
        ChildSpec("shouter", Greeter, args=("HEY",), depends_on=("greeter",)),
    ]
    say("regisseur demo: two supervised actors; 'shouter' depends on 'greeter'")
    folder = tempfile.mkdtemp(prefix="regisseur-demo-")
    database_url = f"sqlite:///{os.path.join(folder, 'demo.db')}"
    with ActorSystem(specs, name="demo", database_url=database_url) as system:
        system.events.subscribe(on_event)
        say(system.ask("greeter", ("greet", "world")))
        say(system.ask("shouter", ("greet", "world")))
        say("crashing 'greeter' (the supervisor restarts it after a 0.2 s backoff) ...")
        system.tell("greeter", "crash")
        system.tell("greeter", ("greet", "again"))  # waits in the mailbox meanwhile
        if not restarted.wait(10):
            say("greeter was not restarted in time")
            return 1
        say(system.ask("greeter", ("greet", "after the restart")))
        say("a FatalError stops 'shouter' for good; 'greeter' keeps running ...")
        system.tell("shouter", "fatal")
        system.settle(5)
        health = system.health()
        for report in health.children:
            say(
                f"  health: {report.name}: {report.status}, restarts={report.restarts}, "
                f"last_error={report.last_error!r}"
            )
        say(system.ask("greeter", ("greet", "still here")))
    shutil.rmtree(folder, ignore_errors=True)
    say("system stopped; no thread left behind")
    return 0
