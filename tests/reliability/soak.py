"""A download soak: submit continuously while faults hit the download actors.

Shared by ``tests/reliability/test_soak.py`` (a few seconds in CI) and
``bench/bench_soak.py`` (minutes). What one run (:func:`run`) does:

1. starts a system on a real clock and a SQLite file, with two no-op
   download sources (each download reports progress once, then succeeds);
2. a submitter thread submits downloads at ``submit_rate`` per second
   (holding back while ``max_outstanding`` are unfinished) and keeps every
   id ``submit()`` returned;
3. a fault thread injects one fault every ``fault_every`` seconds through
   ``FaultInjector``, into the keeper, a queue or a worker chosen at random:
   a crash of the next message, a crash of the keeper's next submit, or a
   killed thread. A fault strikes an actor that runs: a target that is
   down (waiting for its restart) or still has a fault waiting to fire is
   skipped. Crash rules piled up on a down actor would fail each of its
   restarts at once and stretch its backoff to the maximum, which is what
   backoff is for (an actor that fails right after every restart), not
   what this run measures;
4. after ``duration`` seconds the faults stop (those not fired are
   cleared) and so do the submits; the run waits up to ``drain_timeout``
   for every id to end;
5. counts: every id that reached a terminal state, by state; ids the
   keeper does not know (lost) and ids still unfinished (stuck). The
   longest stall is the longest time, while faults were injected, with
   work outstanding and no download finishing.

By default on the real clock: start timeouts and restart backoffs are what
made downloads stall for minutes under faults. With ``speed`` the system
runs on a ``ManualClock`` that a ticker thread moves ``speed`` times faster
than real time, so that restart backoffs (2 s and more) pass quickly and a
short run sees many restarts; start timeouts stay in real seconds. Stalls
are always measured in real seconds.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regisseur.actors import ActorSystem, ManualClock
from regisseur.actors._cell import CellState
from regisseur.actors.clock import monotonic
from regisseur.actors.downloads import DownloadSource
from regisseur.messages import ChildGaveUp, ChildRestarted, StartupFailed, SystemFailed
from regisseur.messages.downloads import DownloadStateChanged, QueueDownload
from regisseur.supervision.testing import FaultInjector

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SoakConfig", "SoakReport", "run"]

KEEPER = "download-keeper"
SOURCES = (("a", 2), ("b", 3))  # name, concurrency
_TICK = 0.005  # real seconds between two moves of the manual clock


@dataclass(frozen=True)
class SoakConfig:
    """What one soak run does; the fault schedule comes from ``seed``."""

    seed: int = 1
    duration: float = 4.0
    """Seconds of submits under faults."""
    fault_every: float = 0.1
    """Seconds between two injected faults."""
    inject: bool = True
    """False: the same run without faults (a baseline)."""
    submit_rate: float = 400.0
    """Submits per second (while fewer than ``max_outstanding`` are unfinished)."""
    max_outstanding: int = 2_000
    drain_timeout: float = 60.0
    """Seconds the run waits, after the faults, for every download to end."""
    speed: float | None = None
    """None: the real clock; else a manual clock moved this many times faster."""
    weights: tuple[tuple[str, int], ...] = (("crash", 6), ("crash submit", 2), ("kill", 2))
    """Kinds of fault; a ``crash submit`` always goes to the keeper."""
    target_weights: tuple[tuple[str, int], ...] = (("keeper", 1), ("queue", 2), ("worker", 5))


@dataclass
class SoakReport:
    """What a soak run did and found (``problems`` empty: nothing lost)."""

    config: SoakConfig
    submitted: int = 0
    terminal: int = 0
    states: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    skipped_faults: int = 0  # the target was down (a fault waiting to fire) at that moment
    restarts: Counter[str] = field(default_factory=Counter)
    longest_stall: float = 0.0
    stall_at: float = 0.0  # seconds after the start of the faults
    fault_time: float = 0.0
    drain_time: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Downloads ended per second, from the first fault to the end of the drain."""
        total = self.fault_time + self.drain_time
        return self.terminal / total if total else 0.0

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items())) or "none"
        restarts = ", ".join(f"{k} {v}" for k, v in sorted(self.restarts.items())) or "none"
        return "\n".join(
            [
                f"seed            {self.config.seed}",
                f"faults injected {sum(self.faults.values())} ({faults}); "
                f"{self.skipped_faults} skipped (target down)",
                f"restarts        {sum(self.restarts.values())} ({restarts})",
                f"submitted       {self.submitted}",
                f"terminal        {self.terminal} ({states})",
                f"lost            {len(self.lost)}",
                f"stuck           {len(self.stuck)}",
                f"longest stall   {self.longest_stall:.2f} s "
                f"(at {self.stall_at:.1f} s of {self.fault_time:.1f} s under faults)",
                f"drain           {self.drain_time:.2f} s",
                f"throughput      {self.rate:,.0f} downloads/s ended",
                f"problems        {len(self.problems)}",
            ]
        )


