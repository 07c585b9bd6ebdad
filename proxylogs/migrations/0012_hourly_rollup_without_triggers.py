# The hourly rollup (proxylogs_proxyloghour) is kept by proxylogs.services through vpnmonitor.rollups from now
# on, in the transaction of each write, so the triggers of 0001_access_logs (their PostgreSQL functions as 0005
# made them) are dropped. The rollup's rows stay as they are: the triggers kept them exact up to here.
#
# Reversing installs the triggers again as 0005 left them; the rollup is exact then too.

import importlib

from django.db import migrations

access_logs = importlib.import_module("proxylogs.migrations.0001_access_logs")
hour_bin = importlib.import_module("proxylogs.migrations.0005_rollup_hour_date_bin")

ENTRY = "proxylogs_proxylogentry"

POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS proxylogs_rollup_insert ON {ENTRY}",
    f"DROP TRIGGER IF EXISTS proxylogs_rollup_delete ON {ENTRY}",
    f"DROP TRIGGER IF EXISTS proxylogs_rollup_truncate ON {ENTRY}",
    "DROP FUNCTION IF EXISTS proxylogs_rollup_insert()",
    "DROP FUNCTION IF EXISTS proxylogs_rollup_delete()",
    "DROP FUNCTION IF EXISTS proxylogs_rollup_truncate()",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS proxylogs_rollup_insert",
    "DROP TRIGGER IF EXISTS proxylogs_rollup_delete",
]


def drop_rollup_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in POSTGRESQL_DROP if vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement, params=None)


def install_rollup_triggers(apps, schema_editor):
    access_logs.install_rollup_triggers(apps, schema_editor)
    if schema_editor.connection.vendor == "postgresql":
        for statement in hour_bin._functions(hour_bin.NEW_BIN):
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("proxylogs", "0011_traffic_moves_to_proxytraffic"),
    ]

    operations = [
        migrations.RunPython(drop_rollup_triggers, install_rollup_triggers),
    ]
