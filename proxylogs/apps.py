from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs"

    def ready(self):
        from proxylogs import (
            health,
            rollups,  # noqa: F401 - registers the hourly rollup
        )
        from proxylogs.metrics import LogSourceCollector
        from proxylogs.services import delete_entries
        from vpnmonitor import ingestion_health, metrics, retention

        ingestion_health.register("log_sources", "proxy_log_sources", health.check)
        metrics.register(LogSourceCollector)

        retention.register("proxy_logs", "proxylogs.ProxyLogEntry", "timestamp", 30, "Squid access-log entries",
                           delete=delete_entries)  # keeps the hourly rollup exact
        retention.register("proxy_log_imports", "proxylogs.LogImport", "started_at", 90,
                           "History of proxy access-log imports")
