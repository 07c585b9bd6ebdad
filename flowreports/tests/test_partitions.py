"""The flows' table partitioned by day on PostgreSQL: its migration, partitions made on demand, retention by day."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from flowreports import rollups, services
from flowreports.models import FlowReport, FlowReportDestinationDaily, FlowReportHourly
from flowreports.tests.test_rollups import assert_exact, batch, in_thread, stored  # noqa: F401 - stored: fixture
from vpnmonitor import partitions, retention
from vpnmonitor.models import RetentionPolicy
from vpnmonitor.tests import partition_facts

URL = "/api/v1/flow-reports"
TABLE = FlowReport._meta.db_table


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the flows' table is partitioned on PostgreSQL only")


def day(text):
    return partitions.day_number(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC))


def partition_days():
    return partitions.attached(connection, TABLE)


def one_flow(start, **fields):
    return {"source_ip": "10.8.0.1", "destination_ip": "8.8.8.8", "source_port": 40000, "destination_port": 443,
            "protocol": 6, "packets": 1, "bytes": 60, "start_time": start, "end_time": start, "action": "allow",
            "subscriber_id": "s1", "direction": "uplink", **fields}


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def table_facts():
    return partition_facts.table_facts(TABLE)


INDEXES = ["flowreport_destination_start", "flowreport_source_start", "flowreport_start_id",
           "flowreport_subscriber_start", "flowreports_flowreport_pkey"]


def test_the_migration_partitions_a_table_with_rows_and_keeps_them_and_their_ids(db):
    postgresql_only()
    # Back to the plain table of migration 0010, with rows on three days (one a year away), then forward again.
    with connection.schema_editor() as editor:
        partitions.unpartition_table(editor, FlowReport)
    assert table_facts() == ("r", ["id"], INDEXES, "public.flowreports_flowreport_id_seq")
    now = timezone.now()
    rows = [one_flow(at("2025-02-22T23:59:59.999999")), one_flow(at("2025-02-23T00:00:00")),
            one_flow(at("2025-02-23T12:00:00"), protocol=17), one_flow(at("2026-03-01T08:00:00"))]
    services.store_flows(rows, exporter="test")
    services.delete_flows(FlowReport.objects.filter(pk=FlowReport.objects.order_by("-pk")[0].pk))  # its id stays used
    before = list(FlowReport.objects.order_by("pk").values())
    hourly = list(FlowReportHourly.objects.order_by("pk").values())
    last_id = before[-1]["id"] + 1

    with connection.schema_editor() as editor:
        partitions.partition_table(editor, FlowReport, "start_time")

    assert table_facts() == ("p", ["id", "start_time"], INDEXES, "public.flowreports_flowreport_id_seq")
    today = partitions.day_number(now)
    assert partition_days() == {day("2025-02-22"), day("2025-02-23"), *range(today, today + partitions.AHEAD + 1)}
    assert list(FlowReport.objects.order_by("pk").values()) == before
    assert list(FlowReportHourly.objects.order_by("pk").values()) == hourly
    [new] = services.add_flows([FlowReport(**one_flow(now), exporter="after")])
    assert new.pk == last_id + 1  # the sequence goes on after the ids used, the deleted one too
    assert FlowReport.objects.filter(start_time__gte=at("2025-02-23T00:00:00")).count() == 3
    assert_exact()

    # And back: a plain table with every row, keyed by id alone.
    with connection.schema_editor() as editor:
        partitions.unpartition_table(editor, FlowReport)
    assert table_facts() == ("r", ["id"], INDEXES, "public.flowreports_flowreport_id_seq")
    assert FlowReport.objects.count() == 4
    [newer] = services.add_flows([FlowReport(**one_flow(now), exporter="after")])
    assert newer.pk == new.pk + 1
    with connection.schema_editor() as editor:
        partitions.partition_table(editor, FlowReport, "start_time")
    assert table_facts()[:2] == ("p", ["id", "start_time"])


def test_the_migration_refuses_a_table_that_a_foreign_key_points_to(db):
    postgresql_only()
    with connection.schema_editor() as editor:
        partitions.unpartition_table(editor, FlowReport)
        editor.execute(f"CREATE TABLE flow_note (flow_id bigint REFERENCES {TABLE} (id))")
        with pytest.raises(ValueError, match="foreign keys of flow_note point to it"):
            partitions.partition_table(editor, FlowReport, "start_time")


def test_writers_make_the_partitions_of_any_day_a_batch_touches(db):
    postgresql_only()
    now = timezone.now()
    odd = [at("1999-12-31T23:59:59.999999"), at("2000-01-01T00:00:00"), at("2042-06-30T12:00:00"), now]
    assert day("2042-06-30") not in partition_days()  # (other tests' committed writes may have made the others)
    services.store_flows([one_flow(moment) for moment in odd], exporter="test")
    assert {day("1999-12-31"), day("2000-01-01"), day("2042-06-30")} <= partition_days()
    assert FlowReport.objects.count() == 4
    # Each row lies in the partition of its day.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text, start_time FROM {TABLE} ORDER BY start_time")
        assert [name for name, _ in cursor.fetchall()] == [
            partitions.partition_name(TABLE, partitions.day_number(moment)) for moment in sorted(odd)]
    # The other writers: add_flows, and update_flows moving flows to a new day.
    services.add_flows([FlowReport(**one_flow(at("1980-05-05T05:05:05")), exporter="x")])
    assert services.update_flows(FlowReport.objects.filter(start_time=now), start_time=at("2061-01-01T00:00:00"),
                                 end_time=at("2061-01-01T00:00:00")) == 1
    assert {day("1980-05-05"), day("2061-01-01")} <= partition_days()
    assert FlowReport.objects.filter(start_time__year=2061).count() == 1
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_the_collector_makes_the_partition_of_a_new_day():
    postgresql_only()
    from flowreports.collector.decode import FlowRecord

    start_us = int(at("2033-03-03T03:03:03").timestamp() * 1_000_000)
    record = FlowRecord("192.0.2.1", 0, "10.8.0.1", "8.8.8.8", 40000, 443, 6, 1, 60, start_us, start_us,
                        "allow", 9, 1)
    assert day("2033-03-03") not in partition_days()
    try:
        sink = services.FlowSink()
        writer, results = in_thread(lambda: sink([record]).stored)  # a writer thread, as in the collector
        writer.join(30)
        assert results == [1]
        assert day("2033-03-03") in partition_days()
        assert FlowReport.objects.get().start_time == at("2033-03-03T03:03:03")
        assert_exact()
    finally:
        drop_partitions(day("2033-03-03"))


def drop_partitions(*days):
    """Partitions made by a test whose transactions committed (the flush empties tables, it does not drop them)."""
    with connection.cursor() as cursor:
        for number in days:
            cursor.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(TABLE, number)}")
    partitions.forget()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_a_new_day_make_one_partition_and_both_store():
    postgresql_only()
    new_day = at("2044-04-04T10:00:00")
    assert partitions.day_number(new_day) not in partition_days()
    try:
        # Both writers fail for want of the partition and queue for the table's lock, held here meanwhile.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [partitions._LOCK_NAMESPACE, partitions._lock_key(TABLE)])
        writers = [in_thread(lambda n=n: services.store_flows(
            [one_flow(new_day + dt.timedelta(minutes=n))] * 3, exporter=f"w{n}").stored) for n in range(2)]
        for thread, _ in writers:
            thread.join(1)
            assert thread.is_alive()  # waiting for the lock
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [partitions._LOCK_NAMESPACE,
                                                                  partitions._lock_key(TABLE)])
        for thread, results in writers:
            thread.join(30)
            assert results == [3]
        assert partitions.day_number(new_day) in partition_days()
        assert FlowReport.objects.filter(start_time__date=new_day.date()).count() == 6
        assert FlowReportHourly.objects.get(hour=rollups.floor_hour(new_day)).flows == 6
    finally:
        drop_partitions(partitions.day_number(new_day))


def test_create_ahead_makes_today_and_the_next_days(db):
    postgresql_only()
    now = at("2039-09-09T23:00:00")
    assert partitions.create_ahead(now=now) == 2  # the flows' table and the access log's
    assert {day("2039-09-09") + n for n in range(partitions.AHEAD + 1)} <= partition_days()
    assert day("2039-09-08") not in partition_days()


@pytest.mark.parametrize("days", [1, 3, 8])
def test_retention_drops_whole_days_before_the_cutoffs_day_with_their_rollup_buckets(stored, days, viewer_client,  # noqa: F811
                                                                                      monkeypatch):
    postgresql_only()
    retention.set_retention_days("flowreports", days)
    now = stored.replace(minute=31, second=7)
    kept_from = rollups.floor_day(now - dt.timedelta(days=days))  # the cutoff's day is kept whole
    gone = FlowReport.objects.filter(start_time__lt=kept_from).count()
    kept = FlowReport.objects.count() - gone
    assert retention.prune("flowreports", now=now) == gone
    assert gone > 0 or days == 8
    assert RetentionPolicy.objects.get(dataset="flowreports").last_pruned_rows == gone
    assert FlowReport.objects.count() == kept
    assert FlowReport.objects.order_by("start_time").first().start_time >= kept_from
    assert min(partition_days()) == partitions.day_number(kept_from)
    assert not FlowReportHourly.objects.filter(hour__lt=kept_from).exists()
    assert not FlowReportDestinationDaily.objects.filter(day__lt=kept_from).exists()
    assert_exact()
    # The API reads (whole buckets from the rollups, edges raw) equal the raw table's answers.
    from flowreports.filtersets import FlowReportFilterSet

    queries = ["", f"start={kept_from.date()}", f"start={(kept_from - dt.timedelta(days=2)).date()}",
               "start=2000-01-01&end=9999-12-31&protocol=6", "destination=8.8.8.8", "source=10.8.0.3"]
    answers = {q: (viewer_client.get(f"{URL}?{q}").json()["result"]["total_count"],
                   viewer_client.get(f"{URL}/stats?{q}").json()) for q in queries}
    monkeypatch.setattr(FlowReportFilterSet, "rollup_dimensions", lambda self: None)
    monkeypatch.setattr(FlowReportFilterSet, "endpoint_rollup", lambda self: None)
    for q in queries:
        assert answers[q] == (viewer_client.get(f"{URL}?{q}").json()["result"]["total_count"],
                              viewer_client.get(f"{URL}/stats?{q}").json()), q
    # A flow of a dropped day arriving late gets its partition again, and the next prune drops it.
    services.store_flows([one_flow(kept_from - dt.timedelta(days=1, hours=1))], exporter="late")
    assert_exact()
    assert retention.prune("flowreports", now=now) == 1
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_retention_detaches_concurrently_outside_a_transaction_and_finishes_an_interrupted_run():
    postgresql_only()
    try:
        now = timezone.now()
        services.store_flows(batch(300, now=now, days=5), exporter="test")
        rollups.seal_hours(now=now)
        # A run stopped after its detach: the table is left detached with its rows, its buckets still counted.
        oldest = partitions.day_number(FlowReport.objects.order_by("start_time").first().start_time)
        name = partitions.partition_name(TABLE, oldest)
        left = FlowReport.objects.filter(start_time__lt=partitions.day_start(oldest + 1)).count()
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
        statements = []
        with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
            cutoff = partitions.day_start(oldest + 2)
            gone = FlowReport.objects.filter(start_time__lt=cutoff).count()
            assert retention.prune("flowreports", now=cutoff + dt.timedelta(days=7, hours=5)) == gone + left
        assert any("DETACH PARTITION" in sql and sql.endswith("CONCURRENTLY") for sql in statements)
        assert min(partition_days()) == oldest + 2
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [name])
            assert cursor.fetchone() == (None,)
        assert_exact()
    finally:
        partitions.forget()


def test_clear_and_admin_deletes_work_on_the_partitioned_table(stored, operator_client):  # noqa: F811
    postgresql_only()
    one = FlowReport.objects.order_by("pk").first()
    assert services.delete_flows(FlowReport.objects.filter(pk=one.pk)) == 1
    assert_exact()
    assert operator_client.delete(URL).status_code == 200
    assert not FlowReport.objects.exists()
    assert_exact()


def test_sqlite_keeps_a_plain_table_and_deletes_rows(stored):  # noqa: F811
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    assert not partitions.partitioned(FlowReport)
    retention.set_retention_days("flowreports", 3)
    now = stored.replace(minute=31, second=7)
    gone = FlowReport.objects.filter(start_time__lt=now - dt.timedelta(days=3)).count()
    assert retention.prune("flowreports", now=now) == gone > 0
    assert_exact()

