from django.apps import AppConfig, apps
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
    # Run once, after the last app's post_migrate (Django sends it per app with models, in INSTALLED_APPS
    # order), so every app's tables and permissions exist.
    last = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    if app_config is None or app_config.label != last.label:
        return
    from vpnmonitor import retention, roles, schedule

    retention.ensure_policies()
    schedule.ensure_periodic_tasks()
    roles.ensure_groups()
