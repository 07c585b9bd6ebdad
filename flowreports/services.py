"""Writes of the flow reports app: store flows (attributed, in bulk), delete and clear them, change their retention.

These are the only writers of FlowReport: each keeps the rollups (flowreports.rollups, kept by vpnmonitor.rollups)
exact in the same transaction as the flows.
"""

import datetime as dt
import ipaddress
import logging
import os
import struct
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction
from django.utils import timezone

from flowreports import ports, rollups
from flowreports.models import CollectorStatus, FlowReport
from flowreports.subscribers import SubscriberTable
from vpnmonitor import partitions, retention
from vpnmonitor import rollups as core_rollups
from vpnmonitor.addresses import canonical_ip
from vpnmonitor.models import audit

logger = logging.getLogger(__name__)

DATASET = "flowreports"
COLUMNS = (
    "subscriber_id", "source_ip", "destination_ip", "source_port", "destination_port", "protocol",
    "packets", "bytes", "start_time", "end_time", "direction", "action", "exporter", "created_at", "sampling_rate",
)
BULK_CREATE_BATCH = 2000
# What the rollups read of a row of COLUMNS.
_ROLLUP_COLUMNS = ("start_time", "protocol", "direction", "action", "source_ip", "source_port", "destination_ip",
                   "destination_port")
_ROLLUP_INDEXES = tuple(COLUMNS.index(name) for name in _ROLLUP_COLUMNS)
_START = COLUMNS.index("start_time")


@dataclass(frozen=True)
class StoreResult:
    stored: int
    unattributed: int


def _address(value, cache):
    if value is None or value == "":
        return None
    try:
        return cache[value]
    except KeyError:
        pass
    # The canonical spelling, so that filters (and PostgreSQL's inet) compare like with like.
    text = cache[value] = canonical_ip(str(value).strip())
    return text


def _aware(value):
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def collector_exporter(record, _labels={}):  # noqa: B006 - a deliberate per-process cache of labels
    """'udp:<exporter address>/obs <observation domain>' of a collector FlowRecord."""
    key = (record.exporter, record.observation_domain)
    label = _labels.get(key)
    if label is None:
        label = _labels[key] = f"udp:{record.exporter}/obs {record.observation_domain}"[:100]
    return label


def _mapping_fields(record):
    get = record.get
    start = get("start_time")
    end = get("end_time")
    return (
        get("source_ip"), get("destination_ip"), get("source_port"), get("destination_port"), get("protocol"),
        get("packets"), get("bytes"), get("start") if start is None else start, get("end") if end is None else end,
        get("action"), get("subscriber_id"), get("direction"), get("sampling_rate") or 1,
    )


def _object_fields(record):
    start = getattr(record, "start_time", None)
    end = getattr(record, "end_time", None)
    return (
        record.source_ip, record.destination_ip, record.source_port, record.destination_port, record.protocol,
        record.packets, record.bytes, record.start if start is None else start, record.end if end is None else end,
        record.action, getattr(record, "subscriber_id", None), getattr(record, "direction", None),
        getattr(record, "sampling_rate", None) or 1,
    )


def _rows(records, table, exporter, now):
    label = exporter if isinstance(exporter, str) else None
    addresses = {}
    attribute = table.attribute
    unattributed = 0
    rows = []
    for record in records:
        fields = _mapping_fields if isinstance(record, Mapping) else _object_fields
        (source_ip, destination_ip, source_port, destination_port, protocol, packets, octets, start, end, action,
         subscriber_id, direction, sampling_rate) = fields(record)
        source_ip = _address(source_ip, addresses)
        destination_ip = _address(destination_ip, addresses)
        subscriber_id = subscriber_id or ""
        direction = direction or ""
        if not subscriber_id or not direction:
            found_subscriber, found_direction = attribute(source_ip, destination_ip)
            if not subscriber_id:
                subscriber_id = found_subscriber
                direction = direction or found_direction
            elif not direction and found_subscriber == subscriber_id:
                direction = found_direction
        if not subscriber_id:
            unattributed += 1
        rows.append((
            subscriber_id, source_ip, destination_ip, source_port, destination_port, protocol, packets, octets,
            _aware(start), _aware(end), direction, action or "allow",
            label if label is not None else exporter(record), now, sampling_rate,
        ))
    return rows, unattributed


