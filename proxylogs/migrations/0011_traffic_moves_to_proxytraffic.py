"""The proxy-traffic models move to the proxytraffic app (its migration 0001), tables and rows as they are.

State only: the four tables stay where migrations 0002-0008 made them, under their names, which the
proxytraffic models keep (Meta.db_table). A fresh database gets them from those migrations, once.
"""

from django.db import migrations

MODELS = ("TrafficBucket", "TrafficTotal", "TrafficDomainDay", "TrafficErrorDay")


class Migration(migrations.Migration):

    dependencies = [
        ("proxylogs", "0010_security_profile_blacklist_counts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name) for name in MODELS],
            database_operations=[],
        ),
    ]
