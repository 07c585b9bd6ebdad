from django.apps import AppConfig


class FlowReportsConfig(AppConfig):
    name = "flowreports"
    verbose_name = "Flow reports"
