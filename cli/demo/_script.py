"""What the demo does, step by step, once the system runs.

Every step waits for the event that says the previous one happened (never
for a fixed time), so the order is the same on every run:

1. submit six HTTP downloads and three archive "downloads";
2. after the reporter's first run, pause it;
3. when the flaky server first fails, tell ``doomed`` to self-destruct
   (a ``FatalError``) and wait until it is stopped for good;
4. once ``slow.bin`` is past 30 %, cancel it;
5. when the flaky server has been restarted three times (0.5, 1, 2 s),
   resume the reporter and wait for two more runs;
6. wait until every download has ended; take the summary.

Runs on the demo's main thread; a Ctrl-C (``KeyboardInterrupt``) may end
it at any wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regisseur.cli.demo._cast import FLAKY_RUNS, SELF_DESTRUCT
from regisseur.cli.demo._events import ServiceRan
from regisseur.cli.demo._server import FLAKY
from regisseur.cli.demo._show import Summary
from regisseur.messages import (
    ChildGaveUp,
    ChildRestarted,
    ChildRestarting,
    DownloadProgressed,
    DownloadState,
    DownloadStateChanged,
    Pause,
    Resume,
)

if TYPE_CHECKING:
    from regisseur.actors.system import ActorSystem
    from regisseur.cli.demo._watch import Watcher

__all__ = ["SERVED", "run_script"]

_MIB = 1024 * 1024
#: Files on the demo server (name -> size); ``missing.bin`` is not among them.
SERVED = {
    "alpha.bin": 3 * _MIB,
    "beta.bin": 2 * _MIB,
    "gamma.bin": 4 * _MIB,
    FLAKY: _MIB,
    "slow.bin": 8 * _MIB,
}
_HTTP = ("alpha.bin", "beta.bin", "gamma.bin", FLAKY, "missing.bin", "slow.bin")
_VOLUMES = ("volume-1.txt", "volume-2.txt", "volume-3.txt")
_CANCEL_AT = 30.0  # percent of slow.bin
_ASK = 5.0  # seconds for an answer from an idle actor


def run_script(system: ActorSystem, base_url: str, watch: Watcher) -> Summary:
    """Play the demo on a started ``system``; return what the summary shows."""
    downloads = system.downloads
    watch.note(f"submitting {len(_HTTP)} HTTP downloads and {len(_VOLUMES)} archive volumes")
    ids = {name: downloads.submit("http", f"{base_url}/{name}", name) for name in _HTTP}
    for number, name in enumerate(_VOLUMES, 1):
        ids[name] = downloads.submit("archive", f"vol-{number}", name)

    watch.wait_for(ServiceRan, name="reporter")
    system.tell("reporter", Pause())
    reporter = system.ref("reporter").proxy()  # a Pykka proxy: answered after the Pause
    runs = reporter.health().get(timeout=_ASK)["runs"]
    watch.note(f"paused the reporter after {runs} run(s)")

    watch.wait_for(ChildRestarting, name="flaky-server")
    watch.note("telling 'doomed' to self-destruct: a FatalError stops it for good")
    system.tell("doomed", SELF_DESTRUCT)
    watch.wait_for(ChildGaveUp, name="doomed")

    slow = ids["slow.bin"]
    watch.wait_for(
        DownloadProgressed, where=lambda e: e.record.id == slow and e.record.progress >= _CANCEL_AT
    )
    watch.note("cancelling slow.bin midway")
    downloads.cancel(slow)

    watch.wait_for(ChildRestarted, name="flaky-server", count=FLAKY_RUNS)
    health = reporter.health().get(timeout=_ASK)
    watch.note(
        f"flaky-server is back; the reporter is {'paused' if health['paused'] else 'running'} "
        f"after {health['runs']} run(s): resuming it"
    )
    system.tell("reporter", Resume())
    watch.wait_for(ServiceRan, name="reporter", count=health["runs"] + 2)

    wanted = set(ids.values())

    def every_download_ended() -> bool:
        ended = {
            e.record.id for e in watch.matching(DownloadStateChanged) if e.record.state.terminal
        }
        return wanted <= ended

    watch.wait_until("every download to end", every_download_ended)
    records = [r for r in downloads.list() if r.id in wanted]
    order = list(DownloadState)
    records.sort(key=lambda r: (order.index(r.state), r.created_at))
    return Summary(tuple(records), system.health(), watch.elapsed())
