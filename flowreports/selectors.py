"""Reads of the flow reports app: grouped listings and stats, aggregated in the database."""

import datetime as dt
from collections import Counter

from django.db import connection
from django.db.models import CharField, Count, Func, Sum
from django.utils import timezone

from flowreports import rollups
from vpnmonitor.privacy import mask_ip
from vpnmonitor.timeseries import floor_time

DAY = 86400
# group_by returns at most `per_page` groups per page and this many flows in each group (the first
# ones by start time); the plain listing filtered to that day or subscriber pages through the rest.
GROUP_ITEM_LIMIT = 100
TOP_DESTINATIONS = 10


class MaskedIP(Func):
    """SQL: an address masked like vpnmonitor.privacy.mask_ip (IPv4 /24, IPv6 /48, v4-mapped /120).

    Grouping by the masked value makes GDPR-mode aggregates add up per network instead of
    listing the same masked address several times.
    """

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        length = (
            f"CASE WHEN family({sql}) = 4 THEN 24 "
            f"WHEN {sql} << inet '::ffff:0.0.0.0/96' THEN 120 ELSE 48 END"
        )
        return f"host(network(set_masklen({sql}, {length})))", params * 3

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"flowreports_mask_ip({sql})", params

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"MaskedIP does not support {connection.vendor}")


class IPText(Func):
    """SQL: an address as text (PostgreSQL's inet sorts numerically; text sorts the same on every backend)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"host({sql})", params

    def as_sql(self, compiler, connection, **extra):
        return compiler.compile(self.source_expressions[0])


def register_sqlite_functions(sender, connection, **kwargs):
    """connection_created hook: give SQLite the same masking function PostgreSQL computes in SQL."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("flowreports_mask_ip", 1, mask_ip, deterministic=True)


# From this offset on, a page's keys are found first and its rows fetched by key (see page_of).
DEFERRED_OFFSET = 1000


def page_of(queryset, start, stop):
    """The rows [start:stop] of an ordered queryset, as a list.

    Deep pages find their primary keys first, in a query that reads the (start_time, id) index alone when
    only the window filters (and the visibility map is current), and then fetch just those rows: skipping
    20,000 rows costs index entries instead of 20,000 random reads of the table.
    """
    if start < DEFERRED_OFFSET:
        return list(queryset[start:stop])
    keys = list(queryset.values_list("pk", flat=True)[start:stop])
    if not keys:
        return []
    return list(queryset.filter(pk__in=keys))


def _chronological(queryset):
    return queryset.order_by("start_time", "id")


def _skip_scan(next_key, count):
    """Up to count keys in ascending order, each found by next_key(previous key or None): one short
    index read per key, instead of grouping every row of the window to find a page of groups."""
    keys = []
    while len(keys) < count and (key := next_key(keys[-1] if keys else None)) is not None:
        keys.append(key)
    return keys


def _day_keys(queryset, *, offset, limit):
    # Each probe is the first flow at or after a day boundary, read from (start_time, id).
    times = queryset.order_by("start_time", "id").values_list("start_time", flat=True)

    def next_day(previous):
        first = (times if previous is None else times.filter(start_time__gte=previous + dt.timedelta(days=1))).first()
        return None if first is None else floor_time(first, DAY)

    return _skip_scan(next_day, offset + limit)[offset:]


# Up to this many subscriber groups (offset + limit) are found by index probes; deeper pages by one DISTINCT.
PROBED_SUBSCRIBERS = 500


def _subscriber_keys(queryset, *, offset, limit):
    ids = queryset.order_by("subscriber_id").values_list("subscriber_id", flat=True)
    if offset + limit > PROBED_SUBSCRIBERS:
        return list(ids.distinct()[offset:offset + limit])
    # Each probe is the next subscriber after the last one found, read from (subscriber_id, start_time).
    return _skip_scan(
        lambda previous: (ids if previous is None else ids.filter(subscriber_id__gt=previous)).first(), offset + limit,
    )[offset:]


def group_keys(queryset, group_by, *, offset, limit):
    """The day starts (datetimes) or subscriber ids of one page of groups, ascending."""
    if group_by == "day":
        return _day_keys(queryset, offset=offset, limit=limit)
    return _subscriber_keys(queryset, offset=offset, limit=limit)


