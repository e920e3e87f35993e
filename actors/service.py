"""``ServiceActor``: a periodic service with pause/resume, metrics and health.

Replaces the periodic service base class and its registry (interval,
``max_failures``, ``retry_delay``, pause/resume, metrics, health, cleanup):

* ``update()`` (plain or ``async def``) runs every ``interval`` seconds on the
  system clock, first right after start; the next run is scheduled when the
  previous one ends. An ``async`` update runs on an event loop owned by the
  actor (created on first use, closed on stop and restart). If ``update``
  returns an int it is added to the ``processed`` metric.
* ``Pause`` stops the interval runs, ``Resume`` starts them again (a run is
  due at once), ``RunNow`` runs immediately, even while paused. Every run
  replaces the one planned before it, so runs never pile up.
* A failing update is a failure: by default the supervisor restarts the
  service after ``retry_delay`` seconds; ``max_failures`` consecutive
  failures stop it for good and mark it failed in the health tree; the rest
  of the system keeps running. Override ``decide(exc)`` to choose per
  exception (a longer delay on a rate limit, a stop on bad credentials).
* ``cleanup()`` always runs on stop and before a restart.
* Metrics (runs, processed, errors, last_run_duration, last_run_time, plus
  your own in ``self.metrics``) and the paused flag survive restarts. Times
  and durations are read from the system clock.

Everything here runs on the service's own thread.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any

from regisseur.actors._planned import PlannedRun, RunTick
from regisseur.actors.actor import Actor
from regisseur.actors.clock import check_duration
from regisseur.actors.errors import describe_error
from regisseur.messages.service import Pause, Resume, RunNow

__all__ = ["ServiceActor"]


@dataclass(slots=True)
class _ServiceState:
    """What a service keeps across restarts (its thread only)."""

    paused: bool = False
    runs: int = 0
    processed: int = 0
    errors: int = 0
    last_run_duration: float | None = None
    last_run_time: float | None = None
    last_error: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


class ServiceActor(Actor):
    """Base class for periodic services; override ``update``."""

    def __init__(
        self,
        service_id: Any,
        *,
        interval: float = 60,
        max_failures: int | None = 3,
        retry_delay: float = 5,
        **options: Any,
    ) -> None:
        super().__init__()
        kind = type(self).__name__
        if service_id is None or (isinstance(service_id, str) and not service_id.strip()):
            msg = f"{kind} service_id must be a non-empty id (an int or a str), got {service_id!r}"
            raise ValueError(msg)
        self.service_id = service_id
        self.interval = check_duration(interval, f"{kind} interval", allow_zero=False)
        self.retry_delay = check_duration(retry_delay, f"{kind} retry_delay")
        if max_failures is not None:
            if isinstance(max_failures, bool) or not isinstance(max_failures, int):
                msg = f"{kind} max_failures must be an int or None, got {max_failures!r}"
                raise TypeError(msg)
            if max_failures < 1:
                msg = f"{kind} max_failures must be >= 1 (or None), got {max_failures!r}"
                raise ValueError(msg)
        self.max_failures = max_failures
        self.log = self.log.bind(service_id=service_id)
        self._state: _ServiceState = self.kept_state.setdefault("service", _ServiceState())
        self._planned = PlannedRun(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.configure(**options)

    # -- hooks -------------------------------------------------------------
    def configure(self, *args: Any, **options: Any) -> None:
        """Take the service's own options. The default accepts none.

        (``*args`` is only there so that an override with keyword-only
        parameters, ``def configure(self, *, batch=10)``, type-checks.)
        """
        if options:
            names = ", ".join(sorted(options))
            msg = (
                f"{type(self).__name__} got unexpected option(s) {names}; "
                f"override configure() to accept them"
            )
            raise TypeError(msg)

    def update(self) -> Any:
        """One run of the service (may be ``async def``); return items processed."""
        msg = f"{type(self).__name__} must override update()"
        raise NotImplementedError(msg)

    def cleanup(self) -> None:
        """Release what ``update`` holds; runs on stop and before a restart."""

    def decide(self, exc: Exception) -> Any:
        """Default: ``FatalError`` stops; anything else restarts after ``retry_delay``."""
        from regisseur.supervision.directive import Directive
        from regisseur.supervision.errors import FatalError

        if isinstance(exc, FatalError):
            return Directive.STOP
        return Directive.restart_after(self.retry_delay)

    # -- state ---------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """True while interval runs are paused."""
        return self._state.paused

    @property
    def metrics(self) -> dict[str, Any]:
        """The service's own metrics (a dict you update); kept across restarts."""
        return self._state.custom

    def statistics(self) -> dict[str, Any]:
        """Built-in and own metrics, as a snapshot."""
        state = self._state
        return {
            "runs": state.runs,
            "processed": state.processed,
            "errors": state.errors,
            "last_run_duration": state.last_run_duration,
            "last_run_time": state.last_run_time,
            **state.custom,
        }

    def health(self) -> bool | dict[str, Any]:
        """running, paused, failures, max_failures, last_run, processed, errors, …"""
        state = self._state
        return {
            "healthy": True,
            "running": not state.paused,
            "paused": state.paused,
            "failures": self.consecutive_failures,
            "max_failures": self.max_failures,
            "last_run": state.last_run_time,
            "last_error": state.last_error,
            **self.statistics(),
        }

    # -- runtime -------------------------------------------------------------
    def _failure_limit(self) -> int | None:
        return self.max_failures

    def _after_start(self) -> None:
        if not self._state.paused:
            self._planned.soon()

    def _after_resume(self) -> None:
        # The failure may have ended a run (or consumed its tick before the
        # handler ran): the schedule goes on from now.
        self._plan_next()

    def on_receive(self, message: Any) -> Any:
        match message:
            case RunTick():
                if self._planned.due(message) and not self._state.paused:
                    self._run()
            case Pause():
                self._state.paused = True
                self._planned.cancel()
                self.log.info("service_paused")
            case Resume():
                if self._state.paused:
                    self._state.paused = False
                    self.log.info("service_resumed")
                    self._planned.soon()
            case RunNow():
                self._planned.cancel()
                self._run()
            case _:
                return super().on_receive(message)
        return None

    def _plan_next(self) -> None:
        """Plan the next run one interval from now, unless paused."""
        if not self._state.paused:
            self._planned.after(self.interval)

    def _run(self) -> None:
        state = self._state
        clock = self.system.clock
        started = clock.now()
        try:
            result = self.update()
            if inspect.isawaitable(result):
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                result = self._loop.run_until_complete(_await(result))
        except Exception as exc:
            state.errors += 1
            state.last_error = describe_error(exc)
            state.last_run_time = clock.now()
            state.last_run_duration = state.last_run_time - started
            raise
        state.runs += 1
        if isinstance(result, int) and not isinstance(result, bool):
            state.processed += result
        state.last_run_time = clock.now()
        state.last_run_duration = state.last_run_time - started
        self._plan_next()

    def _end_incarnation(self, *, run_hooks: bool, final: bool) -> None:
        self._planned.cancel()
        try:
            self.cleanup()
        except Exception as exc:
            self.log.error("cleanup_failed", error=describe_error(exc), exc_info=exc)
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()
        super()._end_incarnation(run_hooks=run_hooks, final=final)


async def _await(awaitable: Any) -> Any:
    return await awaitable
