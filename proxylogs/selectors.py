"""Reads of the access-log side: listings, counters and aggregates, computed in the database.

Functions that return client addresses take `masked` (GDPR mode for this caller): addresses are then masked
and aggregates are grouped by the masked network (the stored client_network column), so two clients of one
/24 come out as one row rather than as two rows with the same masked address.

The summaries over "the last N hours" (window_totals, traffic_statistics, clients, hosts, domains, agents, file
types, shadow IT, WAF and threats) read the rollups of proxylogs.dashboard_rollups through the core's planner:
the window's whole hours from the hourly rollups, its partial first hour from the entries, in one statement;
distinct clients per host, users and last-seen times from the last-seen tables. They return what the same
aggregates over the entries return.
"""

import datetime as dt
import ipaddress
import math

from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Max, Min, Q, Sum, Value, When, Window
from django.utils import timezone

from proxylogs import dashboard_rollups as rollups
from proxylogs.catalogue import FILE_TYPE_CATEGORIES
from proxylogs.ingest.parse import status_text
from proxylogs.models import (
    LogImport,
    ProxyLogClientSeen,
    ProxyLogEntry,
    ProxyLogHostClientSeen,
    ProxyLogHostSeen,
    ProxyLogHour,
    SecurityProfile,
    ShadowItService,
    WafCategory,
)
from proxylogs.security import security_score
from vpnmonitor import rollups as core
from vpnmonitor.models import AuditEvent
from vpnmonitor.privacy import is_masked_host, mask_client
from vpnmonitor.timeseries import EpochBucket, floor_time, format_timestamp, last_buckets, zero_fill

HOUR = 3600
DAY = 24 * HOUR


def _client(row, masked):
    """The client of a row with client_ip and client_host: its address or host name, masked in GDPR mode."""
    client = row["client_ip"] if row["client_ip"] is not None else row["client_host"]
    return mask_client(client) if masked else client


def _distinct_clients():
    # Addresses and host names are disjoint (a row has one or the other), so their distinct counts add up.
    return Count("client_ip", distinct=True) + Count("client_host", distinct=True)


def _is_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _time(moment):
    return format_timestamp(moment) if moment is not None else None


def log_entries():
    """Every entry; filtersets.LogEntryFilterSet orders it for /api/logs."""
    return ProxyLogEntry.objects.all()


# From this offset on, a page in time order starts at the hour the rollup's running counts point to; below it
# a plain OFFSET skips at most this many index entries, as cheap as reading the rollup.
DEEP_OFFSET = 1000
_TIME_ORDERS = {("timestamp", "id"): "asc", ("-timestamp", "-id"): "desc"}


def log_page(queryset, offset, limit, *, deep_offset=DEEP_OFFSET):
    """Rows offset..offset+limit of an ordered log queryset: the same rows, in the same order, as
    `queryset[offset:offset + limit]`.

    In time order ((timestamp, id) either way, which is total) with no filter, a deep offset is turned into a
    time boundary through the hourly rollup's exact counts: the running count of the hours, in the page's
    order, finds the hour holding row `offset`, and the page's ids are read from that hour's edge with the
    residual offset (less than one hour's rows) on the (timestamp, id) index, then their rows. Every other
    queryset, and offsets below deep_offset, read the plain OFFSET.
    """
    direction = _TIME_ORDERS.get(tuple(queryset.query.order_by))
    query = queryset.query
    if (offset < deep_offset or direction is None or query.where or query.is_sliced or query.distinct
            or query.combinator or query.extra_order_by):
        return list(queryset[offset:offset + limit])
    order = F("hour").asc() if direction == "asc" else F("hour").desc()
    hour = (ProxyLogHour.objects.annotate(running=Window(Sum("total"), order_by=order))
            .filter(running__gt=offset).order_by(order).values_list("hour", "running", "total").first())
    if hour is None:
        return []  # the offset is past the last row
    start, running, total = hour
    skip = offset - (running - total)
    if direction == "asc":
        rest = queryset.filter(timestamp__gte=start)
    else:
        rest = queryset.filter(timestamp__lt=start + dt.timedelta(seconds=HOUR))
    # The page's ids first, from the (timestamp, id) index alone where the visibility map allows, then just
    # those rows: stepping over the residual offset costs index entries rather than table rows.
    keys = list(rest.values_list("pk", flat=True)[skip:skip + limit])
    return list(queryset.filter(pk__in=keys)) if keys else []


