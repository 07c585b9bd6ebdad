"""Reads of the flow reports app: grouped listings and stats, aggregated in the database."""

import datetime as dt

from django.db.models import CharField, Count, Func

from flowreports import ports, rollups
from flowreports.models import (
    ExporterSampling,
    FlowReport,
    FlowReportDestinationDaily,
    FlowReportDestinationHourly,
    FlowReportHourly,
    FlowReportSealedHour,
)
from vpnmonitor import rollups as core_rollups
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
    return {
        "protocols": [{"protocol": row["protocol"], "count": row["count"]} for row in protocols],
        "top_destinations_uplink": [{"ip": str(ip), "count": n} for ip, n in _top_destinations(queryset, mask)],
    }


def _top_destinations(queryset, mask):
    """[(ip, count)] of the TOP_DESTINATIONS uplink destinations of queryset, counted from its raw flows."""
    # Ties are ordered by the address as text, so both backends list them alike.
    destination = MaskedIP("destination_ip") if mask else IPText("destination_ip")
    top = (
        queryset.filter(direction="uplink", destination_ip__isnull=False).order_by()
        .annotate(ip=destination).values("ip").annotate(count=Count("id")).order_by("-count", "ip")
    )[:TOP_DESTINATIONS]
    return [(row["ip"], row["count"]) for row in top]


# Rollup reads, planned by vpnmonitor.rollups: the whole hours (or days) of a window from the rollups, its
# partial edges from the raw table.

def window_count(queryset, window, dimensions):
    """queryset.count() of a window filtered only by protocol/direction/action, from the hourly rollup."""
    plan = rollups.HOURLY.plan(window)
    if plan is None:
        return queryset.count()
    return rollups.HOURLY.total(plan, raw=FlowReport.objects.filter(**dimensions),
                                rows=FlowReportHourly.objects.filter(**dimensions))


def _endpoint_where(window, dimensions, endpoint, address, port):
    """The filter() keywords of one endpoint (address, port or both) for its daily rollup and the raw table,
    or None when the rollup cannot tell: the subscriber's own ports from 1024 up are not kept per port
    (ports.OTHER_PORT), so when the window has such flows at the address they could be on the port asked for.
    """
    where = {endpoint.ip: address} if address is not None else {}
    if port is not None:
        if ports.may_be_folded(port):
            first, last = rollups.floor_day(window[0]), rollups.floor_day(window[1])
            if endpoint.model.objects.filter(
                day__range=(first, last), **dimensions, **where, **{endpoint.port: ports.OTHER_PORT}
            ).exists():
                return None
        where[endpoint.port] = port
    return where


def _all_sealed(first, stop):

    return FlowReportSealedHour.objects.filter(hour__gte=first, hour__lt=stop).count() == (stop - first) // rollups.HOUR


def _day_plan(window, *, sealed_hours=False):
    """The plan over days; with sealed_hours, each raw edge whose whole hours are all sealed is read from
    those hours of the hourly destination rollup, and only the partial hours at its ends from raw flows."""
    plan = rollups.DESTINATION_DAILY.plan(window)
    if plan is None or not sealed_hours:
        return plan
    return core_rollups.refine(plan, rollups.HOUR, _all_sealed)


def _hourly_destinations(dimensions, where):

    return rollups.DESTINATION_HOURLY, FlowReportDestinationHourly.objects.filter(**dimensions, **where)


def endpoint_count(queryset, window, dimensions, endpoint, address, port):
    """queryset.count() of a window filtered by one endpoint (address, port or both: endpoint is
    rollups.SOURCE or rollups.DESTINATION) and otherwise only by protocol/direction/action, from that
    endpoint's daily rollup (or from the raw flows when a folded port could match: _endpoint_where).
    """
    where = _endpoint_where(window, dimensions, endpoint, address, port)
    if where is None:
        return queryset.count()
    destination = endpoint is rollups.DESTINATION
    plan = _day_plan(window, sealed_hours=destination)
    if plan is None:
        return queryset.count()
    return endpoint.rollup.total(
        plan, raw=FlowReport.objects.filter(**dimensions, **where),
        rows=endpoint.model.objects.filter(**dimensions, **where),
        finer=_hourly_destinations(dimensions, where) if destination else None,
    )


