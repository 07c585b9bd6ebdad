from django.apps import AppConfig


class ProxyTrafficConfig(AppConfig):
    name = "proxytraffic"
    verbose_name = "Proxy traffic"

    def ready(self):
        from proxytraffic import rollups  # noqa: F401 - registers the all-tenant summaries
        from vpnmonitor import retention

        retention.register(
            "proxy_traffic", "proxytraffic.TrafficBucket", "bucket", 90,
            "Proxy traffic pushed by proxy workers (15-minute buckets)",
        )
        # The all-tenant summaries must cover what the buckets cover, so they follow its policy. They only
        # grow (highest concurrency, first/last seen), so they are pruned by their own time column, not
        # subtracted from.
        retention.register("proxy_traffic_totals", "proxytraffic.TrafficTotal", "bucket", 90,
                           "All-tenant proxy traffic per 15 minutes (charts)", policy="proxy_traffic")
        retention.register("proxy_traffic_domain_days", "proxytraffic.TrafficDomainDay", "day", 90,
                           "All-tenant proxy traffic per day and domain (breakdowns)", policy="proxy_traffic")
        retention.register("proxy_traffic_error_days", "proxytraffic.TrafficErrorDay", "day", 90,
                           "All-tenant failed proxy traffic per day, error type and domain (errors breakdown)",
                           policy="proxy_traffic")
