"""Prometheus collector of the flow collectors' counters; registered with vpnmonitor.metrics by the app's ready()."""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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


class FlowCollectorCollector:
    """Per flow collector: whether it runs, when it last reported, and its counters."""

    def __init__(self, health):
        self.health = health

    def collect(self):
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
            updated.add_metric(labels, status.updated_at.timestamp())
            for name, family in counters.items():
                family.add_metric(labels, status.counters[name])
        yield up
        yield updated
        yield from counters.values()
