"""Checks of ``ActorSystem``'s options: ``configure`` and its parts.

Threads: called by ``ActorSystem.__init__`` on the caller's thread.

Failures: a wrong type is a ``TypeError``, a wrong value a ``ValueError``,
each naming the option and what was given; nothing is started before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regisseur.actors._kernel import is_kernel_child
from regisseur.actors.clock import Clock, RealClock, check_duration
from regisseur.actors.database import Database
from regisseur.actors.downloads.facade import DownloadSettings, downloads_spec
from regisseur.actors.downloads.source import DownloadSource
from regisseur.actors.signals import MAIN_THREAD_SIGNALS
from regisseur.supervision.backoff import Backoff
from regisseur.supervision.spec import ChildSpec, check_name

if TYPE_CHECKING:
    from regisseur.actors.cluster.settings import ClusterSettings
    from regisseur.supervision.supervisor import Supervisor

__all__ = [
    "Config",
    "check_clock",
    "check_cluster",
    "check_download_settings",
    "check_sources",
    "configure",
    "lease_name",
    "root_tree",
]


@dataclass(frozen=True, slots=True)
class Config:
    """``ActorSystem``'s options, checked: what the facade and its parts are built from."""

    clock: Clock
    root: Supervisor
    database: Database | None
    lease_name: str | None
    lease_ttl: float
    cluster: ClusterSettings | None
    downloads: DownloadSettings
    sources: tuple[DownloadSource, ...]
    blocked_signals: frozenset[int]


def configure(
    name: str,
    children: object,
    *,
    clock: object,
    database_url: str | None,
    single_instance: object,
    lease_ttl: float,
    download_sources: object,
    downloads: object,
    cluster: object,
    node_id: object,
    backoff: Backoff | None,
    main_thread_signals: object = False,
    **root_options: Any,
) -> Config:
    """Check every option of ``ActorSystem(...)``; the ``Config``, or the first error.

    ``root_options`` (strategy, restart intensity, ``auto_shutdown``) go to
    the root supervisor, which checks them.
    """
    from regisseur.supervision.supervisor import Supervisor

    check_name(name, "ActorSystem name")
    if not isinstance(main_thread_signals, bool):
        msg = f"main_thread_signals must be True or False, got {main_thread_signals!r}"
        raise TypeError(msg)
    checked_clock = check_clock(clock)
    settings = check_download_settings(downloads)
    sources = check_sources(download_sources)
    cluster_settings = check_cluster(cluster, node_id)
    if cluster_settings is not None:
        from regisseur.actors.cluster.settings import check_cluster_url

        database_url = check_cluster_url(database_url)
    backoff = backoff if backoff is not None else Backoff()
    root = root_tree(
        children,
        Supervisor,
        sources=sources,
        settings=settings,
        cluster=cluster_settings,
        backoff=backoff,
        **root_options,
    )
    database = Database(database_url) if database_url is not None else None
    if database is not None and not database.parsed:
        msg = (
            f"database_url {database.url!r} is not a valid SQLAlchemy URL "
            "(e.g. sqlite:///app.db or postgresql://user@host/db)"
        )
        raise ValueError(msg)
    return Config(
        clock=checked_clock,
        root=root,
        database=database,
        lease_name=lease_name(single_instance, name, has_database=database is not None),
        lease_ttl=check_duration(lease_ttl, "lease_ttl", allow_zero=False),
        cluster=cluster_settings,
        downloads=settings,
        sources=sources,
        blocked_signals=MAIN_THREAD_SIGNALS if main_thread_signals else frozenset(),
    )


def check_clock(clock: object) -> Clock:
    """``clock=`` (None: a ``RealClock``), or a ``TypeError``."""
    if clock is None:
        return RealClock()
    if not isinstance(clock, Clock):
        msg = f"clock must be an actors.Clock (RealClock or ManualClock), got {clock!r}"
        raise TypeError(msg)
    return clock