def _noop(download_id: str, target_id: str, name: str, context: Any) -> str:
    context.report(1, 1)
    return f"/soak/{name}"


class _Tally:
    """Terminal events by id, and when downloads ended (event bus thread)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ended: dict[str, str] = {}
        self.times: list[float] = []

    def __call__(self, event: Any) -> None:
        if isinstance(event, DownloadStateChanged) and event.record.terminal:
            with self.cond:
                if event.record.id not in self.ended:
                    self.ended[event.record.id] = event.record.state.value
                    self.times.append(monotonic())
                self.cond.notify_all()


class _Submitter:
    """Submits at a steady rate until told to stop (``regisseur:soak-submit``)."""

    def __init__(self, system: ActorSystem, tally: _Tally, config: SoakConfig) -> None:
        self.system = system
        self.tally = tally
        self.config = config
        self.ids: list[str] = []
        self.refused: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        interval = 1.0 / self.config.submit_rate
        next_at = monotonic()
        n = 0
        while not self.stop.is_set():
            with self.tally.cond:
                outstanding = len(self.ids) - len(self.tally.ended)
            if outstanding >= self.config.max_outstanding:
                self.stop.wait(interval)
                continue
            source = SOURCES[n % len(SOURCES)][0]
            try:
                self.ids.append(self.system.downloads.submit(source, f"t{n}", f"f{n}"))
            except Exception as exc:  # a refused submit is a finding, not a crash
                self.refused.append(f"{type(exc).__name__}: {exc}")
            n += 1
            next_at += interval
            delay = next_at - monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_at = monotonic()  # behind: do not burst to catch up


class _Faults:
    """Injects one fault every ``fault_every`` seconds (``regisseur:soak-faults``)."""

    def __init__(self, system: ActorSystem, config: SoakConfig) -> None:
        self.system = system
        self.injector = FaultInjector(system)
        self.config = config
        self.rng = random.Random(config.seed)
        self.injected: Counter[str] = Counter()
        self.skipped = 0
        self.stop = threading.Event()
        self.targets: dict[str, list[str]] = {
            "keeper": [KEEPER],
            "queue": [f"source:{name}.queue" for name, _ in SOURCES],
            "worker": [f"source:{name}.worker-{i}" for name, n in SOURCES for i in range(1, n + 1)],
        }

    def run(self) -> None:
        if not self.config.inject:
            return
        kinds = [k for k, _ in self.config.weights]
        kind_weights = [w for _, w in self.config.weights]
        groups = [g for g, _ in self.config.target_weights]
        group_weights = [w for _, w in self.config.target_weights]
        while not self.stop.wait(self.config.fault_every):
            kind = self.rng.choices(kinds, kind_weights)[0]
            group = (
                "keeper" if kind == "crash submit" else self.rng.choices(groups, group_weights)[0]
            )
            target = self.rng.choice(self.targets[group])
            try:
                if not self._running(target) or self.injector.pending(target):
                    self.skipped += 1
                    continue
                if kind == "kill":
                    self.injector.kill(target)
                elif kind == "crash submit":
                    self.injector.crash(target, message_type=QueueDownload)
                else:
                    self.injector.crash(target)
            except RuntimeError:  # stopped right now (its subtree is replaced)
                self.skipped += 1
                continue
            self.injected[f"{kind} ({group})"] += 1

    def _running(self, name: str) -> bool:
        cell = self.system.registry.lookup(name)
        return cell is not None and cell.state is CellState.RUNNING

    def clear(self) -> None:
        for names in self.targets.values():
            for name in names:
                try:
                    self.injector.clear(name)
                except RuntimeError:
                    continue


def run(config: SoakConfig, directory: Path) -> SoakReport:
    """One soak run with its database in ``directory``; never raises for a finding."""
    report = SoakReport(config)
    tally = _Tally()
    sources = [_source(name, n) for name, n in SOURCES]
    clock = ManualClock() if config.speed is not None else None
    system = ActorSystem(
        clock=clock,
        database_url=f"sqlite:///{directory / f'soak{config.seed}.db'}",
        download_sources=sources,
        # The root restarts the downloads subtree however often it escalates:
        # the soak is about the downloads, not about the root's patience.
        max_restarts=1_000_000,
        within=1.0,
        name=f"soak{config.seed}",
    )
    system.start()
    events: list[Any] = []
    submitter = _Submitter(system, tally, config)
    faults = _Faults(system, config)
    threads = [
        threading.Thread(target=submitter.run, name="regisseur:soak-submit", daemon=True),
        threading.Thread(target=faults.run, name="regisseur:soak-faults", daemon=True),
    ]
    ticking = threading.Event()
    if clock is not None and config.speed is not None:
        speed = config.speed

        def tick() -> None:
            while not ticking.wait(_TICK):
                clock.advance(_TICK * speed)

        threads.append(threading.Thread(target=tick, name="regisseur:soak-clock", daemon=True))
    try:
        system.events.subscribe(tally, DownloadStateChanged)
        watched = (ChildRestarted, ChildGaveUp, StartupFailed, SystemFailed)
        system.events.subscribe(events.append, *watched)
        began = monotonic()
        for thread in threads:
            thread.start()
        submitter.stop.wait(config.duration)  # the run itself: nothing to wait for
        faults.stop.set()
        submitter.stop.set()
        for thread in threads[:2]:
            thread.join(10.0)
        faults.clear()
        ended_faults = monotonic()
        report.fault_time = ended_faults - began
        ids = list(submitter.ids)
        with tally.cond:
            tally.cond.wait_for(
                lambda: all(i in tally.ended for i in ids), timeout=config.drain_timeout
            )
        report.drain_time = monotonic() - ended_faults
        _count(report, system, tally, ids, began, ended_faults)
        report.faults = faults.injected
        report.skipped_faults = faults.skipped
        report.problems.extend(f"submit refused: {r}" for r in submitter.refused[:10])
        for event in list(events):
            if isinstance(event, ChildRestarted):
                report.restarts[_kind_of(event.name)] += 1
            else:
                report.problems.append(f"{type(event).__name__}: {event}")
        if not system.running:
            report.problems.append("the system is not running at the end")
    finally:
        faults.stop.set()
        submitter.stop.set()
        ticking.set()
        system.stop()
    for thread in threads:
        thread.join(5.0)
    return report


def _source(name: str, concurrency: int) -> DownloadSource:
    return DownloadSource(name, _noop, concurrency=concurrency)


def _kind_of(name: str) -> str:
    if name == KEEPER:
        return "keeper"
    if name == "downloads":
        return "downloads subtree"
    if name.endswith(".queue"):
        return "queue"
    if ".worker-" in name:
        return "worker"
    return "supervisor"


def _count(
    report: SoakReport,
    system: ActorSystem,
    tally: _Tally,
    ids: list[str],
    began: float,
    ended_faults: float,
) -> None:
    report.submitted = len(ids)
    with tally.cond:
        ended = dict(tally.ended)
        times = sorted(tally.times)
    for download_id in ids:
        state = ended.get(download_id)
        if state is not None:
            report.terminal += 1
            report.states[state] += 1
            continue
        try:
            record = system.downloads.status(download_id)
        except Exception as exc:  # the keeper does not answer: a finding
            report.problems.append(f"status({download_id}) failed: {exc!r}")
            continue
        if record is None:
            report.lost.append(download_id)
        elif record.terminal:  # ended before the subscription saw it (not expected)
            report.terminal += 1
            report.states[record.state.value] += 1
        else:
            report.stuck.append(download_id)
    if report.lost:
        report.problems.append(f"{len(report.lost)} submitted download(s) lost: {report.lost[:5]}")
    if report.stuck:
        report.problems.append(f"{len(report.stuck)} download(s) never ended: {report.stuck[:5]}")
    # The longest stretch under faults with no download ending.
    marks = [began, *(t for t in times if began <= t <= ended_faults), ended_faults]
    gaps = [(b - a, a - began) for a, b in zip(marks, marks[1:], strict=False)]
    report.longest_stall, report.stall_at = max(gaps)
