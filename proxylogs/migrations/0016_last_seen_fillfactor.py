"""The last-seen tables keep half of each page free (PostgreSQL): an import updates most of their rows again and
again (a key's latest time moves on with every batch that sees it), and an update whose new row version fits in
its page changes no index (a heap-only update) where one in a full page inserts into the wide unique key too.

Pages written from now on are filled to half; a table rewritten (VACUUM FULL) is repacked so.
"""

from django.db import migrations

TABLES = ("proxylogs_proxylogclientseen", "proxylogs_proxyloghostseen", "proxylogs_proxyloghostclientseen")


def half_full(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = 50)")


def full(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ("proxylogs", "0015_fill_dashboard_rollups"),
    ]

    operations = [
        migrations.RunPython(half_full, full),
    ]
