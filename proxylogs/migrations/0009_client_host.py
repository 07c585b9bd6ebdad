# Clients that Squid logs by host name (log_fqdn on, %>A): client_ip may be empty, client_host holds the name.
#
# On SQLite, AlterField rebuilds the table, which drops the rollup triggers of 0001_access_logs, so they are
# installed again after it. On PostgreSQL the column only drops NOT NULL and the triggers stay.

import importlib

from django.db import migrations, models

access_logs = importlib.import_module("proxylogs.migrations.0001_access_logs")


def reinstall_sqlite_rollup_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        access_logs.remove_rollup_triggers(apps, schema_editor)
        access_logs.install_rollup_triggers(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('proxylogs', '0008_traffic_domain_and_error_days'),
    ]

    operations = [
        migrations.AddField(
            model_name='proxylogentry',
            name='client_host',
            field=models.CharField(blank=True, help_text="the client's host name as logged (Squid log_fqdn, %>A), else empty", max_length=255, null=True),
        ),
        migrations.AlterField(
            model_name='proxylogentry',
            name='client_ip',
            field=models.GenericIPAddressField(blank=True, help_text='empty when the client is logged by name', null=True),
        ),
        migrations.RunPython(reinstall_sqlite_rollup_triggers, reinstall_sqlite_rollup_triggers),
    ]
