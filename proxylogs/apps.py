from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs"

    def ready(self):
        from vpnmonitor import retention

        retention.register("proxy_logs", "proxylogs.ProxyLogEntry", "timestamp", 30, "Squid access-log entries")
        retention.register("proxy_log_imports", "proxylogs.LogImport", "started_at", 90,
                           "History of proxy access-log imports")
