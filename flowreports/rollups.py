"""The flow rollups: hourly counts and daily endpoints, kept exact at write time.

Every insert adds its flows to FlowReportHourly (hour, protocol, direction, action) and, per
endpoint, to FlowReportDestinationDaily and FlowReportSourceDaily (day, address, port, protocol,
direction, action), in the same transaction as the flows themselves; every delete subtracts what
it deletes first. Reads answer total_count and /stats from them whenever the filters are only a
window, protocol, direction, action and (for the daily rollups) one source or destination, and
count the partial hours (or days) at the window's edges from the raw table.

The daily rollups keep every port except one kind: the subscriber's own port of a connection it
opened (the destination port of a downlink flow, the source port of an uplink flow) from 1024 up
is ephemeral, one per connection, and keeping each would add a row per flow. Those are counted
together under OTHER_PORT (see ports.py); an IP:port filter for such a port falls back to counting raw flows
when the window has any of them (see selectors.endpoint_count). Flows without a port count under
NO_PORT.

One more rollup, FlowReportDestinationHourly, holds the destinations per hour, so that a window's partial
first day (the default window starts at now - 7 d) is not up to 12 hours of raw flows. Keeping it on every
insert would cost the collector as much again as the daily destinations, so it is filled off the write path:
seal_hours (a beat task) counts each hour once it has ended SEAL_DELAY ago and records the hour in
FlowReportSealedHour. From then on every write that touches a sealed hour adds to it or subtracts from it in
the same transaction, as for the other rollups (a late flow, a delete, retention). Reads use the hourly rows
only for sealed hours. On PostgreSQL the seal and the writes are ordered by a lock per hour (advisory, held to
the end of the transaction): a writer takes its hours' locks shared before it reads which of them are sealed,
and the seal of an hour takes that hour's lock alone, so it waits for the writers of that hour under way (and
then sees their flows) and their writers after it see its seal. Writers of other hours, such as the collector
with the current hour's flows, never wait for a seal. A write of many hours at once takes one lock that stands
for every hour, which a seal then takes too; it only tries for that one, never waiting for a lock while it
holds another, so no writer and seal can wait for each other.
"""

import datetime as dt
import logging
import time
from collections import Counter
from typing import NamedTuple

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count
from django.db.models.functions import Trunc
from django.utils import timezone

from flowreports.ports import folded, folded_expression

logger = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# The fields of a flow that decide which rollup rows it counts in.
DIMENSIONS = frozenset({"start_time", "protocol", "direction", "action", "destination_ip", "destination_port",
                        "source_ip", "source_port"})
CHUNK = 5000
HOURLY_DESTINATION_KEY = ("hour", "destination_ip", "destination_port", "protocol", "direction", "action")
# An hour is sealed once it ended this long ago: an exporter reports a long flow when it ends (or at its
# active timeout), so flows of a closed hour keep arriving for a while, and each after the seal costs its write.
SEAL_DELAY = HOUR
# Hours sealed per run at most (one short transaction each), so that a long history is sealed over several runs.
SEAL_LIMIT = 24 * 31
# How often a seal tries again while a write of many hours holds the lock for every hour, and how long it waits.
SEAL_ATTEMPTS = 20
SEAL_RETRY_SECONDS = 0.25


class Endpoint(NamedTuple):
    """One end of a flow and its daily rollup."""

    side: str  # "source" or "destination"
    model_name: str
    # The direction in which this end is the subscriber's, so its ports from 1024 up are ephemeral.
    subscriber_direction: str

    @property
    def ip(self):
        return f"{self.side}_ip"

    @property
    def port(self):
        return f"{self.side}_port"

    @property
    def key(self):
        return ("day", self.ip, self.port, "protocol", "direction", "action")

    @property
    def model(self):
        return apps.get_model("flowreports", self.model_name)

    def port_key(self, direction, port):
        """The port under which a flow counts in this rollup."""
        return folded(port, direction == self.subscriber_direction)

    def port_key_expression(self):
        """port_key() in SQL, for grouping stored flows."""
        return folded_expression(self.port, direction=self.subscriber_direction)


