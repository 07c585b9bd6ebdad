from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs and traffic"

    def ready(self):
        from vpnmonitor import retention

        retention.register(
            "proxy_traffic", "proxylogs.TrafficBucket", "bucket", 90,
            "Proxy traffic pushed by proxy workers (15-minute buckets)",
        )
        retention.register(
            "proxy_traffic_totals", "proxylogs.TrafficTotal", "bucket", 90,
            "All-tenant proxy traffic per 15 minutes (charts); keep as long as proxy_traffic",
        )
        retention.register(
            "proxy_traffic_domain_days", "proxylogs.TrafficDomainDay", "day", 90,
            "All-tenant proxy traffic per day and domain (breakdowns); keep as long as proxy_traffic",
        )
