from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs"

    def ready(self):
        from proxylogs import dashboard_rollups, health
        from proxylogs.metrics import LogSourceCollector
        from vpnmonitor import ingestion_health, metrics, retention

        ingestion_health.register("log_sources", "proxy_log_sources", health.check)
        metrics.register(LogSourceCollector)

        retention.register("proxy_logs", "proxylogs.ProxyLogEntry", "timestamp", 30, "Squid access-log entries",
                           delete=dashboard_rollups.delete_entries)
        retention.register("proxy_log_imports", "proxylogs.LogImport", "started_at", 90,
                           "History of proxy access-log imports")
