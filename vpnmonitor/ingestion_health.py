"""Ingestion health: how fresh every data source is, read once for /metrics, /api/v1/health and admin."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from vpnmonitor.tailing import Checkpoint

POLL_TASK_NAME = "poll-openvpn"
STALE_POLL_INTERVALS = 3
"""A server is stale after missing this many polls in a row (or STALE_SERVER_SECONDS, whichever is longer)."""


@dataclass(frozen=True)
class ServerHealth:
    name: str
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_status_time: datetime | None
    seconds_since_success: float | None
    stale: bool
    failing: bool
    """The last poll ended in an error."""

    @property
    def up(self):
        return self.last_success_at is not None and not self.failing and not self.stale


@dataclass(frozen=True)
class LogSourceHealth:
    name: str
    path: str
    last_import_at: datetime | None
    seconds_since_import: float | None
    lines_imported: int
    lines_rejected: int
    unread_bytes: int | None
    """Bytes of the file not read yet; None when this process cannot see the file."""
    lagging: bool
    failing: bool


@dataclass(frozen=True)
class CollectorHealth:
    name: str
    hostname: str
    listen: str
    pid: int
    started_at: datetime
    updated_at: datetime
    stopped_at: datetime | None
    seconds_since_update: float
    stale: bool
    """Not stopped cleanly, yet silent for longer than FLOW_COLLECTOR_STALE_SECONDS (it died or hangs)."""
    counters: dict[str, int]

    @property
    def running(self):
        return self.stopped_at is None and not self.stale


@dataclass(frozen=True)
class IngestionHealth:
    now: datetime
    stale_server_seconds: float
    servers: list[ServerHealth] = field(default_factory=list)
    log_sources: list[LogSourceHealth] = field(default_factory=list)
    collectors: list[CollectorHealth] = field(default_factory=list)

    @property
    def degraded(self):
        return (
            any(s.stale or s.failing for s in self.servers)
            or any(s.lagging or s.failing for s in self.log_sources)
            or any(c.stale for c in self.collectors)
        )


def _age(now, moment):
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def poll_interval_seconds():
    """The interval of the poll-openvpn beat entry as set in admin (the built-in default when it is missing)."""
    from django_celery_beat.models import PeriodicTask

    from vpnmonitor.schedule import SCHEDULE

    task = PeriodicTask.objects.filter(name=POLL_TASK_NAME).select_related("interval").first()
    if task is not None and task.interval is not None:
        return task.interval.schedule.run_every.total_seconds()
    return float(SCHEDULE[POLL_TASK_NAME]["every_seconds"])


def stale_server_seconds():
    return max(float(settings.STALE_SERVER_SECONDS), STALE_POLL_INTERVALS * poll_interval_seconds())


def server_health(now, stale_after):
    """Enabled servers. One never polled successfully counts from when it was added, so a new one is not stale."""
    from monitoring.models import VpnServer

    rows = VpnServer.objects.filter(enabled=True).order_by("name").values_list(
        "name", "created_at", "last_polled_at", "last_success_at", "last_status_time", "last_error"
    )
    return [
        ServerHealth(
            name=name, last_polled_at=polled, last_success_at=success, last_status_time=status_time,
            seconds_since_success=_age(now, success),
            stale=_age(now, success or created) > stale_after,
            failing=bool(error),
        )
        for name, created, polled, success, status_time, error in rows
    ]


def unread_bytes(path, checkpoint):
    """File size minus the checkpoint offset; a file the checkpoint does not describe is unread from its start."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    mark = Checkpoint.from_dict(checkpoint)
    if mark.is_fresh or (stat.st_ino, stat.st_dev) != (mark.inode, mark.device) or stat.st_size < mark.offset:
        return stat.st_size
    return stat.st_size - mark.offset


