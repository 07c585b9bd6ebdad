"""The access log's table partitioned by day on PostgreSQL: its migration, partitions made by imports of any day,
retention by whole days with every rollup left exact, and clearing."""

import datetime as dt

import pytest
from django.db import connection

from proxylogs import services
from proxylogs.models import (
    CLOSED_DAY_INDEXES,
    ProxyLogClientSeen,
    ProxyLogEntry,
    ProxyLogHostClientSeen,
    ProxyLogHostSeen,
)
from proxylogs.tests.logs_dataset import native_line
from proxylogs.tests.test_dashboard_rollups import NOW, assert_selectors_match_the_entries, entries, store
from vpnmonitor import partitions, retention
from vpnmonitor import rollups as core
from vpnmonitor.models import RetentionPolicy
from vpnmonitor.tests import partition_facts

pytestmark = pytest.mark.django_db

TABLE = ProxyLogEntry._meta.db_table
INDEXES = ["proxylog_time_idx", "proxylogs_proxylogentry_pkey"]
SEEN = (ProxyLogClientSeen, ProxyLogHostSeen, ProxyLogHostClientSeen)


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the access log's table is partitioned on PostgreSQL only")


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def day(text):
    return partitions.day_number(at(text))


def partition_days():
    return partitions.attached(connection, TABLE)


def table_facts():
    return partition_facts.table_facts(TABLE)


def rollup_tables():
    """Every rollup of the entries (hourly and daily sums, ProxyLogHour, last-seen), row by row."""
    return {rollup.name: sorted(rollup.rollup_model.objects.values_list(
        *[field.attname for field in rollup.rollup_model._meta.fields if field.attname != "id"]), key=repr)
        for rollup in core.of(ProxyLogEntry)}


def assert_exact():
    """The rollups hold what a rebuild from the entries left makes, and the summaries equal the entries'."""
    kept = rollup_tables()
    core.rebuild(ProxyLogEntry)
    assert rollup_tables() == kept
    assert_selectors_match_the_entries()
    return kept


def import_lines(tmp_path, moments, name="access.log"):
    log = tmp_path / name
    log.write_text("".join(native_line(moment, "10.0.0.5", "TCP_MISS/200", 350, "GET", "http://www.example.com/",
                                       "-", "HIER_DIRECT/192.0.2.80", "text/html") + "\n" for moment in moments))
    return services.import_source(services.source_for_path(log))


def test_there_are_eleven_rollups_and_retention_drops_the_buckets_of_the_eight_summed_ones():
    assert len(core.of(ProxyLogEntry)) == 11
    declared = partitions.declared(ProxyLogEntry)
    assert (declared.time, len(declared.rollups)) == ("timestamp", 8)
    assert all(rollup.subtractable for rollup in declared.rollups)
    assert {rollup.rollup_model for rollup in core.of(ProxyLogEntry)} - {r.rollup_model for r in declared.rollups} \
        == set(SEEN)


def test_the_migration_partitions_a_table_with_rows_and_keeps_them_and_their_ids(tmp_path):
    postgresql_only()
    # Back to the plain table of migration 0016, with rows on three days (one a year before), then forward again.
    with connection.schema_editor() as editor:
        partitions.unpartition_table(editor, ProxyLogEntry)
    assert table_facts() == ("r", ["id"], INDEXES, "public.proxylogs_proxylogentry_id_seq")
    moments = [at("2025-02-22T23:59:59.999"), at("2025-02-23T00:00:00"), at("2025-02-23T12:00:00"),
               at("2026-03-01T08:00:00")]
    assert import_lines(tmp_path, moments).imported == 4
    last = ProxyLogEntry.objects.order_by("-pk")[0]
    assert services.delete_entries(ProxyLogEntry.objects.filter(pk=last.pk)) == 1  # its id stays used
    before = list(ProxyLogEntry.objects.order_by("pk").values())
    rollups_before = rollup_tables()

    with connection.schema_editor() as editor:
        partitions.partition_table(editor, ProxyLogEntry, "timestamp")

    assert table_facts() == ("p", ["id", "timestamp"], INDEXES, "public.proxylogs_proxylogentry_id_seq")
    today = partitions.day_number(dt.datetime.now(dt.UTC))
    assert partition_days() == {day("2025-02-22"), day("2025-02-23"), *range(today, today + partitions.AHEAD + 1)}
    assert list(ProxyLogEntry.objects.order_by("pk").values()) == before
    assert rollup_tables() == rollups_before
    # (Into today's partition: a batch refused for want of one would use ids before it is stored again.)
    assert import_lines(tmp_path, [dt.datetime.now(dt.UTC)], "later.log").imported == 1
    assert ProxyLogEntry.objects.order_by("-pk")[0].pk == last.pk + 1  # after the ids used, the deleted one too
    assert ProxyLogEntry.objects.filter(timestamp__gte=at("2025-02-23T00:00:00")).count() == 3

    # And back: a plain table with every row, keyed by id alone.
    with connection.schema_editor() as editor:
        partitions.unpartition_table(editor, ProxyLogEntry)
    assert table_facts() == ("r", ["id"], INDEXES, "public.proxylogs_proxylogentry_id_seq")
    assert ProxyLogEntry.objects.count() == 4
    with connection.schema_editor() as editor:
        partitions.partition_table(editor, ProxyLogEntry, "timestamp")
    assert table_facts()[:2] == ("p", ["id", "timestamp"])
    assert_exact()


