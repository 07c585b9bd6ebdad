"""Prometheus collectors for GET /metrics: OpenVPN clients (OpenVPN-exporter names), certificates, ingestion health.

Everything is read from the database when scraped, so every web process answers the same and nothing is kept
in process memory. Client byte counters are the all-time totals vpnmonitor keeps per (server, common name), so
they never go down, not even across reconnections.
"""

from __future__ import annotations

import logging

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from vpnmonitor.ingestion_health import celery_queue_lengths, ingest_record_counts, ingestion_health

logger = logging.getLogger(__name__)

SERVER = ["status_path"]
CLIENT = ["status_path", "common_name"]
CERTIFICATE = ["status_path", "common_name", "file"]
COLLECTOR_COUNTER_HELP = {
    "packets_received": "Export packets received by the flow collector.",
    "packets_lost": "Export packets the kernel discarded before the flow collector read them (receive buffer full).",
    "flows_received": "Flow records decoded by the flow collector.",
    "flows_stored": "Flow records the flow collector stored.",
    "flows_dropped": "Flow records the flow collector dropped (database behind or failing).",
    "malformed_packets": "Export packets the flow collector could not decode.",
    "sets_dropped_no_template": "NetFlow v9/IPFIX data sets dropped because their template was never received.",
    "sink_failures": "Batches the flow collector could not store (their flows count in flows_dropped).",
}


def _timestamp(moment):
    return moment.timestamp()


class OpenVpnCollector:
    """Per-client counters and per-server state, named like kumina/openvpn_exporter (status_path = server name)."""

    def __init__(self, health):
        self.health = health

    def collect(self):
        from django.db.models import Sum

        from monitoring.models import VpnClient

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
                updated.add_metric(labels, _timestamp(server.last_status_time))
            clients.add_metric(labels, per_server.get(server.name) or 0)
            if server.last_success_at is not None:
                last_success.add_metric(labels, _timestamp(server.last_success_at))
                since_success.add_metric(labels, server.seconds_since_success)
            stale.add_metric(labels, 1 if server.stale else 0)
            failing.add_metric(labels, 1 if server.failing else 0)
        yield from (up, updated, clients, last_success, since_success, stale, failing)


class CertificateCollector:
    def collect(self):
        from monitoring.models import Certificate

        not_after = GaugeMetricFamily(
            "vpnmonitor_certificate_not_after_timestamp_seconds", "When the certificate expires (Unix time).",
            labels=CERTIFICATE)
        revoked = GaugeMetricFamily(
            "vpnmonitor_certificate_revoked", "1 when the certificate is revoked.", labels=CERTIFICATE)
        rows = Certificate.objects.order_by("server__name", "file").values_list(
            "server__name", "common_name", "file", "not_after", "revoked")
        for server, common_name, file, expires, is_revoked in rows:
            labels = [server, common_name, file]
            not_after.add_metric(labels, _timestamp(expires))
            revoked.add_metric(labels, 1 if is_revoked else 0)
        yield from (not_after, revoked)