def rollup_stats(queryset, window, dimensions, *, endpoint=None, mask=False):
    """flow_stats(queryset) for a window filtered only by protocol/direction/action and at most one endpoint,
    (rollups.SOURCE or rollups.DESTINATION, address or None, port or None), from the rollups.

    Protocols come from the hourly rollup, or with an endpoint from that endpoint's daily rollup. The top
    uplink destinations come from the daily destination rollup. With a source they are counted from the raw
    flows, unless its rollup shows that the source has no uplink flow in the window (a remote server, say):
    then there is nothing to list. Each part has the window's partial edges from the raw table, and the daily
    destination parts the whole hours of those edges from the hourly destination rollup where they are sealed
    (_day_plan). A port that a folded port could hide (_endpoint_where) is counted raw.
    """
    where, side = {}, None
    if endpoint is not None:
        side, address, port = endpoint
        where = _endpoint_where(window, dimensions, side, address, port)
        if where is None:
            return flow_stats(queryset, mask=mask)
    hours = rollups.HOURLY.plan(window)
    days = _day_plan(window, sealed_hours=side is not rollups.SOURCE)
    if hours is None or (side is not None and days is None):
        return flow_stats(queryset, mask=mask)
    raw = FlowReport.objects.filter(**dimensions, **where)

    if side is None:
        protocols = rollups.HOURLY.grouped(hours, "protocol", raw=raw,
                                           rows=FlowReportHourly.objects.filter(**dimensions))
    else:
        endpoint_daily = side.model.objects.filter(**dimensions, **where)
        protocols = side.rollup.grouped(
            days, "protocol", raw=raw, rows=endpoint_daily,
            finer=_hourly_destinations(dimensions, where) if side is rollups.DESTINATION else None,
        )

    if dimensions.get("direction", "uplink") != "uplink":
        top = []
    elif side is rollups.SOURCE:
        uplink = side.rollup.total(days, raw=raw.filter(direction="uplink"),
                                   rows=endpoint_daily.filter(direction="uplink"))
        top = _top_destinations(queryset, mask) if uplink else []
    elif days is None:
        top = _top_destinations(queryset, mask)
    else:
        uplink = {**dimensions, "direction": "uplink"}
        top = rollups.DESTINATION_DAILY.grouped(
            days, "destination_ip", raw=raw.filter(direction="uplink"),
            rows=FlowReportDestinationDaily.objects.filter(**uplink, **where),
            finer=_hourly_destinations(uplink, where), limit=TOP_DESTINATIONS, label=MaskedIP if mask else IPText,
        )
    return {
        "protocols": [{"protocol": protocol, "count": n} for protocol, n in protocols],
        "top_destinations_uplink": [{"ip": str(ip), "count": n} for ip, n in top],
    }


def exporter_sampling_rates():
    """{(exporter address, observation domain or None for all its domains): rate} that admins set for exporters
    that do not export their sampling rate."""
    return {
        (exporter, domain): rate
        for exporter, domain, rate in ExporterSampling.objects.values_list(
            "exporter", "observation_domain", "sampling_rate"
        )
    }


# ---- Planning: which reads answer a filtered listing or its stats. The API and the dashboard both call these,
# with a FlowReportFilterSet whose queryset was already filtered (so every value was checked).


def flow_counter(filterset):
    """A function counting the filtered flows from a rollup, or None when no rollup keeps the filters."""
    dimensions = filterset.rollup_dimensions()
    if dimensions is not None:
        return lambda queryset: window_count(queryset, filterset.window, dimensions)
    endpoint = filterset.endpoint_rollup()
    if endpoint is not None:
        return lambda queryset: endpoint_count(queryset, filterset.window, *endpoint)
    return None


def count_flows(filterset, queryset):
    """How many flows the filtered queryset holds: from a rollup when one keeps the filters, else COUNT(*)."""
    counter = flow_counter(filterset)
    return queryset.count() if counter is None else counter(queryset)


def flow_report_page(filterset, queryset, start, stop):
    """(the rows [start:stop] of the filtered, ordered queryset, total_count) for one page of the listing."""
    total = count_flows(filterset, queryset)
    return page_of(queryset, start, stop), total


def filtered_flow_stats(filterset, queryset, *, mask=False):
    """flow_stats of the filtered flows: from the rollups when they keep the filters, else from the raw rows."""
    dimensions, endpoint = filterset.rollup_dimensions(), None
    if dimensions is None and (found := filterset.endpoint_rollup()) is not None:
        dimensions, endpoint = found[0], found[1:]
    if dimensions is None:
        return flow_stats(queryset, mask=mask)
    return rollup_stats(queryset, filterset.window, dimensions, endpoint=endpoint, mask=mask)