def last_import_time():
    """When an import that read lines last succeeded (None before the first one)."""
    return LogImport.objects.filter(status=LogImport.Status.SUCCESS).aggregate(at=Max("finished_at"))["at"]


def log_stats():
    """/api/logs/stats: totals over every stored entry, from the hourly rollup (exact, see proxylogs.rollups)."""
    totals = ProxyLogHour.objects.aggregate(total=Sum("total"), blocked=Sum("blocked"), ip_blocked=Sum("ip_blocked"))
    return {
        "total_count": totals["total"] or 0,
        "blocked_count": totals["blocked"] or 0,
        "ip_blocks_count": totals["ip_blocked"] or 0,
        "last_import": _time(last_import_time()),
    }


def timeline(hours, *, now=None):
    """/api/logs/timeline: `hours` hourly buckets ending with the current hour, empty hours as zeros."""
    starts = last_buckets(HOUR, hours, now=now)
    rows = ProxyLogHour.objects.filter(hour__gte=starts[0]).values("hour", "total", "blocked")
    return [
        {"time": format_timestamp(row["hour"]), "total": row["total"], "blocked": row["blocked"]}
        for row in zero_fill(rows, starts, key="hour", fields=("total", "blocked"))
    ]


def _window(hours, now=None):
    return ProxyLogEntry.objects.filter(timestamp__gte=(now or timezone.now()) - dt.timedelta(hours=hours))


_BLOCKED = Q(blocked=True)
# The window's plan runs this far ahead of now: "the last N hours" counts entries stamped later than now too.
_AHEAD = dt.timedelta(days=3650)


def _start(hours, now):
    return (now or timezone.now()) - dt.timedelta(hours=hours)


def _window_rows(rollup, hours, now, keys, measures, where=None, *, summed=False):
    """(sql, params) of core.window_rows over the last `hours` hours (open towards the future) of a rollup,
    both sides filtered by `where` (keywords that name a dimension); summed: each part's rollup rows summed per
    key already (a window of 30 days then hands its GROUP BY a row per key, not one per day and key)."""
    now = now or timezone.now()
    window = (_start(hours, now), floor_time(now, dt.timedelta(seconds=DAY)) + _AHEAD - dt.timedelta(microseconds=1))
    rows, raw = rollup.rollup_model.objects.all(), ProxyLogEntry.objects.all()
    if where:
        rows, raw = rows.filter(**where), raw.filter(**where)
    daily = rollups.DAILY.get(rollup)
    if daily is None:
        return core.window_rows(rollup, core.plan(window, rollup.step, now=now), keys, measures, raw=raw, rows=rows,
                                summed=summed)
    # Whole days from the daily rollup, the whole hours of the partial days from the hourly one.
    plan = core.refine(core.plan(window, daily.step, now=now), rollup.step, lambda first, stop: True, now=now)
    days = daily.rollup_model.objects.filter(**where) if where else daily.rollup_model.objects.all()
    return core.window_rows(daily, plan, keys, measures, raw=raw, rows=days, finer=(rollup, rows), summed=summed)


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# Windows longer than this many hours have their rollup rows summed per key in each part before the GROUP BY
# (_window_rows' summed): a key's many daily rows then come to it as one. At a week or less the second grouping
# costs more than it saves (measured at 10M rows a month: 24 and 168 hours 0-2 ms slower, 720 hours 1-12 ms
# faster, the most for _summed_together's four keys).
_SUMMED_AFTER = 7 * 24


