"""Proxy traffic writes: sum checked records into 15-minute buckets with one upsert per table and batch.

PostgreSQL: the batch is COPYed into a temporary table and summed there; SQLite: summed in Python.
The all-tenant summaries are rollups of the bucket rows (proxytraffic.rollups), written through
vpnmonitor.rollups in the batch's transaction: on SQLite from the batch's bucket rows (rollups.add), on
PostgreSQL from the staged records grouped by the database (the core's upsert_select_sql). Both combine each
measure as the rollup declares it, with the ON CONFLICT clause the core makes.
"""

import functools

from django.db import connection, transaction

from proxytraffic.models import TRAFFIC_KEY_FIELDS, TrafficBucket, TrafficDomainDay, TrafficErrorDay, TrafficTotal
from proxytraffic.rollups import BIGINT_MAX, DOMAIN_DAY, ERROR_DAY, MEASURES, TOTAL
from proxytraffic.schema import TrafficRecord
from vpnmonitor import rollups
from vpnmonitor.timeseries import floor_time

BUCKET_SECONDS = 900
DAY_SECONDS = 86400
SUMMED_FIELDS = ("count", "bytes_sent", "bytes_received", "error_count", "duration_ms")
VALUE_FIELDS = SUMMED_FIELDS + ("max_concurrency", "first_seen", "last_seen")


def bucket_key(record):
    """The row a record is summed into."""
    return (
        floor_time(record.ts, BUCKET_SECONDS), record.user_id, record.order_id, record.domain, record.error,
        record.worker, record.peer_id, record.port, record.protocol, record.ip_out, record.ip_from,
    )


def _merge(rows, key_of):
    """Rows (key..., counters..., max_concurrency, first_seen, last_seen) summed per key_of(row), sorted by key.

    Sorting gives concurrent batches the same lock order, so two ingests never deadlock.
    """
    merged = {}
    for row in rows:
        key = key_of(row)
        values = row[-8:]
        current = merged.get(key)
        if current is None:
            merged[key] = list(values)
            continue
        for index in range(5):
            current[index] += values[index]
        current[5] = max(current[5], values[5])
        current[6] = min(current[6], values[6])
        current[7] = max(current[7], values[7])
    # A batch may sum past the bigint maximum; the row saturates there, as the upsert does.
    return [(*key, *(min(value, BIGINT_MAX) for value in merged[key][:5]), *merged[key][5:])
            for key in sorted(merged, key=_sortable)]


def _sortable(key):
    return (key[0].timestamp(), *key[1:])


def sum_batch(records):
    """The batch summed per bucket row: [(key fields..., counters..., max_concurrency, first_seen, last_seen)].

    The SQLite path; on PostgreSQL the database does the same grouping (_staged_upsert_sql).
    """
    return _merge(
        ((*bucket_key(r), r.count, r.bytes_sent, r.bytes_received, r.error_count, r.duration_ms,
          r.max_concurrency, r.ts, r.ts) for r in records),
        lambda row: row[:len(TRAFFIC_KEY_FIELDS)],
    )


def _update_clause(table, excluded):
    """SET clause of the bucket rows' upsert: counters add up (saturating at the bigint maximum rather than
    failing the batch), max_concurrency keeps the maximum, first/last seen widen; the rollups' measures."""
    return rollups.update_clause(MEASURES, VALUE_FIELDS, table, vendor=connection.vendor, excluded=excluded)


def _sqlite_upsert(cursor, rows):
    table = connection.ops.quote_name(TrafficBucket._meta.db_table)
    columns = TRAFFIC_KEY_FIELDS + VALUE_FIELDS
    as_text = connection.ops.adapt_datetimefield_value
    stored = [(as_text(row[0]), *row[1:-2], as_text(row[-2]), as_text(row[-1])) for row in rows]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(TRAFFIC_KEY_FIELDS)}) DO UPDATE SET " + _update_clause(table, "excluded")
    )
    cursor.executemany(sql, stored)


# ---- PostgreSQL: COPY the batch into a staging table, then one grouped upsert per table ----

# Qualified with pg_temp so that no table of the same name elsewhere on the search path is ever meant.
STAGE_TABLE = "pg_temp.proxylogs_traffic_stage"
# TrafficRecord's fields, in its order, as staged (bucket and day are the database's floor of ts).
STAGE_COLUMNS = tuple(
    (name, {"ts": "timestamptz", "port": "int4"}.get(name, "text" if kind is str else "int8"))
    for name, kind in TrafficRecord.__annotations__.items()
)
EPOCH_SQL = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
# Epoch-aligned like floor_time(); date_bin works on absolute time, whatever the session time zone.
BUCKET_SQL = f"date_bin('{BUCKET_SECONDS} seconds', ts, {EPOCH_SQL})"
DAY_SQL = f"date_bin('{DAY_SECONDS} seconds', ts, {EPOCH_SQL})"


