from django.db import migrations

from vpnmonitor.partitions import PartitionByDay


class Migration(migrations.Migration):
    """FlowReport's table partitioned by day of start_time on PostgreSQL (rows, indexes and ids kept), so that
    retention drops whole days; the model is unchanged, and SQLite keeps a plain table."""

    dependencies = [
        ("flowreports", "0010_flowreport_plain_manager"),
    ]

    operations = [
        PartitionByDay("flowreport", "start_time"),
    ]
