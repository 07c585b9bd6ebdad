from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "OpenVPN monitoring"

    def ready(self):
        from monitoring import health, rollups  # noqa: F401 - rollups registers the usage rollups
        from monitoring.metrics import CertificateCollector, OpenVpnCollector
        from vpnmonitor import ingestion_health, metrics, retention

        # Pruned samples are NOT subtracted from the usage rollups (no delete=): the rollups outlive them.
        retention.register("vpn_raw", "monitoring.UsageSample", "timestamp", 7, "OpenVPN raw samples (usage_history)")
        retention.register("vpn_polls", "monitoring.PollRecord", "timestamp", 31, "OpenVPN poll totals (poll_history)")
        retention.register("vpn_poll_15min", "monitoring.PollQuarter", "bucket", 365,
                           "OpenVPN server totals per 15 minutes (poll_15min)")
        retention.register("vpn_hourly", "monitoring.StatsHourly", "bucket", 90, "OpenVPN hourly rollup")
        retention.register("vpn_6h", "monitoring.Stats6h", "bucket", 365, "OpenVPN 6-hour rollup")
        retention.register("vpn_daily", "monitoring.StatsDaily", "bucket", 1825, "OpenVPN daily rollup")
        retention.register("vpn_sessions", "monitoring.VpnSession", "updated_at", 30, "VPN sessions")
        ingestion_health.register("servers", "openvpn_servers", health.check)
        metrics.register(OpenVpnCollector)
        metrics.register(CertificateCollector)