class IngestionCollector:
    """Proxy log sources, flow collectors, HTTP ingest and the Celery queue."""

    def __init__(self, health):
        self.health = health

    def collect(self):
        yield from self._log_sources()
        yield from self._flow_collectors()
        yield from self._ingest()
        yield from self._celery()
        yield from self._cache()

    def _log_sources(self):
        source = ["source"]
        unread = GaugeMetricFamily(
            "vpnmonitor_proxy_log_unread_bytes",
            "Bytes of the access log not imported yet (absent when the web process cannot see the file).",
            labels=source)
        since = GaugeMetricFamily(
            "vpnmonitor_proxy_log_seconds_since_last_import", "Seconds since the log was last read without error.",
            labels=source)
        imported = CounterMetricFamily(
            "vpnmonitor_proxy_log_lines_imported", "Access-log lines stored.", labels=source)
        rejected = CounterMetricFamily(
            "vpnmonitor_proxy_log_lines_rejected", "Access-log lines rejected as malformed.", labels=source)
        lagging = GaugeMetricFamily(
            "vpnmonitor_proxy_log_lagging", "1 when unread lines wait longer than LOG_SOURCE_LAG_SECONDS.",
            labels=source)
        failing = GaugeMetricFamily(
            "vpnmonitor_proxy_log_failing", "1 when the last read of the log ended in an error.", labels=source)
        for log in self.health.log_sources:
            labels = [log.name]
            if log.unread_bytes is not None:
                unread.add_metric(labels, log.unread_bytes)
            if log.seconds_since_import is not None:
                since.add_metric(labels, log.seconds_since_import)
            imported.add_metric(labels, log.lines_imported)
            rejected.add_metric(labels, log.lines_rejected)
            lagging.add_metric(labels, 1 if log.lagging else 0)
            failing.add_metric(labels, 1 if log.failing else 0)
        yield from (unread, since, imported, rejected, lagging, failing)

    def _flow_collectors(self):
        collector = ["collector"]
        up = GaugeMetricFamily(
            "vpnmonitor_flow_collector_up", "1 while the flow collector runs and reports its counters.",
            labels=collector)
        updated = GaugeMetricFamily(
            "vpnmonitor_flow_collector_last_update_timestamp_seconds",
            "When the flow collector last saved its counters.",
            labels=collector)
        counters = {
            name: CounterMetricFamily(f"vpnmonitor_flow_collector_{name}", text, labels=collector)
            for name, text in COLLECTOR_COUNTER_HELP.items()
        }
        for status in self.health.collectors:
            labels = [status.name]
            up.add_metric(labels, 1 if status.running else 0)
            updated.add_metric(labels, _timestamp(status.updated_at))
            for name, family in counters.items():
                family.add_metric(labels, status.counters[name])
        yield up
        yield updated
        yield from counters.values()

    def _ingest(self):
        records = CounterMetricFamily(
            "vpnmonitor_ingest_records", "Records accepted by an HTTP ingest endpoint.", labels=["dataset"])
        batches = CounterMetricFamily(
            "vpnmonitor_ingest_batches", "Batches accepted by an HTTP ingest endpoint.", labels=["dataset"])
        for dataset, (record_count, batch_count) in ingest_record_counts().items():
            records.add_metric([dataset], record_count)
            batches.add_metric([dataset], batch_count)
        yield from (records, batches)

    def _celery(self):
        broker_up = GaugeMetricFamily("vpnmonitor_celery_broker_up", "1 when the Celery broker could be read.")
        length = GaugeMetricFamily(
            "vpnmonitor_celery_queue_length", "Tasks waiting in the Celery queue.", labels=["queue"])
        try:
            lengths = celery_queue_lengths()
        except Exception as exc:  # noqa: BLE001 - an unreadable broker is reported as a metric, not a failed scrape
            logger.warning("could not read the Celery queue length: %s", exc)
            broker_up.add_metric([], 0)
        else:
            broker_up.add_metric([], 1)
            for queue, count in lengths.items():
                length.add_metric([queue], count)
        yield from (broker_up, length)


    def _cache(self):
        from vpnmonitor.models import ServiceFailureCounter

        failures = CounterMetricFamily(
            "vpnmonitor_cache_failures",
            "Cache operations served without Redis (served as misses; throttling open): failed, or skipped for a "
            "few seconds after a failure. Each process adds its count at most once a minute.")
        row = ServiceFailureCounter.objects.filter(service="cache").values_list("failures", flat=True).first()
        failures.add_metric([], row or 0)
        yield failures


def registry(now=None):
    """A registry of every collector, built per scrape (the process-wide default registry is not used)."""
    health = ingestion_health(now)
    result = CollectorRegistry(auto_describe=False)
    result.register(OpenVpnCollector(health))
    result.register(CertificateCollector())
    result.register(IngestionCollector(health))
    return result


def exposition(accept_header="", now=None):
    """(body, content type) for GET /metrics, in the format the scraper asked for (text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept_header)
    return encoder(registry(now)), content_type
