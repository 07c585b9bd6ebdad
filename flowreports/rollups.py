"""The flow rollups: hourly counts and daily destinations, kept exact at write time.

Every insert adds its flows to FlowReportHourly (hour, protocol, direction, action) and, for
flows with a destination address, to FlowReportDestinationDaily (day, destination address,
destination port, protocol, direction, action), in the same transaction as the flows
themselves; every delete subtracts what it deletes first. Reads answer total_count and /stats
from them whenever the filters are only a window, protocol, direction, action and (for the
daily rollup) destination, and count the partial hours (or days) at the window's edges from the
raw table.

The daily rollup keeps every destination port except one kind: a downlink flow's port from 1024
up is the subscriber's ephemeral client port, one per connection, and keeping each would add a
row per flow. Those are counted together under OTHER_PORT; a destination=IP:port filter for such
a port falls back to counting raw flows when the window has any of them (see
selectors.destination_count). Flows without a port count under NO_PORT.
"""

import datetime as dt
from collections import Counter

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count
from django.db.models.functions import Trunc

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# The fields of a flow that decide which rollup rows it counts in.
DIMENSIONS = frozenset({"start_time", "protocol", "direction", "action", "destination_ip", "destination_port"})
CHUNK = 5000
# FlowReportDestinationDaily.destination_port for what it does not keep per port (see above).
OTHER_PORT = -1
NO_PORT = -2
FIRST_EPHEMERAL_PORT = 1024
DAILY_KEY = ("day", "destination_ip", "destination_port", "protocol", "direction", "action")


def port_key(direction, port):
    """The destination port under which a flow counts in FlowReportDestinationDaily."""
    if port is None:
        return NO_PORT
    if port >= FIRST_EPHEMERAL_PORT and direction == "downlink":
        return OTHER_PORT
    return port


def port_key_expression():
    """port_key() in SQL, for grouping stored flows."""
    from django.db.models import Case, F, IntegerField, Value, When

    return Case(
        When(destination_port__isnull=True, then=Value(NO_PORT)),
        When(direction="downlink", destination_port__gte=FIRST_EPHEMERAL_PORT, then=Value(OTHER_PORT)),
        default=F("destination_port"), output_field=IntegerField(),
    )


def _utc(moment):
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def floor_hour(moment):
    return _utc(moment).replace(minute=0, second=0, microsecond=0)


def floor_day(moment):
    return _utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def model_rows(objs):
    """(start_time, protocol, direction, action, destination_ip, destination_port) of FlowReport instances."""
    from flowreports.models import FlowReport

    field = FlowReport._meta.get_field
    start, protocol, address = field("start_time").to_python, field("protocol").to_python, field("destination_ip")
    port = field("destination_port").to_python
    return [
        (start(obj.start_time), protocol(obj.protocol), obj.direction or "", obj.action,
         address.to_python(obj.destination_ip) or None, port(obj.destination_port))
        for obj in objs
    ]


