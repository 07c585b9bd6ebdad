"""The move from proxylogs: the tables keep their names and rows; only the models' app changes."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from proxytraffic import schema, services
from proxytraffic.models import TrafficBucket, TrafficDomainDay, TrafficErrorDay, TrafficTotal

OLD_HEAD = ("proxylogs", "0010_security_profile_blacklist_counts")
TABLES = {"proxylogs_trafficbucket", "proxylogs_traffictotal", "proxylogs_trafficdomainday",
          "proxylogs_trafficerrorday"}
BUCKET = dt.datetime(2026, 3, 15, 10, 15, tzinfo=dt.UTC)
DAY = dt.datetime(2026, 3, 15, tzinfo=dt.UTC)


def _sums(count, errors=0):
    return {"count": count, "bytes_sent": 100 * count, "bytes_received": 1000 * count, "error_count": errors,
            "duration_ms": 10 * count, "max_concurrency": 4, "first_seen": BUCKET, "last_seen": BUCKET}


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor


@pytest.mark.django_db(transaction=True)
def test_rows_stored_before_the_move_are_read_and_added_to_through_the_proxytraffic_models():
    _migrate([OLD_HEAD, ("proxytraffic", None)])
    try:
        old = MigrationExecutor(connection).loader.project_state(OLD_HEAD).apps
        old.get_model("proxylogs", "TrafficBucket").objects.create(
            bucket=BUCKET, user_id=1, order_id=3, domain="google.com", error="ETIMEDOUT", worker="worker-01",
            port=443, protocol="HTTPS", ip_out="185.199.100.10", ip_from="78.100.50.12", **_sums(12, 2))
        old.get_model("proxylogs", "TrafficTotal").objects.create(bucket=BUCKET, **_sums(12, 2))
        old.get_model("proxylogs", "TrafficDomainDay").objects.create(day=DAY, domain="google.com", **_sums(12, 2))
        old.get_model("proxylogs", "TrafficErrorDay").objects.create(day=DAY, error="ETIMEDOUT", domain="google.com",
                                                                     **_sums(12, 2))
        old_type, _ = ContentType.objects.get_or_create(app_label="proxylogs", model="trafficbucket")
        viewing, _ = Permission.objects.get_or_create(content_type=old_type, codename="view_trafficbucket",
                                                      defaults={"name": "Can view proxy traffic bucket"})
        auditors = Group.objects.create(name="traffic auditors")
        auditors.permissions.add(viewing)

        _migrate(None)
        ContentType.objects.clear_cache()

        row = TrafficBucket.objects.get()
        assert (row.bucket, row.user_id, row.order_id, row.domain, row.error, row.port, row.ip_from) == (
            BUCKET, 1, 3, "google.com", "ETIMEDOUT", 443, "78.100.50.12")
        assert (row.count, row.bytes_sent, row.error_count) == (12, 1200, 2)
        assert list(TrafficTotal.objects.values_list("bucket", "count")) == [(BUCKET, 12)]
        assert list(TrafficDomainDay.objects.values_list("day", "domain", "count")) == [(DAY, "google.com", 12)]
        assert list(TrafficErrorDay.objects.values_list("error", "error_count")) == [("ETIMEDOUT", 2)]

        # The ingest upsert finds the old rows by their unique keys and adds to them.
        record = {"ts": "2026-03-15 10:20:00", "user_id": 1, "order_id": 3, "domain": "google.com",
                  "error": "ETIMEDOUT", "worker": "worker-01", "port": 443, "protocol": "HTTPS",
                  "ip_out": "185.199.100.10", "ip_from": "78.100.50.12", "count": 5, "error_count": 1}
        services.ingest_records(schema.check_batch({"logs": [record]}, now=BUCKET + dt.timedelta(days=1)))
        assert TrafficBucket.objects.values_list("count", "error_count").get() == (17, 3)
        assert list(TrafficTotal.objects.values_list("count", flat=True)) == [17]
        assert list(TrafficDomainDay.objects.values_list("count", flat=True)) == [17]
        assert list(TrafficErrorDay.objects.values_list("error_count", flat=True)) == [3]

        # A permission granted on the old model is the same permission on the moved one.
        assert auditors.permissions.get().content_type == ContentType.objects.get_for_model(TrafficBucket)
        assert not ContentType.objects.filter(app_label="proxylogs", model="trafficbucket").exists()
    finally:
        _migrate(None)
        ContentType.objects.clear_cache()


@pytest.mark.django_db
def test_a_fresh_database_has_each_traffic_table_once_under_its_old_name():
    tables = set(connection.introspection.table_names())
    assert TABLES <= tables
    assert not [table for table in tables if table.startswith("proxytraffic")]
    assert {model._meta.db_table for model in (TrafficBucket, TrafficTotal, TrafficDomainDay, TrafficErrorDay)} == TABLES


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    call_command("makemigrations", "proxylogs", "proxytraffic", check=True, dry_run=True, verbosity=0)