DESTINATION = Endpoint("destination", "FlowReportDestinationDaily", "downlink")
SOURCE = Endpoint("source", "FlowReportSourceDaily", "uplink")
ENDPOINTS = (DESTINATION, SOURCE)


def _utc(moment):
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def floor_hour(moment):
    return _utc(moment).replace(minute=0, second=0, microsecond=0)


def floor_day(moment):
    return _utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def model_rows(objs):
    """ROW tuples of FlowReport instances."""
    from flowreports.models import FlowReport

    field = FlowReport._meta.get_field
    to_python, protocol, address = field("start_time").to_python, field("protocol").to_python, field("source_ip")

    def start(value):
        # A naive time is stored as a time in TIME_ZONE (Django warns), so it is counted as one too.
        value = to_python(value)
        return timezone.make_aware(value, timezone.get_default_timezone()) if timezone.is_naive(value) else value

    port = field("source_port").to_python
    return [
        (start(obj.start_time), protocol(obj.protocol), obj.direction or "", obj.action,
         address.to_python(obj.source_ip) or None, port(obj.source_port),
         address.to_python(obj.destination_ip) or None, port(obj.destination_port))
        for obj in objs
    ]


# What aggregate() reads of a flow.
ROW = ("start_time", "protocol", "direction", "action", "source_ip", "source_port", "destination_ip",
       "destination_port")


