"""Prometheus collectors of the OpenVPN servers, clients and certificates, named like kumina/openvpn_exporter
(status_path = server name); registered with vpnmonitor.metrics by the app's ready().

Client byte counters are the all-time totals vpnmonitor keeps per (server, common name), so they never go down,
not even across reconnections.
"""

from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitoring.models import Certificate, VpnClient

SERVER = ["status_path"]
CLIENT = ["status_path", "common_name"]
CERTIFICATE = ["status_path", "common_name", "file"]


def _seconds(moment):
    return moment.timestamp()


class OpenVpnCollector:
    """Per-client counters and per-server state, named like kumina/openvpn_exporter (status_path = server name)."""

    def __init__(self, health):
        self.health = health

    def collect(self):
        received = CounterMetricFamily(
            "openvpn_server_client_received_bytes",
            "Bytes the VPN server received from the client, all connections since it was first seen.", labels=CLIENT)
        sent = CounterMetricFamily(
            "openvpn_server_client_sent_bytes",
            "Bytes the VPN server sent to the client, all connections since it was first seen.", labels=CLIENT)
        connected = GaugeMetricFamily(
            "vpnmonitor_openvpn_client_connected", "1 when the client is connected, else 0.", labels=CLIENT)
        connections = GaugeMetricFamily(
            "vpnmonitor_openvpn_client_connections", "Connections the client has open.", labels=CLIENT)
        rows = VpnClient.objects.order_by("server__name", "common_name").values_list(
            "server__name", "common_name", "status", "connections", "total_bytes_received", "total_bytes_sent")
        for server, common_name, status, open_connections, bytes_received, bytes_sent in rows:
            labels = [server, common_name]
            received.add_metric(labels, bytes_received)
            sent.add_metric(labels, bytes_sent)
            is_active = status == VpnClient.Status.ACTIVE
            connected.add_metric(labels, 1 if is_active else 0)
            connections.add_metric(labels, open_connections if is_active else 0)
        yield from (received, sent, connected, connections)

        per_server = dict(
            VpnClient.objects.filter(status=VpnClient.Status.ACTIVE, server__enabled=True)
            .values_list("server__name").annotate(total=Sum("connections")).values_list("server__name", "total")
        )
        up = GaugeMetricFamily(
            "openvpn_up", "1 when the last poll of the server succeeded and is recent (not stale).", labels=SERVER)
        updated = GaugeMetricFamily(
            "openvpn_status_update_time_seconds", "TIME of the last status read, by the server's clock.",
            labels=SERVER)
        clients = GaugeMetricFamily(
            "openvpn_server_connected_clients", "Connections open on the server (CLIENT_LIST rows).", labels=SERVER)
        last_success = GaugeMetricFamily(
            "vpnmonitor_openvpn_server_last_success_timestamp_seconds",
            "When the server was last polled without error.",
            labels=SERVER)
        since_success = GaugeMetricFamily(
            "vpnmonitor_openvpn_server_seconds_since_last_success", "Seconds since the last good poll of the server.",
            labels=SERVER)
        stale = GaugeMetricFamily(
            "vpnmonitor_openvpn_server_stale",
            "1 when the last good poll is older than the stale threshold (see /api/v1/health).", labels=SERVER)
        failing = GaugeMetricFamily(
            "vpnmonitor_openvpn_server_poll_failing", "1 when the last poll of the server ended in an error.",
            labels=SERVER)
        for server in self.health.servers:
            labels = [server.name]
            up.add_metric(labels, 1 if server.up else 0)
            if server.last_status_time is not None:
                updated.add_metric(labels, _seconds(server.last_status_time))
            clients.add_metric(labels, per_server.get(server.name) or 0)
            if server.last_success_at is not None:
                last_success.add_metric(labels, _seconds(server.last_success_at))
                since_success.add_metric(labels, server.seconds_since_success)
            stale.add_metric(labels, 1 if server.stale else 0)
            failing.add_metric(labels, 1 if server.failing else 0)
        yield from (up, updated, clients, last_success, since_success, stale, failing)


class CertificateCollector:
    """Expiry and revocation of the certificates the servers' status files name."""

    def __init__(self, health):
        self.health = health

    def collect(self):
        not_after = GaugeMetricFamily(
            "vpnmonitor_certificate_not_after_timestamp_seconds", "When the certificate expires (Unix time).",
            labels=CERTIFICATE)
        revoked = GaugeMetricFamily(
            "vpnmonitor_certificate_revoked", "1 when the certificate is revoked.", labels=CERTIFICATE)
        rows = Certificate.objects.order_by("server__name", "file").values_list(
            "server__name", "common_name", "file", "not_after", "revoked")
        for server, common_name, file, expires, is_revoked in rows:
            labels = [server, common_name, file]
            not_after.add_metric(labels, _seconds(expires))
            revoked.add_metric(labels, 1 if is_revoked else 0)
        yield from (not_after, revoked)