def _summed(rollup, hours, now, keys, measures, *, where=None, order=None, limit=None):
    """[(key values..., measure sums...)] per key over the window, keys without entries left out (the first
    measure sums to zero), ordered by `order` (SQL over k0.. and n0.., default: n0 DESC then the keys)."""
    sql, params = _window_rows(rollup, hours, now, keys, measures, where, summed=hours > _SUMMED_AFTER)
    names = [f"w.k{i}" for i in range(len(keys))]
    sums = [f"SUM(w.m{i}) AS n{i}" for i in range(len(measures))]
    order = order or ", ".join(["n0 DESC", *(f"k{i}" for i in range(len(keys)))])
    group = f" GROUP BY {', '.join(names)}" if names else ""
    columns = [f"{name} AS k{i}" for i, name in enumerate(names)] + sums
    rows = _fetch(f"SELECT {', '.join(columns)} FROM ({sql}) w{group} HAVING SUM(w.m0) > 0 ORDER BY {order}"
                  + ("" if limit is None else f" LIMIT {int(limit)}"), params)
    width = len(keys)
    return [(*row[:width], *(int(n) for n in row[width:])) for row in rows]


def _summed_together(rollup, hours, now, reads):
    """[_summed(rollup, hours, now, **read) for read in reads] in one statement, for reads in the default order
    whose `where` (if any) only asks that keys of their own be not NULL: the window's rows are read once and
    summed per key of all the reads together (a small table: one row per key, never per bucket), and each read
    sums those rows again per its own keys, ordered and cut to its limit in the database."""
    keys = list(dict.fromkeys(key for read in reads for key in read["keys"]))
    measures = list(dict.fromkeys(measure for read in reads for measure in read["measures"]))
    sql, params = _window_rows(rollup, hours, now, keys, measures, summed=hours > _SUMMED_AFTER)
    model = rollup.rollup_model._meta
    typed_null = {key: f"CAST(NULL AS {model.get_field(key).cast_db_type(connection)})" for key in keys}
    sums = ", ".join([f"w.k{i} AS d{i}" for i in range(len(keys))]
                     + [f"SUM(w.m{i}) AS v{i}" for i in range(len(measures))])
    group = f" GROUP BY {', '.join(f'w.k{i}' for i in range(len(keys)))}" if keys else ""
    parts, limits = [], []
    for number, read in enumerate(reads):
        mine = [keys.index(key) for key in read["keys"]]
        not_null = []
        for lookup, value in (read.get("where") or {}).items():
            key, _, test = lookup.rpartition("__")
            if test != "isnull" or value is not False or key not in read["keys"]:
                raise ValueError(f"_summed_together reads filter keys of their own by __isnull=False: {lookup}")
            not_null.append(f"g.d{keys.index(key)} IS NOT NULL")
        first = f"SUM(g.v{measures.index(read['measures'][0])})"
        order = ", ".join([f"{first} DESC", *(f"g.d{i}" for i in mine)])
        columns = [f"g.d{i}" if i in mine else typed_null[key] for i, key in enumerate(keys)]
        columns += [f"SUM(g.v{i})" for i in range(len(measures))]
        parts.append(f"SELECT {number} AS s, ROW_NUMBER() OVER (ORDER BY {order}) AS r, {', '.join(columns)} FROM g"
                     + (f" WHERE {' AND '.join(not_null)}" if not_null else "")
                     + (f" GROUP BY {', '.join(f'g.d{i}' for i in mine)}" if mine else "")
                     + f" HAVING {first} > 0")
        limits.append(f"s = {number}" if read.get("limit") is None else f"(s = {number} AND r <= {int(read['limit'])})")
    rows = _fetch(f"WITH w AS ({sql}), g AS (SELECT {sums} FROM w{group}) "
                  f"SELECT * FROM ({' UNION ALL '.join(parts)}) u WHERE {' OR '.join(limits)} ORDER BY s, r", params)
    out = [[] for _ in reads]
    for number, _, *values in rows:
        read = reads[number]
        found = (*(values[keys.index(key)] for key in read["keys"]),
                 *(int(values[len(keys) + measures.index(measure)]) for measure in read["measures"]))
        out[number].append(found)
    return out


def _clients_seen(hours, now):
    return ProxyLogClientSeen.objects.filter(bucket=rollups.SEEN_BUCKET, last_seen__gte=_start(hours, now))


def _hosts_seen(hours, now):
    return ProxyLogHostSeen.objects.filter(bucket=rollups.SEEN_BUCKET, last_seen__gte=_start(hours, now))


def _host_clients_seen(hours, now):
    return ProxyLogHostClientSeen.objects.filter(bucket=rollups.SEEN_BUCKET, last_seen__gte=_start(hours, now))