def aggregate(rows):
    """(hourly Counter, daily destination Counter) of
    (start_time, protocol, direction, action, destination_ip, destination_port) rows."""
    epoch_hours = Counter()
    destinations = Counter()
    for start, protocol, direction, action, destination, port in rows:
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        # Whole hours since the epoch (exact integer arithmetic): cheaper than a datetime per flow.
        hour = (start - EPOCH) // HOUR
        epoch_hours[hour, protocol, direction, action] += 1
        if destination is not None and destination != "":
            destinations[hour // 24, destination, port_key(direction, port), protocol, direction, action] += 1
    hours, days = {}, {}
    hourly, daily = Counter(), Counter()
    for (hour, protocol, direction, action), n in epoch_hours.items():
        if hour not in hours:
            hours[hour] = EPOCH + dt.timedelta(hours=hour)
        hourly[hours[hour], protocol, direction, action] += n
    for (day, *rest), n in destinations.items():
        if day not in days:
            days[day] = EPOCH + dt.timedelta(days=day)
        daily[days[day], *rest] += n
    return hourly, daily


def add(rows, *, using=DEFAULT_DB_ALIAS):
    hourly, daily = aggregate(rows)
    apply(hourly, daily, using=using)


def apply(hourly, daily, *, using=DEFAULT_DB_ALIAS):
    """Add the counts (negative to subtract) to the rollups; rows that reach zero are removed."""
    from flowreports.models import FlowReportDestinationDaily, FlowReportHourly

    connection = connections[using]
    _upsert(connection, FlowReportHourly, ("hour", "protocol", "direction", "action"), hourly)
    _upsert(connection, FlowReportDestinationDaily, DAILY_KEY, daily)
    if any(count < 0 for count in hourly.values()):
        FlowReportHourly.objects.using(using).filter(
            flows__lte=0, hour__in=sorted({key[0] for key in hourly})
        ).delete()
    if any(count < 0 for count in daily.values()):
        FlowReportDestinationDaily.objects.using(using).filter(
            flows__lte=0, day__in=sorted({key[0] for key in daily})
        ).delete()


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
    # Sorted keys: concurrent writers lock the rows they share in one order, so they never deadlock.
    items = sorted(counts.items(), key=lambda item: tuple(str(part) for part in item[0]))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            types = [_pg_type(field) for field in fields]
            arrays = [[key[i] for key, _ in items] for i in range(len(key_fields))] + [[n for _, n in items]]
            select = ", ".join(f"%s::{kind}[]" for kind in types)
            params = [
                [str(value) for value in array] if kind == "inet" else array
                for kind, array in zip(types, arrays, strict=True)
            ]
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({select}) {update}", params)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            params = [
                [field.get_db_prep_value(value, connection) for field, value in zip(fields, (*key, n), strict=True)]
                for key, n in items
            ]
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {update}", params)


def _pg_type(field):
    return {
        "DateTimeField": "timestamptz", "GenericIPAddressField": "inet", "PositiveSmallIntegerField": "integer",
        "IntegerField": "integer", "CharField": "text", "BigIntegerField": "bigint",
    }[field.get_internal_type()]


def subtract_pks(model, pks, *, using=DEFAULT_DB_ALIAS):
    """Subtract the flows with these primary keys (not yet deleted) from the rollups."""
    for first in range(0, len(pks), CHUNK):
        rows = model._base_manager.using(using).filter(pk__in=pks[first:first + CHUNK]).order_by()
        hourly, daily = Counter(), Counter()
        for hour, protocol, direction, action, n in (
            rows.annotate(h=Trunc("start_time", "hour", tzinfo=dt.UTC))
            .values_list("h", "protocol", "direction", "action").annotate(n=Count("pk"))
        ):
            hourly[_utc(hour), protocol, direction, action] -= n
        for day, *rest, n in _destination_counts(rows):
            daily[_utc(day), *rest] -= n
        apply(hourly, daily, using=using)


def _destination_counts(flows):
    """(day, destination_ip, port key, protocol, direction, action, flows) of a FlowReport queryset, in SQL."""
    return (
        flows.filter(destination_ip__isnull=False).annotate(d=Trunc("start_time", "day", tzinfo=dt.UTC),
                                                            port_key=port_key_expression())
        .values_list("d", "destination_ip", "port_key", "protocol", "direction", "action").annotate(n=Count("pk"))
    )


def clear(*, using=DEFAULT_DB_ALIAS):
    from flowreports.models import FlowReportDestinationDaily, FlowReportHourly

    FlowReportHourly.objects.using(using).all().delete()
    FlowReportDestinationDaily.objects.using(using).all().delete()


def rebuild(*, using=DEFAULT_DB_ALIAS):
    """Recompute both rollups from the raw table (after a restore, or to check them)."""
    from flowreports.models import FlowReport

    clear(using=using)
    raw = FlowReport._base_manager.using(using).order_by()
    hourly = Counter({
        (_utc(hour), protocol, direction, action): n
        for hour, protocol, direction, action, n in raw.annotate(h=Trunc("start_time", "hour", tzinfo=dt.UTC))
        .values_list("h", "protocol", "direction", "action").annotate(n=Count("pk"))
    })
    daily = Counter({(_utc(day), *rest): n for day, *rest, n in _destination_counts(raw)})
    apply(hourly, daily, using=using)
