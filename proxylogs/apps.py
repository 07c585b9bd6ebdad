from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs and traffic"

    def ready(self):
        from proxylogs import health
        from proxylogs.metrics import LogSourceCollector
        from vpnmonitor import ingestion_health, metrics, retention

        ingestion_health.register("log_sources", "proxy_log_sources", health.check)
        metrics.register(LogSourceCollector)

        retention.register("proxy_logs", "proxylogs.ProxyLogEntry", "timestamp", 30, "Squid access-log entries")
        retention.register("proxy_log_imports", "proxylogs.LogImport", "started_at", 90,
                           "History of proxy access-log imports")
        retention.register(
            "proxy_traffic", "proxylogs.TrafficBucket", "bucket", 90,
            "Proxy traffic pushed by proxy workers (15-minute buckets)",
        )
        # The all-tenant summaries must cover what the buckets cover, so they follow its policy.
        retention.register("proxy_traffic_totals", "proxylogs.TrafficTotal", "bucket", 90,
                           "All-tenant proxy traffic per 15 minutes (charts)", policy="proxy_traffic")
        retention.register("proxy_traffic_domain_days", "proxylogs.TrafficDomainDay", "day", 90,
                           "All-tenant proxy traffic per day and domain (breakdowns)", policy="proxy_traffic")
        retention.register("proxy_traffic_error_days", "proxylogs.TrafficErrorDay", "day", 90,
                           "All-tenant failed proxy traffic per day, error type and domain (errors breakdown)",
                           policy="proxy_traffic")
