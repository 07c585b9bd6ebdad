from django.apps import AppConfig
from django.db.backends.signals import connection_created


class FlowReportsConfig(AppConfig):
    name = "flowreports"
    verbose_name = "Flow reports"

    def ready(self):
        from flowreports import (
            health,
            rollups,  # noqa: F401 - registers the flow rollups
        )
        from flowreports.metrics import FlowCollectorCollector
        from flowreports.selectors import register_sqlite_functions
        from flowreports.services import delete_flows
        from vpnmonitor import ingestion_health, metrics, partitions, retention

        retention.register(
            "flowreports", "flowreports.FlowReport", "start_time", 7,
            "Flow reports (IPFIX/NetFlow collector and HTTP ingest), by flow start time",
            delete=delete_flows,  # keeps the rollups exact
        )
        # One partition per day on PostgreSQL (migration 0011): retention drops whole days.
        partitions.register("flowreports.FlowReport", "start_time")
        connection_created.connect(register_sqlite_functions, dispatch_uid="flowreports.sqlite_functions")
        ingestion_health.register("collectors", "flow_collectors", health.check)
        metrics.register(FlowCollectorCollector)
