from django.apps import AppConfig


class ProxyLogsConfig(AppConfig):
    name = "proxylogs"
    verbose_name = "Proxy logs and traffic"
