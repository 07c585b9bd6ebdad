"""Reads the dashboard needs that the apps' selectors do not offer: short, bounded lists of rows."""

from monitoring.models import Certificate, VpnClient, VpnSession

ACTIVE_CLIENTS_LIMIT = 200
SESSIONS_LIMIT = 20


def active_clients(limit=ACTIVE_CLIENTS_LIMIT):
    """The connected clients right now (one row per server connection), fastest first."""
    return list(
        VpnClient.objects.filter(status=VpnClient.Status.ACTIVE)
        .select_related("server")
        .order_by("-recv_rate_bps", "common_name", "pk")
        .values("common_name", "server__name", "real_address", "virtual_address", "recv_rate_bps",
                "sent_rate_bps", "connections", "first_seen")[:limit]
    )


def client_connections(common_name):
    """The client's rows per server: where it connects from and how fast it is going."""
    return list(
        VpnClient.objects.filter(common_name=common_name).select_related("server").order_by("server__name")
        .values("server__name", "status", "real_address", "virtual_address", "recv_rate_bps", "sent_rate_bps",
                "last_seen")
    )


def client_sessions(common_name, limit=SESSIONS_LIMIT):
    """The client's latest sessions, newest first."""
    return list(
        VpnSession.objects.filter(common_name=common_name).select_related("server")
        .order_by("-started_at", "-pk")
        .values("server__name", "status", "started_at", "ended_at", "real_ip", "virtual_address", "protocol",
                "bytes_received", "bytes_sent", "os_type", "disconnect_reason")[:limit]
    )


def client_certificates(common_name):
    return list(
        Certificate.objects.filter(common_name=common_name).select_related("server")
        .order_by("not_after", "file").values("server__name", "file", "serial", "not_before", "not_after", "revoked")
    )
