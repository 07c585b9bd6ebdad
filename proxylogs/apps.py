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
        from proxylogs.models import CLOSED_DAY_INDEXES
        from proxylogs.services import delete_entries
        from vpnmonitor import ingestion_health, metrics, partitions, retention

        ingestion_health.register("log_sources", "proxy_log_sources", health.check)
        metrics.register(LogSourceCollector)

        retention.register("proxy_logs", "proxylogs.ProxyLogEntry", "timestamp", 30, "Squid access-log entries",
                           delete=delete_entries)  # keeps the rollups exact
        # One partition per day on PostgreSQL (migration 0016): retention drops whole days with the buckets of the
        # summed rollups; the last-seen ones (one bucket for all time) then forget the keys no entry is left of.
        # The client index is built on each day once it is over (migration 0020): an import pays for the time
        # index alone.
        partitions.register("proxylogs.ProxyLogEntry", "timestamp",
                            rollups=(rollups.HOURLY, *dashboard_rollups.SUMMED),
                            after_drop=dashboard_rollups.forget_unseen, closed_indexes=CLOSED_DAY_INDEXES)
        retention.register("proxy_log_imports", "proxylogs.LogImport", "started_at", 90,
                           "History of proxy access-log imports")