def grouped_flows(queryset, group_by, *, offset=0, limit=25, item_limit=None):
    """[(key, [FlowReport, ...]), ...]: one page of groups, each with its first item_limit flows.

    Days are found by index probes (at most offset + limit of them), subscribers by probes too up to
    PROBED_SUBSCRIBERS groups deep and by one DISTINCT query beyond; then one indexed, limited query per
    group: no query returns more than item_limit rows.
    Keys are 'YYYY-MM-DD' (UTC) for group_by=day and the subscriber id for group_by=subscriber.
    """
    item_limit = item_limit or GROUP_ITEM_LIMIT
    out = []
    for key in group_keys(queryset, group_by, offset=offset, limit=limit):
        if group_by == "day":
            members = queryset.filter(start_time__gte=key, start_time__lt=key + dt.timedelta(days=1))
            label = key.date().isoformat()
        else:
            members = queryset.filter(subscriber_id=key)
            label = key
        out.append((label, list(_chronological(members)[:item_limit])))
    return out


def flow_stats(queryset, *, mask=False):
    """Flows per protocol (most first) and the top uplink destinations, both over `queryset`.

    Every filter applies to both parts, direction included: with direction=downlink there are no
    uplink destinations to list. mask groups destinations by masked network (GDPR mode).
    """
    protocols = (
        queryset.order_by().values("protocol").annotate(count=Count("id")).order_by("-count", "protocol")
    )
    # Ties are ordered by the address as text, so both backends list them alike.
    destination = MaskedIP("destination_ip") if mask else IPText("destination_ip")
    top = (
        queryset.filter(direction="uplink", destination_ip__isnull=False).order_by()
        .annotate(ip=destination).values("ip").annotate(count=Count("id")).order_by("-count", "ip")
    )[:TOP_DESTINATIONS]
    return {
        "protocols": [{"protocol": row["protocol"], "count": row["count"]} for row in protocols],
        "top_destinations_uplink": [{"ip": str(row["ip"]), "count": row["count"]} for row in top],
    }


# Rollup reads: the whole hours (or days) of a window from the rollups, its partial edges from the raw table.

def _spans(start, end, floor, step):
    """(first, stop, edges): the whole steps [first, stop) inside the inclusive window, and the raw edges.

    edges are (low, high) pairs, both inclusive, of the window's partial steps. None when the
    window holds no whole step (it is then counted from the raw table alone).
    """
    try:
        first = floor(start)
        if first < start:
            first += step
        stop = floor(end)
        if stop + step - dt.timedelta(microseconds=1) <= end:
            stop += step
    except OverflowError:
        return None
    if first >= stop:
        return None
    edges = []
    if start < first:
        edges.append((start, first - dt.timedelta(microseconds=1)))
    if stop <= end:
        edges.append((stop, end))
    return first, stop, edges


def window_count(queryset, window, dimensions):
    """queryset.count() of a window filtered only by protocol/direction/action, from the hourly rollup."""
    from flowreports.models import FlowReport, FlowReportHourly

    return _rollup_count(
        queryset, window, FlowReport.objects.filter(**dimensions), FlowReportHourly.objects.filter(**dimensions),
        field="hour", floor=rollups.floor_hour, step=rollups.HOUR,
    )


def endpoint_count(queryset, window, dimensions, endpoint, address, port):
    """queryset.count() of a window filtered by one endpoint (address, port or both: endpoint is
    rollups.SOURCE or rollups.DESTINATION) and otherwise only by protocol/direction/action, from that
    endpoint's daily rollup.

    The subscriber's own ports from 1024 up are not kept per port (rollups.OTHER_PORT): when the window has
    such flows at the address, they could be on the port asked for, and the raw flows are counted instead.
    """
    from flowreports.models import FlowReport

    where = {endpoint.ip: address} if address is not None else {}
    rollup = endpoint.model.objects.filter(**dimensions, **where)
    if port is not None:
        if port >= rollups.FIRST_EPHEMERAL_PORT:
            first, last = rollups.floor_day(window[0]), rollups.floor_day(window[1])
            if rollup.filter(day__range=(first, last), **{endpoint.port: rollups.OTHER_PORT}).exists():
                return queryset.count()
        where[endpoint.port] = port
        rollup = rollup.filter(**{endpoint.port: port})
    return _rollup_count(
        queryset, window, FlowReport.objects.filter(**dimensions, **where), rollup,
        field="day", floor=rollups.floor_day, step=rollups.DAY,
    )


