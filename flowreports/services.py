"""Writes of the flow reports app: store flows (attributed, in bulk), clear them, change their retention."""

import datetime as dt
import ipaddress
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction
from django.utils import timezone

from flowreports import rollups
from flowreports.models import CollectorStatus, FlowReport
from flowreports.subscribers import SubscriberTable
from vpnmonitor import retention
from vpnmonitor.models import audit

logger = logging.getLogger(__name__)

DATASET = "flowreports"
COLUMNS = (
    "subscriber_id", "source_ip", "destination_ip", "source_port", "destination_port", "protocol",
    "packets", "bytes", "start_time", "end_time", "direction", "action", "exporter", "created_at",
)
BULK_CREATE_BATCH = 2000


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
    text = cache[value] = str(ipaddress.ip_address(str(value).strip()))
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
        get("action"), get("subscriber_id"), get("direction"),
    )


def _object_fields(record):
    start = getattr(record, "start_time", None)
    end = getattr(record, "end_time", None)
    return (
        record.source_ip, record.destination_ip, record.source_port, record.destination_port, record.protocol,
        record.packets, record.bytes, record.start if start is None else start, record.end if end is None else end,
        record.action, getattr(record, "subscriber_id", None), getattr(record, "direction", None),
    )


def _rows(records, table, exporter, now):
    label = exporter if isinstance(exporter, str) else None
    addresses = {}
    attribute = table.attribute
    unattributed = 0
    rows = []
    for record in records:
        (source_ip, destination_ip, source_port, destination_port, protocol, packets, octets, start, end, action,
         subscriber_id, direction) = (_mapping_fields if isinstance(record, Mapping) else _object_fields)(record)
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
            label if label is not None else exporter(record), now,
        ))
    return rows, unattributed


def store_flows(records, *, exporter="", table=None, now=None):
    """Attribute flows to subscribers and insert them in bulk; returns StoreResult(stored, unattributed).

    records: objects or mappings with source_ip, destination_ip, source_port, destination_port,
    protocol, packets, bytes, start_time (or start), end_time (or end) and action; subscriber_id
    and direction are used when present and filled in by attribution when empty. exporter is a
    label ("http") or a function of the record. The subscriber table is loaded once per call.
    """
    records = list(records)
    if not records:
        return StoreResult(0, 0)
    table = table if table is not None else SubscriberTable.load()
    rows, unattributed = _rows(records, table, exporter, now or timezone.now())
    connection = connections[DEFAULT_DB_ALIAS]
    # The flows and their rollup counts commit together or not at all.
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _copy(connection, rows)
            rollups.add([(row[8], row[5], row[10], row[11], row[2]) for row in rows])
        else:
            # FlowReportQuerySet.bulk_create adds them to the rollups.
            FlowReport.objects.bulk_create(
                [FlowReport(**dict(zip(COLUMNS, row, strict=True))) for row in rows], batch_size=BULK_CREATE_BATCH
            )
    if unattributed:
        logger.debug("flowreports: %d of %d flows matched no subscriber", unattributed, len(rows))
    return StoreResult(len(rows), unattributed)


def _copy(connection, rows):
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(FlowReport._meta.db_table),
        sql.SQL(", ").join(sql.Identifier(FlowReport._meta.get_field(name).column) for name in COLUMNS),
    )
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


class FlowSink:
    """The UDP collector's sink: stores each batch with store_flows and keeps running totals.

    Called from the collector's writer thread; close() releases that thread's database
    connection once the collector has stopped.
    """

    def __init__(self):
        self.stored = 0
        self.unattributed = 0
        self._lock = threading.Lock()
        self._connection = None

    def __call__(self, batch):
        # Like a request: drop a connection that broke or aged out before using it again.
        close_old_connections()
        self._connection = connections[DEFAULT_DB_ALIAS]
        result = store_flows(batch, exporter=collector_exporter)
        with self._lock:
            self.stored += result.stored
            self.unattributed += result.unattributed
        return result

    def totals(self):
        with self._lock:
            return {"stored": self.stored, "unattributed": self.unattributed}

    def close(self):
        connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.inc_thread_sharing()
        try:
            connection.close()
        finally:
            connection.dec_thread_sharing()


COLLECTOR_COUNTERS = (
    "packets_received", "flows_received", "flows_stored", "flows_dropped", "malformed_packets",
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


def clear_flow_reports(*, request=None):
    """Delete every flow report (audited); returns how many were deleted."""
    with transaction.atomic():
        deleted, _ = FlowReport.objects.all().delete()
        audit(request, "flowreports.clear", "flow_reports", deleted=deleted)
    return deleted


def retention_days():
    return retention.retention_days(DATASET)


def set_retention_days(days, *, request=None):
    """Change how long flow reports are kept (audited) and prune right away; returns rows pruned."""
    with transaction.atomic():
        previous = retention.retention_days(DATASET)
        retention.set_retention_days(DATASET, days)
        audit(request, "retention.update", DATASET, days=days, previous_days=previous)
    return retention.prune(DATASET)