def log_source_health(now):
    """Enabled Squid log sources. A source lags when its last import is older than LOG_SOURCE_LAG_SECONDS while
    its file holds unread bytes (or cannot be seen from here): an idle log read on schedule is not lagging."""
    from proxylogs.models import LogSource

    lag_after = settings.LOG_SOURCE_LAG_SECONDS
    result = []
    for source in LogSource.objects.filter(enabled=True).order_by("name"):
        unread = unread_bytes(source.path, source.checkpoint)
        age = _age(now, source.last_import_at)
        late = age is None or age > lag_after
        result.append(LogSourceHealth(
            name=source.name, path=source.path, last_import_at=source.last_import_at, seconds_since_import=age,
            lines_imported=source.lines_imported, lines_rejected=source.lines_rejected, unread_bytes=unread,
            lagging=late and unread != 0, failing=bool(source.last_error),
        ))
    return result


def collector_health(now):
    from flowreports.models import CollectorStatus
    from flowreports.services import COLLECTOR_COUNTERS

    stale_after = settings.FLOW_COLLECTOR_STALE_SECONDS
    result = []
    for row in CollectorStatus.objects.order_by("hostname", "listen"):
        age = _age(now, row.updated_at)
        result.append(CollectorHealth(
            name=row.name, hostname=row.hostname, listen=row.listen, pid=row.pid, started_at=row.started_at,
            updated_at=row.updated_at, stopped_at=row.stopped_at, seconds_since_update=age,
            stale=row.stopped_at is None and age > stale_after,
            counters={name: getattr(row, name) for name in COLLECTOR_COUNTERS},
        ))
    return result


def ingestion_health(now=None):
    """Every fact the health check, /metrics and the admin page show, in a handful of small queries."""
    now = now or timezone.now()
    stale_after = stale_server_seconds()
    return IngestionHealth(
        now=now, stale_server_seconds=stale_after, servers=server_health(now, stale_after),
        log_sources=log_source_health(now), collectors=collector_health(now),
    )


def ingest_record_counts():
    """{dataset: (records, batches)} accepted by the HTTP ingest endpoints since the start.

    The hook for new ingest paths: call vpnmonitor.models.IngestCounter.add("<dataset>", n) after storing a
    batch and the dataset shows up here, in /metrics and in admin.
    """
    from vpnmonitor.models import IngestCounter

    return {row.dataset: (row.records, row.batches) for row in IngestCounter.objects.order_by("dataset")}


def celery_queue_lengths(queues=("celery",)):
    """{queue: messages waiting} in the Celery broker: Redis lists, or the embedded broker's message files.

    Raises OSError or a redis error when the broker cannot be read.
    """
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
        # kombu keeps a queue in one list per priority step; messages without a priority use the plain name.
        steps = ("",) + tuple(f"\x06\x16{step}" for step in (3, 6, 9))
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for suffix in steps:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
        per_queue = len(steps)
        return {queue: sum(lengths[i * per_queue:(i + 1) * per_queue]) for i, queue in enumerate(queues)}
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    # kombu's file-system transport names a message "<time>_<uuid>.<queue>.msg".
    counts = dict.fromkeys(queues, 0)
    with os.scandir(folder) as entries:
        for entry in entries:
            queue = entry.name.partition(".")[2].removesuffix(".msg")
            if queue in counts and entry.name.endswith(".msg"):
                counts[queue] += 1
    return counts


def health_details(report):
    """What /api/v1/health shows without authentication: names and counts, no paths, addresses or errors."""
    servers, sources, collectors = report.servers, report.log_sources, report.collectors
    return {
        "ingestion": "degraded" if report.degraded else "ok",
        "openvpn_servers": {
            "enabled": len(servers),
            "stale": [s.name for s in servers if s.stale],
            "failing": [s.name for s in servers if s.failing],
            "stale_after_seconds": round(report.stale_server_seconds),
        },
        "proxy_log_sources": {
            "enabled": len(sources),
            "lagging": [s.name for s in sources if s.lagging],
            "failing": [s.name for s in sources if s.failing],
            "lag_after_seconds": settings.LOG_SOURCE_LAG_SECONDS,
        },
        "flow_collectors": {
            "running": sum(1 for c in collectors if c.running),
            "stale": sum(1 for c in collectors if c.stale),
        },
    }