def _rollup_count(queryset, window, raw, rollup, *, field, floor, step):
    """queryset.count() (its flows in the window) as the rollup's whole steps (hours or days) in the window,
    plus its partial steps at the edges.

    raw is every flow the rollup rows count (queryset without the window). A partial step at an edge is
    counted from the raw table, or as that step's rollup less the rest of the step when the rest is the
    shorter time (no flow starts after now, so the edge at "now" then costs nothing). One statement, so the
    rollup and the raw table are read from one snapshot.
    """
    spans = _spans(*window, floor, step)
    if spans is None:
        return queryset.count()
    first, stop, edges = spans
    now = timezone.now()
    added, subtracted = [], []
    for low, high in edges:
        start = floor(low)
        end = start + step
        rest = (low - start) + max(dt.timedelta(0), min(end, now) - high)
        if high - low <= rest:
            added.append(queryset.filter(start_time__range=(low, high)))
            continue
        first, stop = min(first, start), max(stop, end)
        if start < low:
            subtracted.append(raw.filter(start_time__gte=start, start_time__lt=low))
        if high < end:
            subtracted.append(raw.filter(start_time__gt=high, start_time__lt=end))
    whole = rollup.filter(**{f"{field}__gte": first, f"{field}__lt": stop}).order_by()
    sql, params = whole.values("flows").query.sql_with_params()
    parts, all_params = [f"(SELECT COALESCE(SUM(r.flows), 0) FROM ({sql}) r)"], list(params)
    for sign, querysets in (("+", added), ("-", subtracted)):
        for part in querysets:
            sql, params = part.order_by().values("pk").query.sql_with_params()
            parts.append(f"{sign} (SELECT COUNT(*) FROM ({sql}) c)")
            all_params.extend(params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + " ".join(parts), all_params)
        return int(cursor.fetchone()[0])


def _union_top(parts, limit):
    """[(ip, count)]: the parts' (ip, n) rows summed per ip, most first, ties by ip."""
    sql, params = [], []
    for part in parts:
        part_sql, part_params = part.query.sql_with_params()
        sql.append(part_sql)
        params.extend(part_params)
    union = " UNION ALL ".join(sql)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT u.ip, SUM(u.n) AS n FROM ({union}) u GROUP BY u.ip ORDER BY n DESC, u.ip LIMIT {int(limit)}',
            params,
        )
        return [(ip, int(n)) for ip, n in cursor.fetchall()]


def rollup_stats(queryset, window, dimensions, *, mask=False):
    """flow_stats(queryset) for a window filtered only by protocol/direction/action, from the rollups."""
    from flowreports.models import FlowReportDestinationDaily, FlowReportHourly

    hours = _spans(*window, rollups.floor_hour, rollups.HOUR)
    if hours is None:
        return flow_stats(queryset, mask=mask)
    first, stop, edges = hours
    counts = Counter()
    for row in (FlowReportHourly.objects.filter(hour__gte=first, hour__lt=stop, **dimensions)
                .order_by().values("protocol").annotate(n=Sum("flows"))):
        counts[row["protocol"]] += int(row["n"])
    for low, high in edges:
        for row in (queryset.filter(start_time__range=(low, high)).order_by()
                    .values("protocol").annotate(n=Count("id"))):
            counts[row["protocol"]] += row["n"]
    protocols = sorted(((protocol, n) for protocol, n in counts.items() if n), key=lambda item: (-item[1], item[0]))

    destination = MaskedIP if mask else IPText
    days = _spans(*window, rollups.floor_day, rollups.DAY)
    if dimensions.get("direction", "uplink") != "uplink":
        top = []
    elif days is None:
        top = flow_stats(queryset, mask=mask)["top_destinations_uplink"]
        top = [(row["ip"], row["count"]) for row in top]
    else:
        first, stop, edges = days
        kept = {**dimensions, "direction": "uplink"}
        parts = [
            FlowReportDestinationDaily.objects.filter(day__gte=first, day__lt=stop, **kept).order_by()
            .annotate(ip=destination("destination_ip")).values("ip").annotate(n=Sum("flows"))
        ]
        uplink = queryset.filter(direction="uplink", destination_ip__isnull=False).order_by()
        parts += [
            uplink.filter(start_time__range=(low, high)).annotate(ip=destination("destination_ip"))
            .values("ip").annotate(n=Count("id"))
            for low, high in edges
        ]
        top = _union_top(parts, TOP_DESTINATIONS)
    return {
        "protocols": [{"protocol": protocol, "count": n} for protocol, n in protocols],
        "top_destinations_uplink": [{"ip": str(ip), "count": n} for ip, n in top],
    }