def store_flows(records, *, exporter="", table=None, now=None):
    """Attribute flows to subscribers and insert them in bulk; returns StoreResult(stored, unattributed).

    records: objects or mappings with source_ip, destination_ip, source_port, destination_port,
    protocol, packets, bytes, start_time (or start), end_time (or end) and action; subscriber_id
    and direction are used when present and filled in by attribution when empty; sampling_rate
    (default 1) is stored as given, packets and bytes being already scaled by it. exporter is a
    label ("http") or a function of the record. The subscriber table is loaded once per call.
    """
    records = list(records)
    if not records:
        return StoreResult(0, 0)
    table = table if table is not None else SubscriberTable.load()
    rows, unattributed = _rows(records, table, exporter, now or timezone.now())
    connection = connections[DEFAULT_DB_ALIAS]

    def insert():
        # The flows and their rollup counts commit together or not at all.
        with transaction.atomic():
            if connection.vendor == "postgresql":
                _copy(connection, rows)
            else:
                FlowReport.objects.bulk_create(
                    [FlowReport(**dict(zip(COLUMNS, row, strict=True))) for row in rows], batch_size=BULK_CREATE_BATCH
                )
            core_rollups.add(FlowReport, [dict(zip(_ROLLUP_COLUMNS, (row[i] for i in _ROLLUP_INDEXES), strict=True))
                                          for row in rows])

    partitions.write(FlowReport, insert, lambda: {partitions.day_number(row[_START]) for row in rows})
    if unattributed:
        logger.debug("flowreports: %d of %d flows matched no subscriber", unattributed, len(rows))
    return StoreResult(len(rows), unattributed)


def _copy_statement(options=""):
    from psycopg import sql

    return sql.SQL("COPY {} ({}) FROM STDIN" + (f" ({options})" if options else "")).format(
        sql.Identifier(FlowReport._meta.db_table),
        sql.SQL(", ").join(sql.Identifier(FlowReport._meta.get_field(name).column) for name in COLUMNS),
    )


def _copy(connection, rows):
    # psycopg's COPY bypasses Django's cursor wrapper: its errors are wrapped as Django's (IntegrityError...).
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(_copy_statement()) as copy:
        for row in rows:
            copy.write_row(row)


# PostgreSQL's binary COPY format (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4).
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
# timestamptz: microseconds since 2000-01-01 UTC.
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# PostgreSQL's epoch in microseconds since the Unix epoch.
_PG_EPOCH_US = 946_684_800 * 1_000_000
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
# Field count, then source_port .. end_time of COLUMNS (each value after its length).
_FIXED = struct.Struct("!iiiiihiqiqiqiq")
# sampling_rate, the last of COLUMNS.
_RATE = struct.Struct("!ii")
_CHUNK_ROWS = 2000
_CACHE_LIMIT = 100_000


def _text_field(value):
    data = value.encode()
    return struct.pack("!i", len(data)) + data


def _inet_field(text):
    """An address as a binary inet field (length first); NULL for None or ""."""
    if text is None or text == "":
        return _NULL
    address = ipaddress.ip_address(text)
    if address.version == 4:
        return struct.pack("!iBBBB", 8, 2, 32, 0, 4) + address.packed
    return struct.pack("!iBBBB", 20, 3, 128, 0, 16) + address.packed


def _timestamp_us(moment):
    """An aware datetime as microseconds since PostgreSQL's epoch, exactly."""
    return (moment - _PG_EPOCH) // _MICROSECOND


def _destination_order(record):
    return record[3] or ""


