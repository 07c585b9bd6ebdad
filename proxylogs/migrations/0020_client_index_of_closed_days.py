"""The client index of the access log becomes an index of each day's partition once the day is over (PostgreSQL).

An import paid for the (client_ip, id) index on every line: its values arrive in no order, so each insert lands
on a random leaf. The table's index is dropped (with its partitions' ones) and each partition of a day that is
over gets an index of its own now; later days get theirs from the hourly beat task (partitions.index_closed).
SQLite keeps the index of migration 0001: only the model's state changes there.
"""

from django.db import migrations
from django.utils import timezone

INDEX = "proxylog_client_idx"
TABLE = "proxylogs_proxylogentry"


def _partitioned(cursor):
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return row is not None and row[0] == "p"


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    from proxylogs.models import CLOSED_DAY_INDEXES
    from vpnmonitor import partitions

    with connection.cursor() as cursor:
        partitioned = _partitioned(cursor)
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    if partitioned:
        before = partitions.day_number(timezone.now() - partitions.CLOSED_AFTER)
        partitions.build_closed_indexes(connection, TABLE, CLOSED_DAY_INDEXES, before)


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    from proxylogs.models import CLOSED_DAY_INDEXES
    from vpnmonitor import partitions

    with connection.cursor() as cursor:
        for number in sorted(partitions.attached(connection, TABLE) or ()):
            for index in CLOSED_DAY_INDEXES:
                cursor.execute(f'DROP INDEX IF EXISTS "{index.name(TABLE, number)}"')
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} (client_ip, id)")


class Migration(migrations.Migration):
    dependencies = [("proxylogs", "0019_fill_request_day_rollup")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="proxylogentry", name=INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
