"""Proxy traffic writes: sum checked records into 15-minute buckets with one upsert per batch."""

from django.db import connection, transaction

from proxylogs.models import TRAFFIC_KEY_FIELDS, TrafficBucket
from vpnmonitor.timeseries import floor_time

BUCKET_SECONDS = 900
BIGINT_MAX = 2**63 - 1
SUMMED_FIELDS = ("count", "bytes_sent", "bytes_received", "error_count", "duration_ms")
COLUMNS = TRAFFIC_KEY_FIELDS + SUMMED_FIELDS + ("max_concurrency", "first_seen", "last_seen")
# PostgreSQL array types of COLUMNS, for the unnest() form of the upsert.
PG_TYPES = (
    "timestamptz", "bigint", "bigint", "varchar", "varchar", "varchar", "varchar", "integer", "varchar", "varchar",
    "varchar", "bigint", "bigint", "bigint", "bigint", "bigint", "bigint", "timestamptz", "timestamptz",
)


def bucket_key(record):
    """The row a record is summed into."""
    return (
        floor_time(record.ts, BUCKET_SECONDS), record.user_id, record.order_id, record.domain, record.error,
        record.worker, record.peer_id, record.port, record.protocol, record.ip_out, record.ip_from,
    )


def sum_batch(records):
    """The batch summed per bucket key, sorted by key: [(key, sums, max_concurrency, first, last)].

    Summing here first matters twice: PostgreSQL refuses an upsert that touches a row twice in
    one statement, and sorting gives concurrent batches the same lock order (no deadlocks).
    """
    rows = {}
    for record in records:
        key = bucket_key(record)
        row = rows.get(key)
        if row is None:
            rows[key] = [record.count, record.bytes_sent, record.bytes_received, record.error_count,
                         record.duration_ms, record.max_concurrency, record.ts, record.ts]
        else:
            row[0] += record.count
            row[1] += record.bytes_sent
            row[2] += record.bytes_received
            row[3] += record.error_count
            row[4] += record.duration_ms
            row[5] = max(row[5], record.max_concurrency)
            row[6] = min(row[6], record.ts)
            row[7] = max(row[7], record.ts)
    # A batch may sum past the bigint maximum; the row saturates there, as the upsert does.
    return [(key, *[min(value, BIGINT_MAX) for value in rows[key][:5]], *rows[key][5:])
            for key in sorted(rows, key=_sort_key)]


def _sort_key(key):
    return (key[0].timestamp(), *key[1:])


def _update_clause(current, new, least, greatest, saturated_sum):
    """SET clause: counters add up (saturating at the bigint maximum rather than failing the
    batch), max_concurrency keeps the maximum, first/last seen widen."""
    return ", ".join([f"{name} = " + saturated_sum(f"{current}.{name}", f"{new}.{name}") for name in SUMMED_FIELDS] + [
        f"max_concurrency = {greatest}({current}.max_concurrency, {new}.max_concurrency)",
        f"first_seen = {least}({current}.first_seen, {new}.first_seen)",
        f"last_seen = {greatest}({current}.last_seen, {new}.last_seen)",
    ])


def _postgresql_upsert(cursor, table, rows):
    columns = ", ".join(COLUMNS)
    unnest = ", ".join(f"%s::{kind}[]" for kind in PG_TYPES)
    sql = (
        f"INSERT INTO {table} AS t ({columns}) SELECT * FROM unnest({unnest}) "
        f"ON CONFLICT ({', '.join(TRAFFIC_KEY_FIELDS)}) DO UPDATE SET "
        + _update_clause("t", "EXCLUDED", "LEAST", "GREATEST",
                         lambda a, b: f"LEAST({a}::numeric + {b}, {BIGINT_MAX})::bigint")
    )
    cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])


def _sqlite_upsert(cursor, table, rows):
    ops = connection.ops
    as_text = [
        (ops.adapt_datetimefield_value(row[0]), *row[1:-2],
         ops.adapt_datetimefield_value(row[-2]), ops.adapt_datetimefield_value(row[-1]))
        for row in rows
    ]
    sql = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
        f"ON CONFLICT ({', '.join(TRAFFIC_KEY_FIELDS)}) DO UPDATE SET "
        # SQLite's two-argument MIN()/MAX() are its LEAST/GREATEST.
        # (an integer overflow there turns into a REAL, which MIN() then caps).
        + _update_clause(table, "excluded", "MIN", "MAX", lambda a, b: f"MIN({a} + {b}, {BIGINT_MAX})")
    )
    cursor.executemany(sql, as_text)


def _flat(summed):
    return [(*key, *values) for key, *values in summed]


def ingest_records(records):
    """Add checked TrafficRecords to their buckets, all or nothing; returns how many rows were touched."""
    if not records:
        return 0
    rows = _flat(sum_batch(records))
    table = connection.ops.quote_name(TrafficBucket._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _postgresql_upsert(cursor, table, rows)
        elif connection.vendor == "sqlite":
            _sqlite_upsert(cursor, table, rows)
        else:
            raise NotImplementedError(f"No traffic upsert for {connection.vendor}")
    return len(rows)
