from django.apps import AppConfig
from django.db.models.signals import post_migrate


class VpnMonitorConfig(AppConfig):
    name = "vpnmonitor"
    verbose_name = "vpnmonitor settings"

    def ready(self):
        from vpnmonitor import checks, retention  # noqa: F401 - checks registers the deployment checks

        retention.register(
            "audit", "vpnmonitor.AuditEvent", "created_at", 365, "Audit log of admin and API actions"
        )
        post_migrate.connect(_after_migrate, dispatch_uid="vpnmonitor.after_migrate")


def _after_migrate(sender, app_config=None, using="default", **kwargs):
    # Run once, after the last app's migrations, so every app's tables exist.
    if app_config is None or app_config.label != "vpnmonitor":
        return
    from vpnmonitor import retention, roles, schedule

    retention.ensure_policies()
    schedule.ensure_periodic_tasks()
    roles.ensure_groups()
