from django.db import migrations

from vpnmonitor.partitions import PartitionByDay


class Migration(migrations.Migration):
    """ProxyLogEntry's table partitioned by day of timestamp on PostgreSQL (rows, indexes and ids kept), so that
    retention drops whole days; the model is unchanged, and SQLite keeps a plain table."""

    dependencies = [
        ("proxylogs", "0016_last_seen_fillfactor"),
    ]

    operations = [
        PartitionByDay("proxylogentry", "timestamp"),
    ]