def aggregate(rows):
    """(hourly Counter, {endpoint: daily Counter}) of ROW tuples."""
    epoch_hours = Counter()
    epoch_days = {endpoint: Counter() for endpoint in ENDPOINTS}
    sources, destinations = epoch_days[SOURCE], epoch_days[DESTINATION]
    for start, protocol, direction, action, source, source_port, destination, destination_port in rows:
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        # Whole hours since the epoch (exact integer arithmetic): cheaper than a datetime per flow.
        hour = (start - EPOCH) // HOUR
        epoch_hours[hour, protocol, direction, action] += 1
        if source is not None and source != "":
            sources[hour // 24, source, SOURCE.port_key(direction, source_port), protocol, direction, action] += 1
        if destination is not None and destination != "":
            destinations[hour // 24, destination, DESTINATION.port_key(direction, destination_port), protocol,
                         direction, action] += 1
    hours, days = {}, {}
    hourly = Counter()
    for (hour, protocol, direction, action), n in epoch_hours.items():
        if hour not in hours:
            hours[hour] = EPOCH + dt.timedelta(hours=hour)
        hourly[hours[hour], protocol, direction, action] += n
    daily = {endpoint: Counter() for endpoint in ENDPOINTS}
    for endpoint, counts in epoch_days.items():
        for (day, *rest), n in counts.items():
            if day not in days:
                days[day] = EPOCH + dt.timedelta(days=day)
            daily[endpoint][days[day], *rest] += n
    return hourly, daily


def hourly_destinations(rows, sealed):
    """Counter of HOURLY_DESTINATION_KEY of the ROW tuples that began in one of the sealed hours."""
    counts = Counter()
    for start, protocol, direction, action, _source, _source_port, destination, destination_port in rows:
        if destination is None or destination == "":
            continue
        hour = floor_hour(start)
        if hour in sealed:
            counts[hour, destination, DESTINATION.port_key(direction, destination_port), protocol, direction,
                   action] += 1
    return counts


def add(rows, *, using=DEFAULT_DB_ALIAS):
    rows = list(rows)
    hourly, daily = aggregate(rows)
    apply(hourly, daily, lambda sealed: hourly_destinations(rows, sealed), using=using)


def apply(hourly, daily, sealed_destinations, *, using=DEFAULT_DB_ALIAS):
    """Add the counts (negative to subtract) to the rollups; rows that reach zero are removed.

    hourly: Counter of (hour, protocol, direction, action); daily: {endpoint: Counter of endpoint.key};
    sealed_destinations(sealed): Counter of HOURLY_DESTINATION_KEY of the same flows that began in the sealed
    hours (a set of UTC datetimes among the hours of `hourly`), called only when some of them are sealed.
    """
    from flowreports.models import FlowReportDestinationHourly, FlowReportHourly

    connection = connections[using]
    # First, before any rollup row is locked: a write that waits here for a seal of one of its hours holds no
    # row that a write of other hours (the collector's current hour) needs.
    sealed = sealed_among({key[0] for key in hourly}, using=using)
    _upsert(connection, FlowReportHourly, ("hour", "protocol", "direction", "action"), hourly)
    for endpoint, counts in daily.items():
        _upsert(connection, endpoint.model, endpoint.key, counts)
    if sealed:
        destinations = sealed_destinations(sealed)
        _upsert(connection, FlowReportDestinationHourly, HOURLY_DESTINATION_KEY, destinations)
        if any(count < 0 for count in destinations.values()):
            FlowReportDestinationHourly.objects.using(using).filter(flows__lte=0, hour__in=sorted(sealed)).delete()
    if any(count < 0 for count in hourly.values()):
        FlowReportHourly.objects.using(using).filter(
            flows__lte=0, hour__in=sorted({key[0] for key in hourly})
        ).delete()
    for endpoint, counts in daily.items():
        if any(count < 0 for count in counts.values()):
            endpoint.model.objects.using(using).filter(
                flows__lte=0, day__in=sorted({key[0] for key in counts})
            ).delete()


# PostgreSQL advisory lock keys (two int4): this namespace, and an hour as whole hours since the epoch, or
# EVERY_HOUR for a write of more than LOCKED_HOURS hours (a lock each would fill the server's lock table).
_LOCK_NAMESPACE = 0x666C6F77
EVERY_HOUR = -(2**31)  # the lowest integer, no hour of a flow
LOCKED_HOURS = 32


def _hour_keys(hours):
    return sorted({(hour - EPOCH) // HOUR for hour in hours}) if len(hours) <= LOCKED_HOURS else [EVERY_HOUR]


def _lock_hours(connection, keys, *, shared):
    """Take the advisory locks of these hour keys (see above) until the end of the transaction."""
    if connection.vendor != "postgresql" or not keys:
        return  # SQLite writes one transaction at a time
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, key) FROM unnest(%s::integer[]) AS key", [_LOCK_NAMESPACE, keys])


def sealed_among(hours, *, using=DEFAULT_DB_ALIAS):
    """The sealed hours among `hours`, read in a transaction that writes flows of those hours.

    The hours' locks are taken shared first, and held until the transaction ends: a seal of one of them under
    way is waited for (its flows then count in it, or this write adds to it), and one not begun yet waits for
    this transaction, so that it counts what this one writes.
    """
    from flowreports.models import FlowReportSealedHour

    if not hours:
        return set()
    _lock_hours(connections[using], _hour_keys(hours), shared=True)
    found = FlowReportSealedHour.objects.using(using).filter(hour__in=sorted(hours)).values_list("hour", flat=True)
    return {_utc(hour) for hour in found}


def _upsert(connection, model, key_fields, counts):
    counts = {key: count for key, count in counts.items() if count}
    if not counts:
        return
    meta = model._meta
    fields = [meta.get_field(name) for name in key_fields] + [meta.get_field("flows")]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    conflict = ", ".join(quote(field.column) for field in fields[:-1])
    flows = quote("flows")
    update = f"ON CONFLICT ({conflict}) DO UPDATE SET {flows} = {table}.{flows} + EXCLUDED.{flows}"
    # Sorted keys: concurrent writers lock the rows they share in one order, so they never deadlock. (Every
    # key part is a datetime, int or str, the same type at each position, so the tuples compare as they are.)
    items = sorted(counts.items())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            types = [_pg_type(field) for field in fields]
            arrays = [[key[i] for key, _ in items] for i in range(len(key_fields))] + [[n for _, n in items]]
            select = ", ".join(f"%s::{kind}[]" for kind in types)
            params = [_array_literal(array, kind) for array, kind in zip(arrays, types, strict=True)]
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({select}) {update}", params)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            params = [
                [field.get_db_prep_value(value, connection) for field, value in zip(fields, (*key, n), strict=True)]
                for key, n in items
            ]
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {update}", params)


def _array_literal(values, kind):
    """A PostgreSQL array literal of the values: psycopg adapts lists element by element, which took longer
    than the upsert itself for the collector's few thousand rollup rows a batch. Text is quoted and escaped;
    numbers, addresses and timestamps have no character that needs it (and are never None here)."""
    if kind == "text":
        return "{" + ",".join(
            '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values
        ) + "}"
    if kind == "timestamptz":
        # A batch's rows share a few hours or days: format each once.
        spelled = {value: f'"{value}"' for value in set(values)}
        return "{" + ",".join(map(spelled.__getitem__, values)) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def _pg_type(field):
    return {
        "DateTimeField": "timestamptz", "GenericIPAddressField": "inet", "PositiveSmallIntegerField": "integer",
        "IntegerField": "integer", "CharField": "text", "BigIntegerField": "bigint",
    }[field.get_internal_type()]


def subtract_pks(model, pks, *, using=DEFAULT_DB_ALIAS):
    """Subtract the flows with these primary keys (not yet deleted) from the rollups."""
    for first in range(0, len(pks), CHUNK):
        rows = model._base_manager.using(using).filter(pk__in=pks[first:first + CHUNK]).order_by()
        hourly = Counter()
        for hour, protocol, direction, action, n in _hourly_counts(rows):
            hourly[_utc(hour), protocol, direction, action] -= n
        daily = {endpoint: Counter() for endpoint in ENDPOINTS}
        for endpoint, counts in daily.items():
            for day, *rest, n in _endpoint_counts(rows, endpoint):
                counts[_utc(day), *rest] -= n
        apply(hourly, daily, lambda sealed, rows=rows: Counter(
            {key: -n for key, n in _destinations_in(rows, sealed).items()}), using=using)


def _destinations_in(flows, sealed):
    """Counter of HOURLY_DESTINATION_KEY of a FlowReport queryset's flows in the sealed hours, counted in SQL."""
    flows = flows.filter(start_time__gte=min(sealed), start_time__lt=max(sealed) + HOUR)
    counts = Counter()
    for hour, *rest, n in _endpoint_counts(flows, DESTINATION, step="hour"):
        if (hour := _utc(hour)) in sealed:
            counts[hour, *rest] += n
    return counts


def _hourly_counts(flows):
    return (flows.annotate(h=Trunc("start_time", "hour", tzinfo=dt.UTC))
            .values_list("h", "protocol", "direction", "action").annotate(n=Count("pk")))


def _endpoint_counts(flows, endpoint, step="day"):
    """(day or hour, address, port key, protocol, direction, action, flows) of a FlowReport queryset, in SQL."""
    return (
        flows.filter(**{f"{endpoint.ip}__isnull": False})
        .annotate(d=Trunc("start_time", step, tzinfo=dt.UTC), port_key=endpoint.port_key_expression())
        .values_list("d", endpoint.ip, "port_key", "protocol", "direction", "action").annotate(n=Count("pk"))
    )


def clear(*, using=DEFAULT_DB_ALIAS):
    """Empty the rollups (the seals stay: a sealed hour with no flows has no rows)."""
    from flowreports.models import FlowReportDestinationHourly, FlowReportHourly

    _lock_hours(connections[using], [EVERY_HOUR], shared=True)  # no seal counts hours meanwhile
    FlowReportHourly.objects.using(using).all().delete()
    FlowReportDestinationHourly.objects.using(using).all().delete()
    for endpoint in ENDPOINTS:
        endpoint.model.objects.using(using).all().delete()


def rebuild(*, using=DEFAULT_DB_ALIAS):
    """Recompute every rollup from the raw table (after a restore, or to check them), in one transaction."""
    from flowreports.models import FlowReport

    with transaction.atomic(using=using):
        clear(using=using)
        raw = FlowReport._base_manager.using(using).order_by()
        hourly = Counter({(_utc(hour), *rest): n for hour, *rest, n in _hourly_counts(raw)})
        daily = {
            endpoint: Counter({(_utc(day), *rest): n for day, *rest, n in _endpoint_counts(raw, endpoint)})
            for endpoint in ENDPOINTS
        }
        apply(hourly, daily, lambda sealed: _destinations_in(raw, sealed), using=using)


def seal_hours(*, now=None, limit=SEAL_LIMIT, using=DEFAULT_DB_ALIAS):
    """Seal the hours from the oldest flow's to the last that ended SEAL_DELAY ago that have no seal yet,
    newest first, at most `limit` of them: each is counted into FlowReportDestinationHourly and recorded
    in FlowReportSealedHour in a transaction of its own. Seals of hours before the oldest flow, which have
    nothing left to count, are removed. Returns how many hours were sealed."""
    from flowreports.models import FlowReport, FlowReportSealedHour

    last = floor_hour((now or timezone.now()) - SEAL_DELAY) - HOUR
    oldest = (FlowReport._base_manager.using(using).order_by("start_time")
              .values_list("start_time", flat=True).first())
    if oldest is None:
        return 0
    first = floor_hour(oldest)
    with transaction.atomic(using=using):
        # Only the seals (no writer locks them, so this never waits while it holds the lock): the rows of an
        # hour without a seal are never read, and a seal clears them before it counts the hour.
        if _try_lock_every_hour(connections[using]):  # else a write of many hours is under way: next run
            FlowReportSealedHour.objects.using(using).filter(hour__lt=first).delete()
    sealed = {_utc(hour) for hour in FlowReportSealedHour.objects.using(using)
              .filter(hour__gte=first, hour__lte=last).values_list("hour", flat=True)}
    done, hour = 0, last
    while hour >= first and done < limit:
        if hour not in sealed:
            counted = _seal(hour, using=using)
            if counted is None:
                logger.info("flowreports: a write of many hours held off sealing %s; the next run goes on", hour)
                break
            done += counted
        hour -= HOUR
    return done


class _Busy(Exception):
    """A write of many hours holds the lock for every hour."""


def _try_lock_every_hour(connection):
    """Take the lock of every hour (exclusive) if no write holds it; whether it was taken."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, EVERY_HOUR])
        return cursor.fetchone()[0]


def _lock_hour_to_seal(connection, hour):
    """Wait for this hour's lock, then try for the one of every hour; False (the transaction must end) if busy."""
    _lock_hours(connection, [(hour - EPOCH) // HOUR], shared=False)
    return _try_lock_every_hour(connection)


def _seal(hour, *, using):
    """1 when this call sealed the hour, 0 when it was sealed already, None when a write of many hours kept
    holding the lock of every hour."""
    from flowreports.models import FlowReport, FlowReportDestinationHourly, FlowReportSealedHour

    connection = connections[using]
    for _ in range(SEAL_ATTEMPTS):
        try:
            with transaction.atomic(using=using):
                # Waits for the writers of this hour under way; its writers after it wait, then find the seal.
                if not _lock_hour_to_seal(connection, hour):
                    raise _Busy
                if FlowReportSealedHour.objects.using(using).filter(hour=hour).exists():
                    return 0  # sealed by another run meanwhile
                # Rows of an hour without a seal were kept by nobody: count the hour afresh.
                FlowReportDestinationHourly.objects.using(using).filter(hour=hour).delete()
                flows = FlowReport._base_manager.using(using).filter(start_time__gte=hour, start_time__lt=hour + HOUR)
                _upsert(connection, FlowReportDestinationHourly, HOURLY_DESTINATION_KEY,
                        _destinations_in(flows.order_by(), {hour}))
                FlowReportSealedHour.objects.using(using).create(hour=hour)
            return 1
        except _Busy:
            time.sleep(SEAL_RETRY_SECONDS)
    return None
