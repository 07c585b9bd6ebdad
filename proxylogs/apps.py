from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs"

    def ready(self):
        from proxylogs import (  # noqa: F401 - they register the rollups
            dashboard_rollups,
            health,
            rollups,
        )
        from proxylogs.metrics import LogSourceCollector
        from proxylogs.services import delete_entries
        from vpnmonitor import ingestion_health, metrics, retention

        ingestion_health.register("log_sources", "proxy_log_sources", health.check)
        metrics.register(LogSourceCollector)

        retention.register("proxy_logs", "proxylogs.ProxyLogEntry", "timestamp", 30, "Squid access-log entries",
                           delete=delete_entries)  # keeps the rollups exact
        retention.register("proxy_log_imports", "proxylogs.LogImport", "started_at", 90,
                           "History of proxy access-log imports")
