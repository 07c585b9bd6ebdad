"""Ingestion health: how fresh every data source is, read once for /metrics, /api/v1/health and admin.

Each app registers a check for its own sources (register(), called from its AppConfig.ready()): the check reads
its sources and says whether they make ingestion degraded. This module knows no app; it adds the checks up and
keeps what every app shares: the HTTP ingest counters and the Celery queue.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from vpnmonitor.models import IngestCounter
from vpnmonitor.tailing import Checkpoint


@dataclass(frozen=True)
class Section:
    """What one check found: its items (one per source, for admin and /metrics), whether they make ingestion
    degraded, and the summary /api/v1/health shows without authentication (names and counts; no paths,
    addresses or error texts)."""

    items: list
    degraded: bool
    summary: dict


@dataclass(frozen=True)
class Check:
    name: str
    """The report's attribute that holds the check's items (report.servers, report.log_sources ...)."""
    summary_key: str
    """The check's key in health_details()."""
    read: Callable[[datetime], Section]


_checks: dict[str, Check] = {}


def register(name, summary_key, read):
    """Declare a health check (call from an AppConfig.ready()). read(now) returns a Section; the report shows its
    items as report.<name>, and health_details() its summary under summary_key. Checks run in the order
    they were registered (INSTALLED_APPS order)."""
    _checks[name] = Check(name, summary_key, read)


def checks():
    return dict(_checks)


@dataclass(frozen=True)
class IngestionHealth:
    now: datetime
    sections: dict[str, Section]
    """{check name: Section}, in registration order."""

    def __getattr__(self, name):
        # report.<check name>: the items of that check.
        sections = self.__dict__.get("sections") or {}
        if name not in sections:
            raise AttributeError(f"no health check named {name!r}")
        return sections[name].items

    @property
    def degraded(self):
        return any(section.degraded for section in self.sections.values())


def seconds_since(now, moment):
    """Seconds from moment to now (never negative), or None when moment is None."""
    return None if moment is None else max(0.0, (now - moment).total_seconds())


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


def ingestion_health(now=None):
    """Every fact the health check, /metrics and the admin page show, in a handful of small queries."""
    now = now or timezone.now()
    return IngestionHealth(now=now, sections={name: check.read(now) for name, check in _checks.items()})


def ingest_record_counts():
    """{dataset: (records, batches)} accepted by the HTTP ingest endpoints since the start.

    The hook for new ingest paths: call vpnmonitor.models.IngestCounter.add("<dataset>", n) after storing a
    batch and the dataset shows up here, in /metrics and in admin.
    """
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
    details = {"ingestion": "degraded" if report.degraded else "ok"}
    for name, section in report.sections.items():
        details[_checks[name].summary_key] = section.summary
    return details