def client_indexes():
    """{day number: whether its partition's client index is valid} of the partitions that have one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                       "WHERE c.relname LIKE %s", [f"{TABLE}_p%_client"])
        return {partitions._number(TABLE, name.removesuffix("_client")): valid for name, valid in cursor.fetchall()}


def plan_of(queryset):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(line for (line,) in cursor.fetchall())


def test_the_client_index_is_built_on_each_day_once_it_is_over(tmp_path):
    postgresql_only()
    import_lines(tmp_path, [at("2026-03-01T10:00:00"), at("2026-03-02T23:59:00"), at("2026-03-03T00:30:00")])
    assert not client_indexes().keys() & {day("2026-03-01"), day("2026-03-02"), day("2026-03-03")}
    # An hour after 03-02 ended: the days before 03-03 are over (03-03's lines may still be coming).
    assert partitions.index_closed(now=at("2026-03-03T01:00:00")) >= 2
    indexed = client_indexes()
    assert indexed[day("2026-03-01")] and indexed[day("2026-03-02")] and day("2026-03-03") not in indexed
    assert partitions.index_closed(now=at("2026-03-03T01:00:00")) == 0
    # A build interrupted half way leaves an invalid index: it is dropped and built again.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)",
                       [CLOSED_DAY_INDEXES[0].name(TABLE, day("2026-03-02"))])
    assert client_indexes()[day("2026-03-02")] is False
    assert partitions.index_closed(now=at("2026-03-03T01:00:00")) == 1
    assert client_indexes()[day("2026-03-02")] is True
    # A client's entries of a day over are read through its index; those of a day under way, through the time one.
    closed = ProxyLogEntry.objects.filter(client_ip="10.0.0.5", timestamp__gte=at("2026-03-02T00:00:00"),
                                          timestamp__lt=at("2026-03-03T00:00:00"))
    assert "p20260302_client" in plan_of(closed)
    assert closed.count() == 1
    open_day = ProxyLogEntry.objects.filter(client_ip="10.0.0.5", timestamp__gte=at("2026-03-03T00:00:00"),
                                            timestamp__lt=at("2026-03-04T00:00:00"))
    assert "_client" not in plan_of(open_day) and open_day.count() == 1


def test_the_migration_moves_the_client_index_to_the_partitions_of_days_over_and_back(tmp_path):
    postgresql_only()
    import importlib
    from types import SimpleNamespace

    migration = importlib.import_module("proxylogs.migrations.0020_client_index_of_closed_days")
    editor = SimpleNamespace(connection=connection)
    import_lines(tmp_path, [at("2026-03-01T10:00:00"), dt.datetime.now(dt.UTC)])
    migration.backwards(None, editor)
    assert "proxylog_client_idx" in table_facts()[2] and not client_indexes()
    migration.forwards(None, editor)
    assert table_facts()[2] == INDEXES
    today = partitions.day_number(dt.datetime.now(dt.UTC) - partitions.CLOSED_AFTER)
    assert set(client_indexes()) == {number for number in partition_days() if number < today}
    assert day("2026-03-01") in client_indexes()


def test_an_import_of_lines_from_odd_days_makes_their_partitions(tmp_path):
    postgresql_only()
    odd = [at("1999-12-31T23:59:59.999"), at("2000-01-01T00:00:00"), at("2042-06-30T12:00:00"), NOW]
    assert day("2042-06-30") not in partition_days()  # (other tests' committed writes may have made the others)
    result = import_lines(tmp_path, odd)
    assert (result.imported, result.rejected) == (4, 0)
    assert {day("1999-12-31"), day("2000-01-01"), day("2042-06-30"), partitions.day_number(NOW)} <= partition_days()
    # Each entry lies in the partition of its day.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} ORDER BY timestamp")
        assert [name for (name,) in cursor.fetchall()] == [
            partitions.partition_name(TABLE, partitions.day_number(moment)) for moment in sorted(odd)]
    # Rows stored by the service in a transaction of their own, and in a caller's.
    rows = entries(3, seed=5)
    rows = [(at("1980-05-05T05:05:05"), *row[1:]) for row in rows]
    assert services.store_rows(rows[:1]) == 1
    assert services.store_rows([(at("2061-01-01T00:00:00"), *rows[1][1:])]) == 1
    assert day("1980-05-05") in partition_days() and day("2061-01-01") in partition_days()
    assert ProxyLogEntry.objects.count() == 6
    kept = rollup_tables()
    core.rebuild(ProxyLogEntry)
    assert rollup_tables() == kept


@pytest.mark.parametrize("days", [1, 2, 4])
def test_retention_drops_whole_days_and_every_rollup_equals_a_rebuild(days):
    postgresql_only()
    store(entries(900, seed=11))
    retention.set_retention_days("proxy_logs", days)
    kept_from = core.floor_time(NOW - dt.timedelta(days=days), core.DAY)  # the cutoff's day is kept whole
    gone = ProxyLogEntry.objects.filter(timestamp__lt=kept_from).count()
    kept = ProxyLogEntry.objects.count() - gone
    seen_before = {model: model.objects.count() for model in SEEN}

    assert retention.prune("proxy_logs", now=NOW) == gone
    assert gone > 0 or days == 4
    assert RetentionPolicy.objects.get(dataset="proxy_logs").last_pruned_rows == gone
    assert ProxyLogEntry.objects.count() == kept
    assert ProxyLogEntry.objects.order_by("timestamp")[0].timestamp >= kept_from
    assert min(partition_days()) >= partitions.day_number(kept_from)
    rollups = assert_exact()
    assert all(bucket >= kept_from for name, rows in rollups.items() if "seen" not in name for bucket, *_ in rows)
    oldest = ProxyLogEntry.objects.order_by("timestamp")[0].timestamp
    for model in SEEN:
        assert not model.objects.filter(last_seen__lt=oldest).exists()
        assert model.objects.count() <= seen_before[model]
    if gone:
        assert sum(model.objects.count() for model in SEEN) < sum(seen_before.values())  # keys were forgotten

    # An entry of a dropped day arriving late gets its partition again, and the next prune drops it.
    late = entries(1, seed=12)[0]
    assert services.store_rows([(kept_from - dt.timedelta(hours=1), *late[1:])]) == 1
    assert partitions.day_number(kept_from) - 1 in partition_days()
    assert_exact()
    assert retention.prune("proxy_logs", now=NOW) == 1
    assert rollup_tables() == rollups


@pytest.mark.django_db(transaction=True)
def test_retention_outside_a_transaction_detaches_concurrently_and_keeps_the_rollups_exact():
    postgresql_only()
    try:
        store(entries(300, seed=13))
        retention.set_retention_days("proxy_logs", 2)
        kept_from = core.floor_time(NOW - dt.timedelta(days=2), core.DAY)
        gone = ProxyLogEntry.objects.filter(timestamp__lt=kept_from).count()
        statements = []
        with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
            assert retention.prune("proxy_logs", now=NOW) == gone > 0
        assert any("DETACH PARTITION" in sql and sql.endswith("CONCURRENTLY") for sql in statements)
        assert min(partition_days()) == partitions.day_number(kept_from)
        assert_exact()
    finally:
        with connection.cursor() as cursor:
            for number in partition_days() - set(range(partitions.day_number(dt.datetime.now(dt.UTC)) - 1,
                                                       partitions.day_number(dt.datetime.now(dt.UTC)) + 10)):
                cursor.execute(f"DROP TABLE {partitions.partition_name(TABLE, number)}")
        partitions.forget()


def test_clearing_empties_the_partitioned_table_and_every_rollup(operator_client):
    postgresql_only()
    store(entries(200, seed=14))
    days = partition_days()
    assert operator_client.post("/api/logs/clear").json()["deleted"] == 200 + 5 + 12
    assert not ProxyLogEntry.objects.exists()
    assert all(rows == [] for rows in rollup_tables().values())
    assert partition_days() == days  # emptied, not dropped
    store(entries(50, seed=15))
    assert_exact()


def test_time_ordered_pages_read_the_partitions_in_order_through_their_time_indexes(viewer_client):
    postgresql_only()
    store(entries(3000, seed=16), size=500)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
        for order in ("timestamp, id", "timestamp DESC, id DESC"):
            cursor.execute(f"EXPLAIN SELECT * FROM {TABLE} ORDER BY {order} LIMIT 50")
            plan = [line for (line,) in cursor.fetchall()]
            assert plan[0].startswith("Limit"), plan
            assert plan[1].strip().startswith(("->  Append", "->  Merge Append")), plan
            assert "Sort" not in "\n".join(plan), plan
            scans = [line for line in plan if "Index Scan" in line]
            assert len(scans) == len(partition_days()), plan
            assert all("proxylog" in line and "timestamp_id" in line for line in scans), plan
    # The API's first page (newest first) and a deep page in time order (selectors.log_page) read them so.
    newest = list(ProxyLogEntry.objects.order_by("-timestamp", "-id")[:50])
    body = viewer_client.get("/api/logs?limit=50").json()
    assert body["total"] == 3000 + 5 + 12
    assert [row["id"] for row in body["data"]] == [entry.pk for entry in newest]
    deep = list(ProxyLogEntry.objects.order_by("timestamp", "id")[2500:2510])
    body = viewer_client.get("/api/logs?limit=10&offset=2500&order=asc").json()
    assert [row["id"] for row in body["data"]] == [entry.pk for entry in deep]