class CollectorRows:
    """Collector FlowRecords as binary COPY rows for FlowReport, attributed and counted for the rollups in one pass.

    What depends only on a flow's two addresses (its subscriber, direction and their encoding) is kept per
    address pair for as long as the subscriber table is the same, so steady traffic is attributed once.
    Rows go out in order of destination address: PostgreSQL then inserts each destination's index entries
    one after another into the same few index pages, which cut its time per flow by about a fifth.
    """

    def __init__(self, table):
        self.table = table
        self.unattributed = 0
        self._pairs = {}
        self._hourly = {}
        self._sources = {}
        self._destinations = {}

    def encode(self, records, now):
        """Yield the COPY data for records in chunks (signature first, trailer last); then read rollups()."""
        self.unattributed = 0
        self._hourly, self._sources, self._destinations = hourly, sources, destinations = {}, {}, {}
        pairs = self._pairs
        if len(pairs) > _CACHE_LIMIT:
            pairs.clear()
        tails = {}
        created = struct.pack("!iq", 8, _timestamp_us(_aware(now)))
        fixed = _FIXED.pack
        rate_field = _RATE.pack
        pg_epoch_us, hour_us, day_us = _PG_EPOCH_US, _HOUR_US, _DAY_US
        folded = ports.folded
        out = [_COPY_SIGNATURE]
        append = out.append
        unattributed = 0
        for count, record in enumerate(sorted(records, key=_destination_order), 1):
            (exporter, domain, source_ip, destination_ip, source_port, destination_port, protocol, packets, octets,
             start_us, end_us, action, _version, sampling_rate) = record
            pair = pairs.get((source_ip, destination_ip))
            if pair is None:
                pair = pairs[source_ip, destination_ip] = self._pair(source_ip, destination_ip)
            head, direction, source_folds, destination_folds = pair
            if not direction:
                unattributed += 1
            tail = tails.get((exporter, domain, direction, action))
            if tail is None:
                tail = tails[exporter, domain, direction, action] = (
                    _text_field(direction) + _text_field(action)
                    + _text_field(collector_exporter(record)) + created
                )
            start_us -= pg_epoch_us
            append(head)
            append(fixed(4, source_port, 4, destination_port, 2, protocol, 8, packets, 8, octets,
                         8, start_us, 8, end_us - pg_epoch_us))
            append(tail)
            append(rate_field(4, sampling_rate))
            key = (start_us // hour_us, protocol, direction, action)
            hourly[key] = hourly.get(key, 0) + 1
            day = start_us // day_us
            if source_ip:
                key = (day, source_ip, folded(source_port, source_folds), protocol, direction, action)
                sources[key] = sources.get(key, 0) + 1
            if destination_ip:
                key = (day, destination_ip, folded(destination_port, destination_folds), protocol, direction, action)
                destinations[key] = destinations.get(key, 0) + 1
            if count % _CHUNK_ROWS == 0:
                yield b"".join(out)
                out.clear()
        self.unattributed = unattributed
        append(_COPY_TRAILER)
        yield b"".join(out)

    def _pair(self, source_ip, destination_ip):
        """(row head, direction, whether the source's and the destination's ports from 1024 up fold)."""
        subscriber_id, direction = self.table.attribute(source_ip, destination_ip)
        head = (struct.pack("!h", len(COLUMNS)) + _text_field(subscriber_id)
                + _inet_field(source_ip) + _inet_field(destination_ip))
        return (head, direction, direction == rollups.SOURCE.subscriber_direction,
                direction == rollups.DESTINATION.subscriber_direction)

    def hourly_destinations(self, records, sealed):
        """Counter of rollups.HOURLY_DESTINATION_KEY of the last encoded batch's records that began in one of the
        sealed hours (UTC datetimes): flows that arrived after their hour was sealed, so they are counted only then.

        A sealed hour that is the batch's only hour of its day has that day's destination counts, already made;
        the records are gone through only for the others (an exporter whose clock is behind sends whole batches
        of one past hour)."""
        wanted = {(hour - _PG_EPOCH) // rollups.HOUR: hour for hour in sealed}
        hours_per_day = Counter(hour // 24 for hour in {key[0] for key in self._hourly})
        alone = {index // 24: wanted.pop(index) for index in list(wanted) if hours_per_day[index // 24] == 1}
        counts = Counter()
        for (day, *key), n in self._destinations.items() if alone else ():
            hour = alone.get(day)
            if hour is not None:
                counts[hour, *key] += n
        for record in records if wanted else ():
            hour = wanted.get((record.start_us - _PG_EPOCH_US) // _HOUR_US)
            if hour is None or not record.destination_ip:
                continue
            addresses = (record.source_ip, record.destination_ip)
            _head, direction, _source_folds, destination_folds = self._pairs.get(addresses) or self._pair(*addresses)
            port = ports.folded(record.destination_port, destination_folds)
            counts[hour, record.destination_ip, port, record.protocol, direction, record.action] += 1
        return counts

    def rollup_counts(self, records):
        """The last encoded batch's counts for every flow rollup, as vpnmonitor.rollups.apply takes them; the
        hourly destinations (kept for sealed hours only) are made once the core knows which hours are sealed."""
        moments = {}

        def moment(microseconds):
            value = moments.get(microseconds)
            if value is None:
                value = moments[microseconds] = _PG_EPOCH + dt.timedelta(microseconds=microseconds)
            return value

        hourly = Counter({(moment(key[0] * _HOUR_US), *key[1:]): n for key, n in self._hourly.items()})
        hours = {key[0] for key in hourly}
        return {
            rollups.HOURLY: hourly,
            rollups.SOURCE_DAILY: Counter(
                {(moment(key[0] * _DAY_US), *key[1:]): n for key, n in self._sources.items()}),
            rollups.DESTINATION_DAILY: Counter(
                {(moment(key[0] * _DAY_US), *key[1:]): n for key, n in self._destinations.items()}),
            rollups.DESTINATION_HOURLY: core_rollups.Deferred(
                count=lambda sealed: self.hourly_destinations(records, sealed), buckets=lambda: hours),
        }


def collector_application_name():
    """application_name of a collector's writer connections on PostgreSQL (one name per process)."""
    return f"vpnmonitor collect_flows {os.getpid()}"


class FlowSink:
    """The UDP collector's sink: stores each batch of FlowRecords and keeps running totals.

    Called from the collector's writer threads, each with its own database connection (and its own encoder);
    close() releases those connections once the collector has stopped. On PostgreSQL a batch is attributed,
    encoded as binary COPY rows and counted into the rollups in one pass (CollectorRows), streamed to the
    server while it is encoded, and committed with synchronous_commit off: a crash of the database server can
    lose the last fraction of a second of committed batches (never half a batch, and the rollups always match
    the flows), the same exposure the flows already have on their way over UDP. Elsewhere each batch goes
    through store_flows.

    writers is how many writer threads suit the database: two on PostgreSQL, where one connection stores a
    batch while the other encodes the next (concurrent batches add to the same rollup rows in one sorted
    order, so they wait for each other's commit there and never deadlock); one elsewhere (SQLite has one
    writer at a time).
    """

    def __init__(self):
        self.stored = 0
        self.unattributed = 0
        self._lock = threading.Lock()
        self._connections = []
        self._local = threading.local()
        self._table = None
        self._entries = None

    @property
    def writers(self):
        return 2 if connections[DEFAULT_DB_ALIAS].vendor == "postgresql" else 1

    def __call__(self, batch):
        # Like a request: drop a connection that broke or aged out before using it again.
        close_old_connections()
        connection = connections[DEFAULT_DB_ALIAS]
        with self._lock:
            if not any(known is connection for known in self._connections):
                self._connections.append(connection)
        if connection.vendor == "postgresql":
            result = self._copy_batch(connection, batch)
        else:
            result = store_flows(batch, exporter=collector_exporter)
        with self._lock:
            self.stored += result.stored
            self.unattributed += result.unattributed
        return result

    def _subscriber_table(self):
        """The prefix table, read again for every batch; the same object (and its caches) while it is unchanged."""
        entries = SubscriberTable.entries()
        with self._lock:
            if entries != self._entries:
                self._entries, self._table = entries, SubscriberTable(entries)
            return self._table

    def _copy_batch(self, connection, batch):
        if not batch:
            return StoreResult(0, 0)
        table = self._subscriber_table()
        local = self._local
        encoder = getattr(local, "encoder", None)
        if encoder is None or encoder.table is not table:
            encoder = local.encoder = CollectorRows(table)
        if connection.connection is None or connection.connection is not getattr(local, "configured", None):
            connection.ensure_connection()
            with connection.cursor() as cursor:
                # Session settings (outside the transaction, so a rolled-back batch does not undo them); the
                # name tells the collector's connections apart in pg_stat_activity.
                cursor.execute("SET synchronous_commit = off")
                cursor.execute("SELECT set_config('application_name', %s, false)", [collector_application_name()])
            local.configured = connection.connection

        def insert():
            with transaction.atomic():
                # psycopg's COPY bypasses Django's cursor wrapper: wrap its errors (a cut connection is then
                # Django's OperationalError, which the collector retries, and the connection is re-opened).
                with connection.wrap_database_errors, connection.cursor() as cursor, \
                        cursor.cursor.copy(_copy_statement("FORMAT BINARY")) as copy:
                    for chunk in encoder.encode(batch, timezone.now()):
                        copy.write(chunk)
                core_rollups.apply(encoder.rollup_counts(batch))

        partitions.write(FlowReport, insert, lambda: {record.start_us // _DAY_US for record in batch})
        return StoreResult(len(batch), encoder.unattributed)

    def totals(self):
        with self._lock:
            return {"stored": self.stored, "unattributed": self.unattributed}

    def close(self):
        """Close the writer threads' connections (call once the collector has stopped)."""
        with self._lock:
            used, self._connections = self._connections, []
        for connection in used:
            connection.inc_thread_sharing()
            try:
                connection.close()
            finally:
                connection.dec_thread_sharing()


COLLECTOR_COUNTERS = (
    "packets_received", "packets_lost", "flows_received", "flows_stored", "flows_dropped", "malformed_packets",
    "sets_dropped_no_template", "sink_failures",
)


def record_collector_status(*, hostname, listen, pid, started_at, stats, stopped=False):
    """Save a running collector's counters (Collector.stats()) to its CollectorStatus row, for /metrics."""
    now = timezone.now()
    CollectorStatus.objects.update_or_create(
        hostname=hostname[:255], listen=listen[:100],
        defaults={
            "pid": pid, "started_at": started_at, "updated_at": now, "stopped_at": now if stopped else None,
            **{name: stats[name] for name in COLLECTOR_COUNTERS},
        },
    )


def add_flows(flows):
    """Insert FlowReport instances as they are (no attribution) and add them to the rollups; returns them.

    For flows built field by field (the admin's tests, fixtures); store_flows is the ingest path."""
    flows = list(flows)

    def insert():
        with transaction.atomic():
            created = FlowReport.objects.bulk_create(flows, batch_size=BULK_CREATE_BATCH)
            core_rollups.add(FlowReport, created)
        return created

    return partitions.write(FlowReport, insert, lambda: {partitions.day_number(flow.start_time) for flow in flows})


def update_flows(queryset, **changes):
    """queryset.update(**changes) with the rollups kept exact: the flows are subtracted, changed and added again.

    Returns how many flows were changed."""

    def change():
        with transaction.atomic():
            pks = list(queryset.order_by().select_for_update().values_list("pk", flat=True))
            changed = 0
            for first in range(0, len(pks), core_rollups.CHUNK):
                chunk = FlowReport.objects.filter(pk__in=pks[first:first + core_rollups.CHUNK])
                core_rollups.subtract(chunk)
                changed += chunk.update(**changes)
                core_rollups.add(FlowReport, list(chunk))
        return changed

    # A new start_time moves the flows to that day's partition.
    return partitions.write(FlowReport, change, lambda: {partitions.day_number(changes["start_time"])})


def delete_flows(queryset):
    """Delete flows and subtract them from the rollups; returns how many were deleted (also retention's delete)."""
    with transaction.atomic():
        if not queryset.query.where:
            rollups.hold_off_seals()  # every flow, every hour: no seal counts hours meanwhile
        return core_rollups.delete(queryset)


def clear_flow_reports(*, actor=None):
    """Delete every flow report (audited as done by actor, see vpnmonitor.models.audit); returns how many."""
    with transaction.atomic():
        deleted = delete_flows(FlowReport.objects.all())
        audit(actor, "flowreports.clear", "flow_reports", deleted=deleted)
    return deleted


def retention_days():
    return retention.retention_days(DATASET)


def set_retention_days(days, *, actor=None):
    """Change how long flow reports are kept (audited) and prune right away; returns rows pruned."""
    with transaction.atomic():
        previous = retention.retention_days(DATASET)
        retention.set_retention_days(DATASET, days)
        audit(actor, "retention.update", DATASET, days=days, previous_days=previous,
              changes={"days": {"before": previous, "after": days}})
    return retention.prune(DATASET)
