"""Celery tasks of the monitoring app (thin wrappers around monitoring.services)."""

import logging

from celery import shared_task

from monitoring import services
from monitoring.models import VpnServer
from vpnmonitor.jobs import exclusive

logger = logging.getLogger(__name__)


@shared_task(name="monitoring.tasks.poll_openvpn_servers")
def poll_openvpn_servers():
    """Fan out one poll task per enabled server, so one slow server never delays the others."""
    ids = list(VpnServer.objects.filter(enabled=True).values_list("pk", flat=True))
    for pk in ids:
        poll_openvpn_server.apply_async((pk,), expires=30)
    return len(ids)


@shared_task(name="monitoring.tasks.poll_openvpn_server")
def poll_openvpn_server(server_id):
    server = VpnServer.objects.filter(pk=server_id, enabled=True).first()
    if server is None:
        return {"skipped": "server gone or disabled"}
    with exclusive(f"poll-openvpn:{server_id}") as acquired:
        if not acquired:
            return {"skipped": "a poll of this server is running"}
        result = services.poll_server(server)
    return {"server": result.server, "ok": result.ok, "error": result.error, "connections": result.connections}


@shared_task(name="monitoring.tasks.rollup_usage")
def rollup_usage():
    with exclusive("rollup-usage") as acquired:
        if not acquired:
            return {"skipped": "a rollup is running"}
        return services.rollup_all()


@shared_task(name="monitoring.tasks.scan_certificates")
def scan_certificates():
    found = {}
    for server in VpnServer.objects.filter(enabled=True).exclude(pki_dir=""):
        try:
            found[server.name] = services.scan_certificates(server)
        except OSError as exc:
            logger.warning("certificate scan of %s failed: %s", server.name, exc)
            found[server.name] = None
    return found
