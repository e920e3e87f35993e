"""A seeded chaos run: a big supervision tree, many senders, random faults.

Shared by ``tests/reliability/test_chaos.py`` (short runs in CI) and
``bench/bench_chaos.py`` (long runs whose figures go into the README).

What one run does (:func:`run`):

1. builds a tree from the seed: top-level groups under the root, each a
   :class:`~supervision.Supervisor` with one of the three strategies,
   nested two or three deep; inside ``REST_FOR_ONE`` groups children
   (workers and nested supervisors) depend on earlier siblings. Every child
   is ``PERMANENT``; backoff is zero or a few ticks of the manual clock, and
   ``max_restarts`` is so high that intensity never escalates;
2. starts several sender threads that ``tell`` (by name or through a kept
   ``ActorRef``) or, now and then, ``ask`` ``Msg(sender, seq)`` to random
   workers. At seeded positions of their streams the senders inject faults
   through ``FaultInjector``: ``crash``, ``fail_start`` followed by a crash
   that triggers the restart, ``hang`` (on the ``ManualClock``) and ``kill``
   (of a worker, of a worker that was just made to hang, or of a
   supervisor below the root). A clock thread moves the ``ManualClock`` on
   meanwhile (``jump``: time flows under load, nothing waits to settle),
   which ends hangs and fires restart timers;
3. drains, the clock thread stopped: settles and jumps the clock until
   every message was handled, every planned fault has fired (a worker that
   still has one gets an extra message, counted as sent) and no timer is
   left;
4. checks (:func:`check`): every message was handled exactly once by its
   recipient, or was a failing message published as a ``DeadLetter``, never
   both; per sender and recipient the handled ones are in send order; an
   ``ask`` got the reply or the failure; a dead letter per injected crash
   (or per kill that ended a hang); no supervisor escalated, no child gave
   up or overran a timeout, no start timed out; the health tree has the
   spec tree's names, every node running and healthy, restarts at least the
   ``ChildRestarted`` events; after ``stop()`` no thread is left.

The figures of a run (actors, messages, faults of each kind, dead letters,
restarts, elapsed time, messages per second) are in the :class:`Report`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pykka

from regisseur.actors import Actor, ActorSystem, ManualClock
from regisseur.actors.clock import monotonic
from regisseur.messages import (
    ChildFailed,
    ChildGaveUp,
    ChildRestarted,
    ChildStopTimedOut,
    DeadLetter,
    Event,
    SupervisorEscalated,
    SystemFailed,
)
from regisseur.supervision import Backoff, ChildSpec, Strategy, Supervisor
from regisseur.supervision.testing import FaultInjector, InjectedFault

if TYPE_CHECKING:
    from regisseur.messages import HealthReport

__all__ = ["ChaosConfig", "ChaosWorker", "Ledger", "Msg", "Report", "build_tree", "plan", "run"]

STRATEGIES = (Strategy.ONE_FOR_ONE, Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE)
CRASHED = "failed: InjectedFault"
KILLED = "failed: thread killed"
Shape = tuple[str, tuple[Any, ...]]
"""A tree of names: ``(name, (child shapes...))``."""


@dataclass(frozen=True)
class ChaosConfig:
    """What one chaos run does; every random choice comes from ``seed``."""

    seed: int = 1
    actors: int = 120
    """Workers (the leaves); the supervisors of the tree come on top."""
    messages: int = 20_000
    faults: int = 200
    senders: int = 4
    weights: tuple[tuple[str, int], ...] = (
        ("crash", 4),
        ("fail_start", 2),
        ("hang", 2),
        ("kill", 2),
    )
    kill_supervisor_share: float = 0.15
    """Of the kills: the share aimed at a supervisor's thread (not the root's)."""
    kill_hung_share: float = 0.35
    """Of the kills: the share aimed at a worker that was made to hang."""
    ask_share: float = 0.005
    """Of the messages: the share sent with ``ask`` instead of ``tell``."""
    ask_timeout: float = 5.0
    hang: tuple[float, float] = (0.2, 3.0)
    """Bounds of a hang, in virtual (manual clock) seconds."""
    tick: float = 0.1
    """Virtual seconds the clock thread advances per tick."""
    tick_every: float = 0.002
    """Real seconds between two ticks while the senders run."""
    send_timeout: float = 20.0
    """Real seconds the senders may take (they stop at nothing but an ask)."""
    drain_timeout: float = 15.0
    """Real seconds the drain may take after the senders are done."""
    settle_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Msg:
    """One message of the load: sender number and its sequence number."""

    sender: int
    seq: int


class Ledger:
    """Thread-safe record of handled messages: ``(sender, seq, actor)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handled: list[tuple[int, int, str]] = []

    def record(self, message: Msg, actor: str) -> None:
        with self._lock:
            self._handled.append((message.sender, message.seq, actor))

    @property
    def handled(self) -> list[tuple[int, int, str]]:
        with self._lock:
            return list(self._handled)


