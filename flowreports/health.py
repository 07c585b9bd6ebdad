"""Ingestion health of the flow collectors (registered with vpnmonitor.ingestion_health by the app's ready())."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from flowreports.models import CollectorStatus
from flowreports.services import COLLECTOR_COUNTERS
from vpnmonitor.ingestion_health import Section, seconds_since


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


def collector_health(now):
    stale_after = settings.FLOW_COLLECTOR_STALE_SECONDS
    result = []
    for row in CollectorStatus.objects.order_by("hostname", "listen"):
        age = seconds_since(now, row.updated_at)
        result.append(CollectorHealth(
            name=row.name, hostname=row.hostname, listen=row.listen, pid=row.pid, started_at=row.started_at,
            updated_at=row.updated_at, stopped_at=row.stopped_at, seconds_since_update=age,
            stale=row.stopped_at is None and age > stale_after,
            counters={name: getattr(row, name) for name in COLLECTOR_COUNTERS},
        ))
    return result


def check(now):
    """The health check of the flow collectors: report.collectors, and "flow_collectors" in /api/v1/health."""
    collectors = collector_health(now)
    return Section(
        items=collectors,
        degraded=any(c.stale for c in collectors),
        summary={
            "running": sum(1 for c in collectors if c.running),
            "stale": sum(1 for c in collectors if c.stale),
        },
    )
