"""Prometheus collector of the Squid log sources; registered with vpnmonitor.metrics by the app's ready()."""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class LogSourceCollector:
    """Per log source: unread bytes, time since the last import, lines imported and rejected, lag and failure."""

    def __init__(self, health):
        self.health = health

    def collect(self):
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