def check_download_settings(downloads: object) -> DownloadSettings:
    """``downloads=`` (None: the defaults), or a ``TypeError``."""
    settings = downloads if downloads is not None else DownloadSettings()
    if not isinstance(settings, DownloadSettings):
        msg = f"downloads must be a DownloadSettings, got {type(settings).__name__}"
        raise TypeError(msg)
    return settings


def root_tree(
    children: object,
    supervisor: type[Supervisor],
    *,
    sources: tuple[DownloadSource, ...],
    settings: DownloadSettings,
    cluster: ClusterSettings | None,
    **options: Any,
) -> Supervisor:
    """The root supervisor's spec: the user's ``children`` plus the download keeper.

    In cluster mode the children marked singleton are wrapped, and every
    node has a keeper (it answers for the downloads of every node). Raises
    for children that are not a list of ``ChildSpec``, a name used twice in
    the tree, or a name of the system's own actors.
    """
    if isinstance(children, ChildSpec) or not isinstance(children, Iterable):
        msg = f"children must be a list of ChildSpec, got {type(children).__name__} {children!r}"
        raise TypeError(msg)
    specs = tuple(children)
    if cluster is not None:
        # Cluster mode's modules (the PostgreSQL dialect, the ORM) load only here.
        from regisseur.actors.cluster.singleton import singleton_specs

        specs = tuple(singleton_specs(specs, cluster.lease_ttl / 3))
    if sources or cluster is not None:
        specs = (downloads_spec(sources, settings, cluster), *specs)
    root = supervisor(specs, **options)
    names = root.names()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        msg = f"duplicate child name(s) in the tree: {', '.join(map(repr, duplicates))}"
        raise ValueError(msg)
    reserved = sorted({n for n in names if is_kernel_child(n)})
    if reserved:
        msg = f"child name(s) {', '.join(map(repr, reserved))} are the system's own actors"
        raise ValueError(msg)
    return root


def lease_name(single_instance: object, system_name: str, *, has_database: bool) -> str | None:
    """The single-instance lease's name (None: no guard), or a clear error."""
    if not isinstance(single_instance, (bool, str)):
        msg = f"single_instance must be a bool or a lease name, got {single_instance!r}"
        raise TypeError(msg)
    if single_instance and not has_database:
        msg = "single_instance needs a database_url (the lease lives in the database)"
        raise ValueError(msg)
    if not single_instance:
        return None
    return single_instance if isinstance(single_instance, str) else system_name


def check_sources(sources: object) -> tuple[DownloadSource, ...]:
    """``download_sources`` as a tuple, or a clear error (wrong type, duplicate name)."""
    if isinstance(sources, DownloadSource):
        sources = (sources,)
    if isinstance(sources, (str, bytes)) or not hasattr(sources, "__iter__"):
        msg = f"download_sources must be a list of DownloadSource, got {sources!r}"
        raise TypeError(msg)
    found = tuple(sources)
    for source in found:
        if not isinstance(source, DownloadSource):
            msg = f"download_sources must hold DownloadSource objects, got {source!r}"
            raise TypeError(msg)
    names = [s.name for s in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        msg = f"duplicate download source name(s): {', '.join(map(repr, duplicates))}"
        raise ValueError(msg)
    return found


def check_cluster(cluster: object, node_id: object) -> ClusterSettings | None:
    """The cluster settings of ``cluster=`` and ``node_id=``; None outside cluster mode.

    Outside cluster mode (``cluster=False``, the default) the cluster modules
    are not imported.
    """
    if cluster is False:
        if node_id is not None:
            msg = "node_id is only used in cluster mode: pass cluster=True as well"
            raise ValueError(msg)
        return None
    from regisseur.actors.cluster.settings import ClusterSettings

    if isinstance(cluster, ClusterSettings):
        if node_id is not None and node_id != cluster.node_id:
            msg = "give node_id either to ActorSystem or to ClusterSettings, not both"
            raise ValueError(msg)
        return cluster
    if cluster is not True:
        msg = f"cluster must be a bool or a ClusterSettings, got {type(cluster).__name__}"
        raise TypeError(msg)
    return ClusterSettings(node_id)  # type: ignore[arg-type]  # checked there
