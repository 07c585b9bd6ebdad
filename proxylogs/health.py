"""Ingestion health of the Squid log sources (registered with vpnmonitor.ingestion_health by the app's ready())."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from proxylogs.models import LogSource
from vpnmonitor.ingestion_health import Section, seconds_since, unread_bytes


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


def log_source_health(now):
    """Enabled Squid log sources. A source lags when its last import is older than LOG_SOURCE_LAG_SECONDS while
    its file holds unread bytes (or cannot be seen from here): an idle log read on schedule is not lagging."""
    lag_after = settings.LOG_SOURCE_LAG_SECONDS
    result = []
    for source in LogSource.objects.filter(enabled=True).order_by("name"):
        unread = unread_bytes(source.path, source.checkpoint)
        age = seconds_since(now, source.last_import_at)
        late = age is None or age > lag_after
        result.append(LogSourceHealth(
            name=source.name, path=source.path, last_import_at=source.last_import_at, seconds_since_import=age,
            lines_imported=source.lines_imported, lines_rejected=source.lines_rejected, unread_bytes=unread,
            lagging=late and unread != 0, failing=bool(source.last_error),
        ))
    return result


def check(now):
    """The health check of the log sources: report.log_sources, and "proxy_log_sources" in /api/v1/health."""
    sources = log_source_health(now)
    return Section(
        items=sources,
        degraded=any(s.lagging or s.failing for s in sources),
        summary={
            "enabled": len(sources),
            "lagging": [s.name for s in sources if s.lagging],
            "failing": [s.name for s in sources if s.failing],
            "lag_after_seconds": settings.LOG_SOURCE_LAG_SECONDS,
        },
    )
