"""Celery tasks of proxylogs (thin wrappers around services)."""

from celery import shared_task

from proxylogs import services
from vpnmonitor.jobs import exclusive


@shared_task(name="proxylogs.tasks.tail_proxy_logs")
def tail_proxy_logs():
    """Import what is new in every enabled LogSource; skipped while another run is still going."""
    with exclusive("tail_proxy_logs") as acquired:
        if not acquired:
            return {"skipped": "another tail_proxy_logs is running"}
        return services.tail_enabled_sources()