# The reads of the destinations rollup (as _summed's keywords) behind the window's totals, the most refused
# destinations, the threat categories and the busiest hosts: the dashboard's summary makes them in one statement.
_TOTALS = {"keys": [], "measures": ["requests", "blocked", "bytes"]}
_HOSTS = {"keys": ["destination_host"], "measures": ["requests", "bytes", "blocked"],
          "where": {"destination_host__isnull": False}}
_BLOCKED_DESTINATIONS = {"keys": ["destination"], "measures": ["blocked"], "where": {"destination__isnull": False}}
_THREATS = {"keys": ["waf_category", "destination_is_ip"], "measures": ["blocked"]}


def window_totals(hours, *, now=None):
    # From the destinations: their daily rollup holds long windows in the fewest rows.
    return _totals(_summed(rollups.DESTINATIONS, hours, now, **_TOTALS), hours, now)


def _totals(summed, hours, now):
    """window_totals of the read _TOTALS (or of any read of the window's requests, refusals and bytes)."""
    requests, blocked, size = summed[0] if summed else (0, 0, 0)
    return {
        "requests": requests, "blocked": blocked, "bytes": size,
        # A client has entries in the window exactly when it was last seen at or after its start.
        "unique_clients": _clients_seen(hours, now).count(),
        "unique_domains": _hosts_seen(hours, now).exclude(domain=None).aggregate(
            n=Count("domain", distinct=True))["n"],
        "allowed": requests - blocked,
    }


