"""Ingestion health of the OpenVPN servers (registered with vpnmonitor.ingestion_health by the app's ready())."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django_celery_beat.models import PeriodicTask

from monitoring.models import VpnServer
from vpnmonitor.ingestion_health import Section, seconds_since
from vpnmonitor.schedule import SCHEDULE

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


def poll_interval_seconds():
    """The interval of the poll-openvpn beat entry as set in admin (the built-in default when it is missing)."""
    task = PeriodicTask.objects.filter(name=POLL_TASK_NAME).select_related("interval").first()
    if task is not None and task.interval is not None:
        return task.interval.schedule.run_every.total_seconds()
    return float(SCHEDULE[POLL_TASK_NAME]["every_seconds"])


def stale_server_seconds():
    return max(float(settings.STALE_SERVER_SECONDS), STALE_POLL_INTERVALS * poll_interval_seconds())


def server_health(now, stale_after):
    """Enabled servers. One never polled successfully counts from when it was added, so a new one is not stale."""
    rows = VpnServer.objects.filter(enabled=True).order_by("name").values_list(
        "name", "created_at", "last_polled_at", "last_success_at", "last_status_time", "last_error"
    )
    return [
        ServerHealth(
            name=name, last_polled_at=polled, last_success_at=success, last_status_time=status_time,
            seconds_since_success=seconds_since(now, success),
            stale=seconds_since(now, success or created) > stale_after,
            failing=bool(error),
        )
        for name, created, polled, success, status_time, error in rows
    ]


def check(now):
    """The health check of the enabled servers: report.servers, and "openvpn_servers" in /api/v1/health."""
    stale_after = stale_server_seconds()
    servers = server_health(now, stale_after)
    return Section(
        items=servers,
        degraded=any(s.stale or s.failing for s in servers),
        summary={
            "enabled": len(servers),
            "stale": [s.name for s in servers if s.stale],
            "failing": [s.name for s in servers if s.failing],
            "stale_after_seconds": round(stale_after),
        },
    )