class ChaosWorker(Actor):
    """Records every ``Msg`` it handles in the shared ledger; answers its seq."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def on_receive(self, message: Any) -> Any:
        if type(message) is Msg:
            self.ledger.record(message, self.name)
            return message.seq
        return super().on_receive(message)


# -- the tree ---------------------------------------------------------------


@dataclass
class Tree:
    """The generated tree: the root's children and what is in it."""

    specs: list[ChildSpec] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    supervisors: list[str] = field(default_factory=list)
    strategies: Counter[str] = field(default_factory=Counter)
    depends: int = 0
    shape: tuple[Shape, ...] = ()


def build_tree(config: ChaosConfig, ledger: Ledger, rng: random.Random) -> Tree:
    """Top-level groups of 8-16 workers each, nested up to three deep."""
    tree = Tree()
    left = config.actors
    shapes = []
    index = 0
    while left > 0:
        size = min(left, rng.randint(8, 16))
        if 0 < left - size < 4:  # no tiny last group
            size = left
        spec, shape = _group(f"g{index}", size, 1, index, config, ledger, rng, tree)
        tree.specs.append(spec)
        shapes.append(shape)
        left -= size
        index += 1
    tree.shape = tuple(shapes)
    return tree


def _group(
    name: str,
    size: int,
    depth: int,
    strategy_index: int,
    config: ChaosConfig,
    ledger: Ledger,
    rng: random.Random,
    tree: Tree,
) -> tuple[ChildSpec, Shape]:
    strategy = STRATEGIES[strategy_index % 3]
    tree.supervisors.append(name)
    tree.strategies[strategy.name] += 1
    nested = rng.randint(2, size // 2) if depth < 3 and size >= 6 else 0
    own = size - nested
    order: list[tuple[str, Any]] = [(f"{name}.w{j}", None) for j in range(own)]
    if nested:
        order.insert(rng.randint(1, own), (f"{name}.s", nested))
    children: list[ChildSpec] = []
    shapes: list[Shape] = []
    for position, (child, nested_size) in enumerate(order):
        depends_on: tuple[str, ...] = ()
        if strategy is Strategy.REST_FOR_ONE and position:
            earlier = [n for n, _ in order[:position]]
            depends_on = tuple(sorted(rng.sample(earlier, rng.randint(0, min(2, position)))))
            tree.depends += len(depends_on)
        if nested_size is None:
            tree.workers.append(child)
            children.append(ChildSpec(child, ChaosWorker, args=(ledger,), depends_on=depends_on))
            shapes.append((child, ()))
        else:
            spec, shape = _group(
                child, nested_size, depth + 1, strategy_index + 1, config, ledger, rng, tree
            )
            children.append(
                ChildSpec(child, spec.actor, depends_on=depends_on, description="nested")
            )
            shapes.append(shape)
    # One group in three waits a few ticks before restarting a child, so
    # messages also wait in held mailboxes for restart timers.
    backoff = (
        Backoff(initial=config.tick * 2, maximum=config.tick * 8)
        if rng.random() < 1 / 3
        else Backoff(initial=0)
    )
    supervisor = Supervisor(
        children, strategy=strategy, max_restarts=1_000_000_000, within=1.0, backoff=backoff
    )
    return ChildSpec(name, supervisor), (name, tuple(shapes))


# -- the plan ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # crash, fail_start, hang, kill
    target: str
    arg: float = 0.0  # hang seconds, fail_start times


@dataclass
class SenderPlan:
    targets: list[str]
    asks: set[int]
    faults: dict[int, list[Fault]] = field(default_factory=lambda: defaultdict(list))


def plan(config: ChaosConfig, tree: Tree, rng: random.Random) -> list[SenderPlan]:
    """Every sender's targets, asks and faults (by position in its stream)."""
    per_sender = [config.messages // config.senders] * config.senders
    for extra in range(config.messages % config.senders):
        per_sender[extra] += 1
    plans = [
        SenderPlan(
            targets=[rng.choice(tree.workers) for _ in range(n)],
            asks={i for i in range(n) if rng.random() < config.ask_share},
        )
        for n in per_sender
    ]
    kinds = [k for k, _ in config.weights]
    weights = [w for _, w in config.weights]
    supervisors = tree.supervisors
    hung: list[str] = []
    for _ in range(config.faults):
        sender = rng.randrange(config.senders)
        position = rng.randrange(max(1, per_sender[sender]))
        kind = rng.choices(kinds, weights)[0]
        target = rng.choice(tree.workers)
        arg = 0.0
        if kind == "hang":
            arg = round(rng.uniform(*config.hang), 3)
            hung.append(target)
        elif kind == "fail_start":
            arg = float(rng.choice((1, 1, 2)))
        elif kind == "kill":
            draw = rng.random()
            if draw < config.kill_supervisor_share:
                target = rng.choice(supervisors)
            elif draw < config.kill_supervisor_share + config.kill_hung_share and hung:
                target = rng.choice(hung[-5:])
        plans[sender].faults[position].append(Fault(kind, target, arg))
    return plans


# -- the run ----------------------------------------------------------------


@dataclass
class Report:
    """What a chaos run did and what was wrong (``problems`` empty: all good)."""

    config: ChaosConfig
    workers: int = 0
    supervisors: int = 0
    strategies: dict[str, int] = field(default_factory=dict)
    depends: int = 0
    sent: int = 0
    extra: int = 0  # messages sent while draining (to fire leftover faults)
    handled: int = 0
    asks: int = 0
    dead_letters: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    crash_rules: int = 0  # crash rules planned (crashes + fail_start triggers)
    failures: int = 0  # ChildFailed events
    restarts: int = 0  # ChildRestarted events
    start_time: float = 0.0  # real seconds to start the system
    load_time: float = 0.0  # real seconds from the first message to drained
    stop_time: float = 0.0
    problems: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list, repr=False)
    """Every event of the run, in publish order (for digging into a problem)."""

    @property
    def actors(self) -> int:
        return self.workers + self.supervisors

    @property
    def rate(self) -> float:
        return self.sent / self.load_time if self.load_time else 0.0

    def summary(self) -> str:
        faults = ", ".join(f"{k} {self.faults[k]}" for k in sorted(self.faults))
        reasons = ", ".join(f"{k!r}: {v}" for k, v in sorted(self.dead_reasons.items()))
        strategies = ", ".join(f"{k} {v}" for k, v in sorted(self.strategies.items()))
        return "\n".join(
            [
                f"seed                 {self.config.seed}",
                f"actors               {self.actors} ({self.workers} workers, "
                f"{self.supervisors} supervisors: {strategies}; {self.depends} depends_on edges)",
                f"messages             {self.sent} ({self.extra} while draining), "
                f"{self.config.senders} senders, {self.asks} asks",
                f"faults               {sum(self.faults.values())} ({faults})",
                f"handled              {self.handled}",
                f"dead letters         {self.dead_letters} ({reasons})",
                f"failures / restarts  {self.failures} / {self.restarts}",
                f"start / load / stop  {self.start_time:.2f} s / {self.load_time:.2f} s / "
                f"{self.stop_time:.2f} s",
                f"throughput           {self.rate:,.0f} msg/s under faults",
                f"problems             {len(self.problems)}",
            ]
        )


@dataclass
class _Outcome:
    """What the senders did, merged after they are joined."""

    sent: dict[tuple[int, int], str] = field(default_factory=dict)
    order: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    asked: dict[tuple[int, int], str] = field(default_factory=dict)  # id -> ok/failed/...
    faults: Counter[str] = field(default_factory=Counter)
    crash_rules: int = 0
    problems: list[str] = field(default_factory=list)


class _Sender:
    """One sender thread's loop (runs in ``regisseur:chaos-sender-N``)."""

    def __init__(
        self,
        number: int,
        plan: SenderPlan,
        system: ActorSystem,
        faults: FaultInjector,
        config: ChaosConfig,
    ) -> None:
        self.number = number
        self.plan = plan
        self.system = system
        self.injector = faults
        self.config = config
        self.asked: dict[tuple[int, int], str] = {}
        self.faults: Counter[str] = Counter()
        self.crash_rules = 0
        self.refused: list[tuple[int, int]] = []
        self.problems: list[str] = []

    def run(self) -> None:
        system, number, asks = self.system, self.number, self.plan.asks
        planned = self.plan.faults
        refs: dict[str, pykka.ActorRef[Any]] = {}
        for seq, target in enumerate(self.plan.targets):
            if seq in planned:
                for fault in planned[seq]:
                    self._inject(fault)
            message = Msg(number, seq)
            try:
                if seq in asks:
                    self.asked[(number, seq)] = self._ask(target, message)
                elif seq & 1:
                    ref = refs.get(target)
                    if ref is None:
                        ref = refs[target] = system.ref(target)
                    ref.tell(message)  # a kept ref stays valid across restarts
                else:
                    system.tell(target, message)
            except Exception as exc:  # a finding: the message was refused
                self.refused.append((number, seq))
                if len(self.problems) < 20:
                    self.problems.append(f"{message} to {target} refused: {exc!r}")

    def _ask(self, target: str, message: Msg) -> str:
        try:
            answer = self.system.ask(target, message, timeout=self.config.ask_timeout)
        except InjectedFault:
            return "failed"
        except pykka.ActorDeadError as exc:  # killed while handling it (in a hang)
            return "killed" if "thread killed" in str(exc) else f"dead: {exc}"
        except TimeoutError:
            return "timeout"
        return "ok" if answer == message.seq else f"wrong answer {answer!r}"

    def _inject(self, fault: Fault) -> None:
        injector, target = self.injector, fault.target
        try:
            if fault.kind == "crash":
                injector.crash(target, message_type=Msg)
                self.crash_rules += 1
            elif fault.kind == "fail_start":
                injector.fail_start(target, times=int(fault.arg))
                injector.crash(target, message_type=Msg)  # the restart that fails
                self.crash_rules += 1
            elif fault.kind == "hang":
                injector.hang(target, fault.arg, message_type=Msg)
            else:
                injector.kill(target)
        except RuntimeError as exc:  # the target is stopped: that is a finding
            self.problems.append(f"could not inject {fault}: {exc}")
            return
        kind = fault.kind
        if kind == "kill":
            kind = "kill (supervisor)" if ".w" not in target else "kill (worker)"
        self.faults[kind] += 1


def run(config: ChaosConfig) -> Report:
    """One chaos run; see the module docstring. Never raises for a finding."""
    rng = random.Random(config.seed)
    ledger = Ledger()
    tree = build_tree(config, ledger, rng)
    plans = plan(config, tree, rng)
    report = Report(
        config=config,
        workers=len(tree.workers),
        supervisors=len(tree.supervisors),
        strategies=dict(tree.strategies),
        depends=tree.depends,
    )
    clock = ManualClock()
    system = ActorSystem(
        tree.specs,
        clock=clock,
        database_url=None,
        max_restarts=1_000_000_000,
        within=1.0,
        backoff=Backoff(initial=0),
        name=f"chaos{config.seed}",
    )
    events = report.events
    began = time.perf_counter()
    system.start()
    report.start_time = time.perf_counter() - began
    threads: list[threading.Thread] = []
    ticking = threading.Event()
    try:
        system.events.subscribe(events.append, Event)
        faults = FaultInjector(system)
        senders = [
            _Sender(number, sender_plan, system, faults, config)
            for number, sender_plan in enumerate(plans)
        ]

        def tick() -> None:
            while not ticking.wait(config.tick_every):
                clock.jump(config.tick)  # time flows under load: no settling

        threads = [
            threading.Thread(target=s.run, name=f"regisseur:chaos-sender-{s.number}", daemon=True)
            for s in senders
        ]
        ticker = threading.Thread(target=tick, name="regisseur:chaos-clock", daemon=True)
        began = time.perf_counter()
        ticker.start()
        for thread in threads:
            thread.start()
        bound = monotonic() + config.send_timeout
        for thread in threads:
            thread.join(max(0.0, bound - monotonic()))
        ticking.set()  # from here on the drain alone moves the clock
        ticker.join(5.0)
        threads.append(ticker)
        if any(t.is_alive() for t in threads):
            report.problems.append("a sender did not finish in time")
            return report
        outcome = _merge(senders)
        report.extra = _drain(system, clock, faults, tree, config, outcome, report)
        report.load_time = time.perf_counter() - began
        try:
            system.settle(timeout=config.settle_timeout)
        except TimeoutError as exc:
            report.problems.append(f"no final settle: {exc}")
        health = system.health()
        running = system.running
        seen = list(events)  # what stop() publishes is not part of the run
    finally:
        ticking.set()
        began = time.perf_counter()
        system.stop()
        report.stop_time = time.perf_counter() - began
    for thread in threads:
        thread.join(5.0)
    leaked = [t.name for t in system.threads() if t.is_alive()]
    leaked += [t.name for t in threads if t.is_alive()]
    if leaked:
        report.problems.append(f"threads left after stop(): {', '.join(sorted(leaked))}")
    if not running:
        report.problems.append("the system is not running at the end (the root failed)")
    check(report, outcome, ledger.handled, seen, health, tree)
    return report


def _merge(senders: list[_Sender]) -> _Outcome:
    outcome = _Outcome()
    for sender in senders:
        for seq, target in enumerate(sender.plan.targets):
            outcome.sent[(sender.number, seq)] = target
        outcome.asked.update(sender.asked)
        outcome.faults.update(sender.faults)
        outcome.crash_rules += sender.crash_rules
        outcome.problems.extend(sender.problems)
        for key in sender.refused:
            del outcome.sent[key]
    return outcome


def _drain(
    system: ActorSystem,
    clock: ManualClock,
    faults: FaultInjector,
    tree: Tree,
    config: ChaosConfig,
    outcome: _Outcome,
    report: Report,
) -> int:
    """Settle until nothing is pending; return the extra messages sent.

    Only this thread moves the clock now, so "settled and no timer left"
    means done. An actor that stays busy may be in a hang, and a held one
    may wait for a restart timer: the clock jumps past every hang and
    backoff. Then a planned fault that has not fired waits for a message:
    its worker gets one.
    """
    horizon = config.hang[1] + config.tick * 8 + 1.0  # beyond any hang or backoff
    flush = config.senders  # the sender number of the extra messages
    extra = 0
    deadline = monotonic() + config.drain_timeout
    while True:
        try:
            system.settle(timeout=0.05)
        except TimeoutError as exc:
            if monotonic() > deadline:
                report.problems.append(f"did not drain within {config.drain_timeout:g}s: {exc}")
                return extra
            clock.jump(horizon)  # settle() above is the drain's own check
            continue
        if clock.next_deadline() is not None:
            clock.jump(horizon)
            continue
        pending = [w for w in tree.workers if _pending(faults, w)]
        if not pending:
            return extra
        if monotonic() > deadline:
            report.problems.append(f"faults never fired within the drain: {pending[:10]}")
            return extra
        for worker in pending:  # a planned crash or hang waits for a message
            outcome.sent[(flush, extra)] = worker
            system.tell(worker, Msg(flush, extra))
            extra += 1


def _pending(faults: FaultInjector, name: str) -> int:
    try:
        return faults.pending(name)
    except RuntimeError:  # stopped: the health check reports it
        return 0


# -- the checks -------------------------------------------------------------


def check(
    report: Report,
    outcome: _Outcome,
    handled: list[tuple[int, int, str]],
    events: list[Any],
    health: HealthReport,
    tree: Tree,
) -> None:
    """Fill in the report's figures and append every problem found."""
    problems = report.problems
    problems.extend(outcome.problems)
    sent = outcome.sent
    report.sent = len(sent)
    report.handled = len(handled)
    report.asks = len(outcome.asked)
    report.faults = outcome.faults
    report.crash_rules = outcome.crash_rules

    counts = Counter((s, q) for s, q, _ in handled)
    twice = [key for key, n in counts.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} message(s) handled more than once, e.g. {twice[:5]}")
    wrong = [(s, q, a) for s, q, a in handled if sent.get((s, q)) != a]
    if wrong:
        problems.append(f"{len(wrong)} message(s) handled by the wrong actor, e.g. {wrong[:5]}")
    order: dict[tuple[int, str], list[int]] = defaultdict(list)
    for s, q, actor in handled:
        order[(s, actor)].append(q)
    unordered = [key for key, seqs in order.items() if seqs != sorted(seqs)]
    if unordered:
        problems.append(f"out of send order for (sender, actor) {unordered[:5]}")

    letters = [e for e in events if isinstance(e, DeadLetter) and isinstance(e.message, Msg)]
    others = [e for e in events if isinstance(e, DeadLetter) and not isinstance(e.message, Msg)]
    if others:
        problems.append(f"{len(others)} unexpected dead letter(s), e.g. {others[:3]}")
    dead = Counter((e.message.sender, e.message.seq) for e in letters)
    report.dead_letters = len(letters)
    report.dead_reasons = Counter(_reason(e.reason) for e in letters)
    twice = [key for key, n in dead.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} dead letter(s) published twice, e.g. {twice[:5]}")
    misdirected = [e for e in letters if sent.get((e.message.sender, e.message.seq)) != e.recipient]
    if misdirected:
        problems.append(f"dead letters with the wrong recipient: {misdirected[:5]}")
    both = set(counts) & set(dead)
    if both:
        problems.append(f"{len(both)} message(s) handled and dead letters, e.g. {sorted(both)[:5]}")
    lost = set(sent) - set(counts) - set(dead)
    if lost:
        example = sorted(lost)[:5]
        where = [sent[key] for key in example]
        problems.append(
            f"{len(lost)} message(s) neither handled nor a dead letter, "
            f"e.g. {example} sent to {where}"
        )
    unknown = (set(counts) | set(dead)) - set(sent)
    if unknown:
        problems.append(f"messages nobody sent: {sorted(unknown)[:5]}")
    # Every crash rule fired (the drain saw to it) and failed its message,
    # unless a hang fired on the same message and a kill ended that hang:
    # then the message died with the thread.
    failed = report.dead_reasons.get(CRASHED, 0)
    killed = report.dead_reasons.get(KILLED, 0)
    if not failed <= outcome.crash_rules <= failed + killed:
        problems.append(
            f"{outcome.crash_rules} crashes were injected (all fired) but {failed} messages "
            f"died of them ({killed} died with a killed thread)"
        )
    if killed > outcome.faults["kill (worker)"]:
        problems.append(f"{killed} messages died with a killed thread, more than the kills")
    strange = {r: n for r, n in report.dead_reasons.items() if r not in (CRASHED, KILLED)}
    if strange:
        problems.append(f"dead letters for other reasons than a crash or kill: {strange}")

    for key, result in outcome.asked.items():
        if result == "ok" and counts.get(key) != 1:
            problems.append(f"ask {key} answered but not recorded as handled")
        elif result in ("failed", "killed") and key not in dead:
            problems.append(f"ask {key} {result} but is no dead letter")
        elif result not in ("ok", "failed", "killed"):
            problems.append(f"ask {key}: {result}")

    kinds = Counter(type(e).__name__ for e in events)
    report.failures = kinds["ChildFailed"]
    report.restarts = kinds["ChildRestarted"]
    for bad in (SupervisorEscalated, ChildGaveUp, ChildStopTimedOut, SystemFailed):
        found = [e for e in events if isinstance(e, bad)]
        if found:
            problems.append(f"{len(found)} {bad.__name__} event(s), e.g. {found[:3]}")
    timeouts = [e for e in events if isinstance(e, ChildFailed) and "timed out" in e.error]
    if timeouts:
        problems.append(f"{len(timeouts)} start(s) timed out, e.g. {timeouts[:3]}")

    restarted = Counter(e.name for e in events if isinstance(e, ChildRestarted))
    _check_health(health, tree, restarted, problems)


def _reason(reason: str) -> str:
    """A dead letter's reason without the error's text: ``failed: InjectedFault``."""
    return ": ".join(reason.split(": ")[:2])


def _check_health(
    health: HealthReport, tree: Tree, restarted: Counter[str], problems: list[str]
) -> None:
    def shape(report: HealthReport) -> Shape:
        return (report.name, tuple(sorted(shape(c) for c in report.children)))

    def ordered(node: Shape) -> Shape:  # reports come in start order, specs in spec order
        return (node[0], tuple(sorted(ordered(c) for c in node[1])))

    # The system's own actors report first (without a database: the event
    # bus); they are checked like the others but are not in the spec tree.
    bus = [c for c in health.children if c.name == "event bus"]
    for report in bus:
        if report.status != "running" or not report.healthy:
            problems.append(f"the event bus is {report.status} (healthy={report.healthy})")
    health = replace(health, children=tuple(c for c in health.children if c.name != "event bus"))
    if shape(health) != ordered(("root", tree.shape)):
        problems.append("the health tree's names differ from the spec tree")
    if health.status != "running" or not health.healthy:
        problems.append(f"the root is {health.status} (healthy={health.healthy})")
    seen = 0
    stack = list(health.children)
    while stack:
        node = stack.pop()
        seen += 1
        stack.extend(node.children)
        if node.status != "running" or not node.healthy:
            problems.append(
                f"{node.name} is {node.status} (healthy={node.healthy}, "
                f"last error {node.last_error!r})"
            )
        if node.restarts < restarted[node.name]:
            problems.append(
                f"{node.name}: health says {node.restarts} restarts, "
                f"the events {restarted[node.name]}"
            )
    expected = len(tree.workers) + len(tree.supervisors)
    if seen != expected:
        problems.append(f"the health tree has {seen} nodes, the spec {expected}")
