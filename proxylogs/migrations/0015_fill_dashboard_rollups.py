"""The rollups of proxylogs.dashboard_rollups, filled from the entries already stored, in SQL.

A migration of its own: the rollups' unique keys, which the fill's upsert needs, are created when 0014 ends.
"""

from django.db import migrations


def fill(apps, schema_editor):
    if not apps.get_model("proxylogs", "ProxyLogEntry").objects.using(schema_editor.connection.alias).exists():
        return
    # The live declarations: they are read from the current models, which these tables match at this point.
    from proxylogs import dashboard_rollups

    dashboard_rollups.rebuild(using=schema_editor.connection.alias)


class Migration(migrations.Migration):

    dependencies = [
        ("proxylogs", "0014_dashboard_rollups"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