def traffic_statistics(period="day", *, now=None):
    """/api/traffic/statistics: the period's chart (traffic_chart) and, over the same span, totals, breakdowns by
    status, method and result code, and bytes per hour."""
    step, count, _ = TRAFFIC_PERIODS[period]
    hours = max(1, step * count // HOUR)

    # One read of the requests rollup for the three breakdowns and the totals.
    fields = ["http_status", "method", "result_code"]
    combinations = _summed(rollups.REQUESTS, hours, now, fields, ["requests", "bytes", "blocked"])

    def breakdown(field, limit=20):
        index = fields.index(field)
        sums = {}
        for row in combinations:
            total = sums.setdefault(row[index], [0, 0])
            total[0] += row[3]
            total[1] += row[4]
        ordered = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return [{field: key, "count": n, "bytes": size} for key, (n, size) in ordered]

    starts = last_buckets(HOUR, hours, now=now)
    hourly = ProxyLogHour.objects.filter(hour__gte=starts[0]).values("hour", "total", "blocked", "bytes")
    # The window's requests, refusals and bytes: the combinations' sums (every request has a method, a status and
    # a result code), as window_totals reads them from the destinations.
    summed = [tuple(sum(row[index] for row in combinations) for index in (3, 5, 4))] if combinations else []
    totals = _totals(summed, hours, now)
    return {
        **traffic_chart(period, now=now),
        "hours": hours,
        "requests": totals["requests"],
        "blocked_requests": totals["blocked"],
        "allowed": totals["allowed"],
        "bytes": totals["bytes"],
        "unique_clients": totals["unique_clients"],
        "unique_domains": totals["unique_domains"],
        "by_status": [{"status": row["http_status"], "count": row["count"], "bytes": row["bytes"] or 0}
                      for row in breakdown("http_status")],
        "by_method": [{"method": row["method"], "count": row["count"], "bytes": row["bytes"] or 0}
                      for row in breakdown("method")],
        "by_result_code": [{"result_code": row["result_code"], "count": row["count"], "bytes": row["bytes"] or 0}
                           for row in breakdown("result_code")],
        "hourly": [{"time": format_timestamp(row["hour"]), "requests": row["total"], "blocked": row["blocked"],
                    "bytes": row["bytes"]}
                   for row in zero_fill(hourly, starts, key="hour", fields=("total", "blocked", "bytes"))],
    }


# period of /api/traffic/statistics -> (bucket seconds, number of buckets, label format)
TRAFFIC_PERIODS = {
    "hour": (300, 12, "%Y-%m-%d %H:%M"),
    "day": (HOUR, 24, "%Y-%m-%d %H"),
    "week": (DAY, 7, "%Y-%m-%d"),
    "month": (DAY, 30, "%Y-%m-%d"),
}


def traffic_chart(period, *, now=None):
    """The chart of /api/traffic/statistics?period=: labels and, per bucket, requests received from clients
    (inbound), requests passed on to their destination (outbound) and requests refused (blocked).

    Five-minute buckets come from the entries; hourly and daily ones from the hourly rollup.
    """
    step, count, label_format = TRAFFIC_PERIODS[period]
    starts = last_buckets(step, count, now=now)
    if step < HOUR:
        source = ProxyLogEntry.objects.filter(timestamp__gte=starts[0]).annotate(bucket=EpochBucket("timestamp", step))
        rows = source.values("bucket").annotate(total=Count("id"), blocked=Count("id", filter=_BLOCKED))
    else:
        source = ProxyLogHour.objects.filter(hour__gte=starts[0]).annotate(bucket=EpochBucket("hour", step))
        rows = source.values("bucket").annotate(total=Sum("total"), blocked=Sum("blocked"))
    filled = zero_fill(rows.order_by("bucket"), starts, key="bucket", fields=("total", "blocked"))
    return {
        "period": period,
        "labels": [start.astimezone(dt.UTC).strftime(label_format) for start in starts],
        "inbound": [row["total"] for row in filled],
        "outbound": [row["total"] - row["blocked"] for row in filled],
        "blocked": [row["blocked"] for row in filled],
    }


def top_clients(hours, *, masked, limit=10, now=None):
    """/api/clients/statistics: the busiest clients (or masked networks) by requests."""
    # client_network is masked already: an address's network, or a host name's keyed hash.
    keys = ["client_network"] if masked else ["client_ip", "client_host"]
    order = ", ".join(["n0 DESC", *(f"k{i} IS NULL, k{i}" for i in range(len(keys)))])
    rows = [dict(zip([*keys, "requests", "bytes", "blocked"], row, strict=True))
            for row in _summed(rollups.CLIENTS, hours, now, keys, ["requests", "bytes", "blocked"], order=order,
                               limit=limit)]
    # A client with entries in the window (open towards the future) made its latest request in it.
    seen = {}
    if masked:
        networks = [row["client_network"] for row in rows]
        seen = dict(_clients_seen(hours, now).filter(client_network__in=networks).values("client_network")
                    .annotate(at=Max("last_seen")).values_list("client_network", "at"))
    elif rows:
        which = Q(client_ip__in=[r["client_ip"] for r in rows if r["client_ip"] is not None])
        which |= Q(client_host__in=[r["client_host"] for r in rows if r["client_host"] is not None])
        seen = {_client(row, masked=False): row["last_seen"]
                for row in _clients_seen(hours, now).filter(which).values("client_ip", "client_host", "last_seen")}
    out = []
    for row in rows:
        client = row["client_network"] if masked else _client(row, masked=False)
        out.append({"client_ip": client, "requests": row["requests"], "bytes": row["bytes"],
                    "blocked": row["blocked"], "last_seen": _time(seen.get(client))})
    return out


def clients_statistics(hours, *, masked, limit=10, now=None):
    """/api/clients/statistics: the busiest clients, each also under the keys secure-proxy-manager's UI reads
    (ip_address, and status "Active": seen in the window)."""
    unique = _clients_seen(hours, now).count()
    clients = [{**row, "ip_address": row["client_ip"], "status": "Active"}
               for row in top_clients(hours, masked=masked, limit=limit, now=now)]
    return {"hours": hours, "total_clients": unique, "unique_clients": unique, "clients": clients}


def client_details(address, hours, *, masked, now=None):
    """/api/clients/<ip>/details: one client's totals, top destinations and newest requests in the window.

    The client is an address or a host name, as logged (or, for a masked caller, the host name's keyed hash
    that the clients listing showed it). In GDPR mode the client is its masked network (or the
    host name's keyed hash), as the clients listing shows it: the network's entries are summed and the address
    shown is the network.
    """
    if masked:
        key, value = "client_network", address if is_masked_host(address) else mask_client(address)
    else:
        key, value = ("client_ip" if _is_address(address) else "client_host"), address
    entries = _window(hours, now).filter(**{key: value})
    totals = entries.aggregate(total=Count("id"), blocked=Count("id", filter=_BLOCKED), first_seen=Min("timestamp"),
                               last_seen=Max("timestamp"))
    destinations = (entries.exclude(destination=None).values("destination")
                    .annotate(requests=Count("id"), blocked=Count("id", filter=_BLOCKED))
                    .order_by("-requests", "destination")[:10])
    recent = entries.order_by("-timestamp", "-id").values("timestamp", "method", "destination", "http_status",
                                                          "bytes")[:20]
    return {
        "ip_address": value,
        "hours": hours,
        "total_requests": totals["total"],
        "blocked": totals["blocked"],
        "first_seen": _time(totals["first_seen"]),
        "last_seen": _time(totals["last_seen"]),
        "top_domains": list(destinations),
        "recent": [{"timestamp": format_timestamp(row["timestamp"]), "method": row["method"],
                    "destination": row["destination"], "status": status_text(row["http_status"], row["method"]),
                    "http_status": row["http_status"], "bytes": row["bytes"]} for row in recent],
    }


def top_hosts(hours, *, limit=10, now=None):
    return _hosts(_summed(rollups.DESTINATIONS, hours, now, **_HOSTS, limit=limit), hours, now)


def _hosts(rows, hours, now):
    """top_hosts of the read _HOSTS."""
    # Each host's clients: those whose latest request to it is in the window.
    clients = dict(_host_clients_seen(hours, now).filter(destination_host__in=[row[0] for row in rows])
                   .values("destination_host").annotate(n=_distinct_clients()).values_list("destination_host", "n"))
    return [{"domain": host, "requests": requests, "bytes": size, "blocked": blocked, "clients": clients.get(host, 0)}
            for host, requests, size, blocked in rows]


def domains_statistics(hours, *, limit=10, now=None):
    """/api/domains/statistics: the most requested destination hosts; status "Blocked" when any request to the
    host was refused in the window, else "Allowed"."""
    domains = [{**row, "domain_name": row["domain"], "status": "Blocked" if row["blocked"] else "Allowed"}
               for row in top_hosts(hours, limit=limit, now=now)]
    hosts = _hosts_seen(hours, now).aggregate(n=Count("destination_host", distinct=True))["n"]
    return {"hours": hours, "unique_domains": hosts, "domains": domains}


def top_domains(hours, *, limit=50, now=None):
    """/api/analytics/top-domains: registrable domains (Public Suffix List) by requests, for the word cloud."""
    rows = _summed(rollups.DESTINATIONS, hours, now, ["domain"], ["requests", "bytes"],
                   where={"domain__isnull": False}, limit=limit)
    return [{"domain": domain, "count": n, "bytes": size} for domain, n, size in rows]


def user_agents(hours, *, limit=10, now=None):
    """/api/analytics/user-agents: User-Agent categories (when the log format carries them) and methods."""
    with_agent = {"user_agent__isnull": False}
    categories = [{"category": category, "count": n} for category, n in
                  _summed(rollups.AGENTS, hours, now, ["user_agent_category"], ["requests"], where=with_agent)]
    agents = _summed(rollups.AGENTS, hours, now, ["user_agent"], ["requests"], where=with_agent, limit=limit)
    methods = _summed(rollups.REQUESTS, hours, now, ["method"], ["requests"])
    return {
        "hours": hours,
        "requests": sum(n for _, n in methods),
        "requests_with_user_agent": sum(row["count"] for row in categories),
        "categories": categories,
        "top_user_agents": [{"user_agent": agent, "count": n} for agent, n in agents],
        "methods": [{"name": method, "method": method, "count": n} for method, n in methods],
        # secure-proxy-manager's "service types": here the User-Agent categories.
        "service_types": [{"name": row["category"], "count": row["count"]} for row in categories],
    }


def file_extensions(hours, *, limit=20, now=None):
    """/api/analytics/file-extensions: the top requested file types, and every file type's category
    (FILE_TYPE_CATEGORIES; "Other" for the rest), counted in the database."""
    rows = _summed(rollups.REQUESTS, hours, now, ["file_extension"], ["requests", "bytes", "blocked"],
                   where={"file_extension__isnull": False})
    category_of = {extension: name for name, extensions in reversed(FILE_TYPE_CATEGORIES.items())
                   for extension in extensions}
    categories = {}
    for extension, n, _, _ in rows:
        name = category_of.get(extension, "Other")
        categories[name] = categories.get(name, 0) + n
    return {
        "extensions": [{"ext": "." + extension, "extension": extension, "count": n, "bytes": size, "blocked": blocked}
                       for extension, n, size, blocked in rows[:limit]],
        "categories": [{"category": name, "count": n}
                       for name, n in sorted(categories.items(), key=lambda item: (-item[1], item[0]))],
    }


def shadow_it(hours, *, now=None):
    """/api/analytics/shadow-it: use of the catalogue's services (a host or any subdomain of it)."""
    services = {service.pk: service for service in ShadowItService.objects.filter(enabled=True)}
    if not any(service.domain_list for service in services.values()):
        return []
    # Each host of the window goes to the first service (in catalogue order) that names it or a parent of it.
    by_host, hosts = {}, {}
    for host, requests, size, blocked in _summed(rollups.DESTINATIONS, hours, now, ["destination_host"],
                                                 ["requests", "bytes", "blocked"],
                                                 where={"destination_host__isnull": False}):
        pk = next((service.pk for service in services.values() for name in service.domain_list
                   if host == name or host.endswith("." + name)), None)
        if pk is not None:
            hosts[host] = pk
            total = by_host.setdefault(pk, [0, 0, 0])
            total[0] += requests
            total[1] += size
            total[2] += blocked
    if not by_host:
        return []
    # Each service's clients and users: those whose latest request to one of its hosts is in the window.
    service = Case(*(When(destination_host__in=[host for host, pk in hosts.items() if pk == service_pk],
                          then=Value(service_pk)) for service_pk in by_host), output_field=IntegerField())
    seen = {row["service"]: row for row in _host_clients_seen(hours, now).filter(destination_host__in=list(hosts))
            .annotate(service=service).values("service")
            .annotate(clients=_distinct_clients(), users=Count("user", distinct=True), last_seen=Max("last_seen"))}
    rows = [{"service": pk, "requests": requests, "bytes": size, "blocked": blocked, "clients": seen[pk]["clients"],
             "users": seen[pk]["users"], "last_seen": seen[pk]["last_seen"]}
            for pk, (requests, size, blocked) in sorted(by_host.items(), key=lambda item: (-item[1][0], item[0]))]
    return [
        {"service": services[row["service"]].name, "name": services[row["service"]].name,
         "domain": services[row["service"]].domain_list[0], "category": services[row["service"]].category,
         "risk": services[row["service"]].risk, "requests": row["requests"], "bytes": row["bytes"] or 0,
         "blocked": row["blocked"], "clients": row["clients"], "users": row["users"],
         "last_seen": _time(row["last_seen"])}
        for row in rows if row["service"] is not None
    ]


def _entropy(counts):
    total = sum(counts)
    if not total:
        return 0.0
    return round(-sum(c / total * math.log2(c / total) for c in counts if c), 3)


def waf_detections(hours, *, now=None):
    rows = _summed(rollups.DESTINATIONS, hours, now, ["waf_category"], ["requests", "blocked"],
                   where={"waf_category__isnull": False}, order="k0")
    return {name: {"waf_category": name, "detected": detected, "blocked": blocked} for name, detected, blocked in rows}


def waf_stats(hours, *, now=None):
    """/api/waf/stats: rules, WAF-tagged requests and blocks per category, and how evenly they spread."""
    detections = waf_detections(hours, now=now)
    categories = {c.name: c for c in WafCategory.objects.all()}
    detected = sum(row["detected"] for row in detections.values())
    blocked = sum(row["blocked"] for row in detections.values())
    return {
        "hours": hours,
        "total_rules": len(categories),
        "enabled_rules": sum(1 for c in categories.values() if c.enabled),
        "detected_requests": detected,
        "blocked_requests": blocked,
        "allowed_detections": detected - blocked,
        "entropy": _entropy([row["detected"] for row in detections.values()]),
        "by_category": [
            {"category": name, "label": categories[name].label if name in categories else name,
             "detected": row["detected"], "blocked": row["blocked"]}
            for name, row in sorted(detections.items(), key=lambda item: (-item[1]["detected"], item[0]))
        ],
    }


def waf_categories(hours, *, now=None):
    """/api/waf/categories: the admin-managed categories, their toggle and their detections."""
    detections = waf_detections(hours, now=now)
    return [
        {"name": c.name, "label": c.label, "description": c.description, "enabled": c.enabled,
         "detected": detections.get(c.name, {}).get("detected", 0),
         "blocked": detections.get(c.name, {}).get("blocked", 0)}
        for c in WafCategory.objects.order_by("name")
    ]


def recent_blocks(*, masked, limit=5):
    """The newest refused requests; status is the log's text ("403 Forbidden"), http_status its number."""
    rows = (ProxyLogEntry.objects.filter(blocked=True).order_by("-timestamp", "-id")
            .values("timestamp", "client_ip", "client_host", "method", "destination", "http_status",
                    "result_code")[:limit])
    return [{"timestamp": format_timestamp(row["timestamp"]), "client_ip": _client(row, masked),
             "source_ip": _client(row, masked), "method": row["method"], "destination": row["destination"],
             "status": status_text(row["http_status"], row["method"]), "http_status": row["http_status"],
             "result_code": row["result_code"]} for row in rows]


def top_blocked_destinations(hours, *, limit=10, now=None):
    return _blocked_destinations(_summed(rollups.DESTINATIONS, hours, now, **_BLOCKED_DESTINATIONS, limit=limit))


def _blocked_destinations(rows):
    return [{"dest": destination, "count": n} for destination, n in rows]


def threat_categories(hours, *, now=None):
    """Refused requests by why they look like a threat: the WAF category that tagged them, "Direct IP" for a
    raw-address destination, else "Policy" (refused by the proxy's rules)."""
    return _threats(_summed(rollups.DESTINATIONS, hours, now, **_THREATS))


def _threats(rows):
    """threat_categories of the read _THREATS."""
    labels = dict(WafCategory.objects.values_list("name", "label"))
    counts = {}
    for category, is_ip, n in rows:
        if category:
            name = labels.get(category, category)
        else:
            name = "Direct IP" if is_ip else "Policy"
        counts[name] = counts.get(name, 0) + n
    return [{"category": name, "count": count} for name, count in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]


def dashboard_summary(hours, *, masked, now=None):
    """/api/dashboard/summary: what the dashboard shows, in one call, under secure-proxy-manager's keys (counters,
    top_blocked, top_clients, threat_categories, recent_blocks, waf) and ours (stats, window, timeline, ...)."""
    stats = log_stats()
    today = floor_time(now or timezone.now(), DAY)
    today_totals = ProxyLogHour.objects.filter(hour__gte=today).aggregate(total=Sum("total"), blocked=Sum("blocked"))
    profile = SecurityProfile.current()
    clients = top_clients(hours, masked=masked, limit=10, now=now)
    # window_totals, top_blocked_destinations, threat_categories and top_hosts: one read of the destinations.
    totals, blocked, threats, hosts = _summed_together(rollups.DESTINATIONS, hours, now, [
        _TOTALS, {**_BLOCKED_DESTINATIONS, "limit": 10}, _THREATS, {**_HOSTS, "limit": 5}])
    return {
        "total_requests": stats["total_count"],
        "blocked_requests": stats["blocked_count"],
        "today_requests": today_totals["total"] or 0,
        "today_blocked": today_totals["blocked"] or 0,
        "ip_blacklist_count": profile.ip_blacklist_count,
        "domain_blacklist_count": profile.domain_blacklist_count,
        "top_blocked": _blocked_destinations(blocked),
        "threat_categories": _threats(threats),
        # The URL-entropy figures of an inline WAF are not in access logs; URL-pattern detections are in
        # /api/waf/stats.
        "waf": None,
        "hours": hours,
        "stats": stats,
        "window": _totals(totals, hours, now),
        "timeline": timeline(hours, now=now),
        "top_clients": [{**row, "ip": row["client_ip"], "count": row["requests"]} for row in clients],
        "top_domains": _hosts(hosts, hours, now),
        "recent_blocks": recent_blocks(masked=masked, limit=10),
        "security_score": security_score(now=now)["score"],
    }


def audit_events():
    return AuditEvent.objects.order_by("-created_at", "-id")