def _staged_values_sql():
    """Aggregates of staged records: SUM of bigints is numeric in PostgreSQL, so a batch that sums
    past the bigint maximum saturates exactly as the Python merge does."""
    return [f"LEAST(SUM({name}), {BIGINT_MAX})::bigint" for name in SUMMED_FIELDS] + [
        "MAX(max_concurrency)", "MIN(ts)", "MAX(ts)",
    ]


@functools.cache
def _staged_upsert_sql(model, keys, where=""):
    """INSERT ... SELECT grouped staged records (those matching `where`, if given) ... ON CONFLICT:
    keys are (column, expression) pairs. The summaries' statements are the core's upsert of their rollup.

    Rows go in key order, so concurrent batches lock rows in the same order and never deadlock;
    grouping also keeps PostgreSQL from seeing one row twice in the same upsert. PostgreSQL only: made
    once per statement and kept.
    """
    positions = ", ".join(str(index + 1) for index in range(len(keys)))
    select = (f"SELECT {', '.join([expression for _, expression in keys] + _staged_values_sql())} "
              f"FROM {STAGE_TABLE} {f'WHERE {where} ' if where else ''}GROUP BY {positions} ORDER BY {positions}")
    if model is not TrafficBucket:
        return rollups.upsert_select_sql(ROLLUP_OF[model], select, connection)
    table = connection.ops.quote_name(model._meta.db_table)
    key_columns = [column for column, _ in keys]
    return (
        f"INSERT INTO {table} AS t ({', '.join(key_columns + list(VALUE_FIELDS))}) {select} "
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET " + _update_clause("t", "EXCLUDED")
    )


ROLLUP_OF = {TrafficDomainDay: DOMAIN_DAY, TrafficErrorDay: ERROR_DAY, TrafficTotal: TOTAL}
BUCKET_KEYS = (("bucket", BUCKET_SQL),) + tuple((name, name) for name in TRAFFIC_KEY_FIELDS[1:])
DOMAIN_DAY_KEYS = (("day", DAY_SQL), ("domain", "domain"))
ERROR_DAY_KEYS = (("day", DAY_SQL), ("error", "error"), ("domain", "domain"))
TOTAL_KEYS = (("bucket", BUCKET_SQL),)
# The per-batch statements after the staging COPY, in order; the few hot total rows last, so that they
# stay locked for as short a time as possible.
UPSERTS = (
    (TrafficBucket, BUCKET_KEYS, ""),
    (TrafficDomainDay, DOMAIN_DAY_KEYS, ""),
    (TrafficErrorDay, ERROR_DAY_KEYS, "error <> ''"),
    (TrafficTotal, TOTAL_KEYS, ""),
)


def _postgresql_ingest(cursor, records):
    """The batch COPYed (binary) into a temporary table, then summed into each table by the database.

    The temporary table lives as long as the connection and is emptied at every commit; creating it
    inside the batch's transaction means a rolled-back first batch leaves nothing half made.
    """
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE_TABLE} "
        f"({', '.join(f'{name} {kind}' for name, kind in STAGE_COLUMNS)}) ON COMMIT DELETE ROWS"
    )
    # Empty unless an earlier batch ran in the same outer transaction (nested atomic blocks).
    cursor.execute(f"DELETE FROM {STAGE_TABLE}")
    columns = ", ".join(name for name, _ in STAGE_COLUMNS)
    with cursor.cursor.copy(f"COPY {STAGE_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in STAGE_COLUMNS])
        write = copy.write_row
        for record in records:  # a TrafficRecord is a tuple in STAGE_COLUMNS order
            write(record)
    touched = 0
    for model, keys, where in UPSERTS:
        cursor.execute(_staged_upsert_sql(model, keys, where))
        if model is TrafficBucket:
            touched = cursor.rowcount
    return touched


def ingest_records(records):
    """Add checked TrafficRecords to their buckets and to the all-tenant rollups, all or nothing.

    Returns how many bucket rows were touched.
    """
    if not records:
        return 0
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            return _postgresql_ingest(cursor, records)
    if connection.vendor != "sqlite":
        raise NotImplementedError(f"No traffic upsert for {connection.vendor}")
    # SQLite: summed in Python, one executemany() upsert per table.
    rows = sum_batch(records)
    names = TRAFFIC_KEY_FIELDS + VALUE_FIELDS
    with transaction.atomic():
        with connection.cursor() as cursor:
            _sqlite_upsert(cursor, rows)
        # The summaries, in the rollups' order (the total rows last).
        rollups.add(TrafficBucket, [dict(zip(names, row, strict=True)) for row in rows])
    return len(rows)
