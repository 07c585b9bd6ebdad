"""Reads of the access-log side: listings, counters and aggregates, computed in the database.

Functions that return client addresses take `masked` (GDPR mode for this caller): addresses are then masked
and aggregates are grouped by the masked network (the stored client_network column), so two clients of one
/24 come out as one row rather than as two rows with the same masked address.
"""

import datetime as dt
import ipaddress
import math

from django.db.models import Case, CharField, Count, F, IntegerField, Max, Min, Q, Sum, Value, When, Window
from django.utils import timezone

from proxylogs.catalogue import FILE_TYPE_CATEGORIES
from proxylogs.ingest.parse import status_text
from proxylogs.models import (
    LogImport,
    ProxyLogEntry,
    ProxyLogHour,
    SecurityProfile,
    ShadowItService,
    WafCategory,
)
from proxylogs.security import security_score
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


def window_totals(hours, *, now=None):
    totals = _window(hours, now).aggregate(
        requests=Count("id"), blocked=Count("id", filter=_BLOCKED), bytes=Sum("bytes"),
        unique_clients=_distinct_clients(), unique_domains=Count("domain", distinct=True),
    )
    totals["bytes"] = totals["bytes"] or 0
    totals["allowed"] = totals["requests"] - totals["blocked"]
    return totals


def traffic_statistics(period="day", *, now=None):
    """/api/traffic/statistics: the period's chart (traffic_chart) and, over the same span, totals, breakdowns by
    status, method and result code, and bytes per hour."""
    step, count, _ = TRAFFIC_PERIODS[period]
    hours = max(1, step * count // HOUR)
    entries = _window(hours, now)

    def breakdown(field, limit=20):
        return list(entries.values(field).annotate(count=Count("id"), bytes=Sum("bytes"))
                    .order_by("-count", field)[:limit])

    starts = last_buckets(HOUR, hours, now=now)
    hourly = ProxyLogHour.objects.filter(hour__gte=starts[0]).values("hour", "total", "blocked", "bytes")
    totals = window_totals(hours, now=now)
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
    rows = (_window(hours, now).values(*keys)
            .annotate(requests=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=_BLOCKED),
                      last_seen=Max("timestamp"))
            .order_by("-requests", *(F(key).asc(nulls_last=True) for key in keys))[:limit])
    return [{"client_ip": row["client_network"] if masked else _client(row, masked=False),
             "requests": row["requests"], "bytes": row["bytes"] or 0, "blocked": row["blocked"],
             "last_seen": _time(row["last_seen"])} for row in rows]


def clients_statistics(hours, *, masked, limit=10, now=None):
    """/api/clients/statistics: the busiest clients, each also under the keys secure-proxy-manager's UI reads
    (ip_address, and status "Active": seen in the window)."""
    totals = _window(hours, now).aggregate(unique_clients=_distinct_clients())
    clients = [{**row, "ip_address": row["client_ip"], "status": "Active"}
               for row in top_clients(hours, masked=masked, limit=limit, now=now)]
    return {"hours": hours, "total_clients": totals["unique_clients"], "unique_clients": totals["unique_clients"],
            "clients": clients}


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
    rows = (_window(hours, now).exclude(destination_host=None).values("destination_host")
            .annotate(requests=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=_BLOCKED),
                      clients=_distinct_clients())
            .order_by("-requests", "destination_host")[:limit])
    return [{"domain": row["destination_host"], "requests": row["requests"], "bytes": row["bytes"] or 0,
             "blocked": row["blocked"], "clients": row["clients"]} for row in rows]


def domains_statistics(hours, *, limit=10, now=None):
    """/api/domains/statistics: the most requested destination hosts; status "Blocked" when any request to the
    host was refused in the window, else "Allowed"."""
    totals = _window(hours, now).aggregate(unique_hosts=Count("destination_host", distinct=True))
    domains = [{**row, "domain_name": row["domain"], "status": "Blocked" if row["blocked"] else "Allowed"}
               for row in top_hosts(hours, limit=limit, now=now)]
    return {"hours": hours, "unique_domains": totals["unique_hosts"], "domains": domains}


def top_domains(hours, *, limit=50, now=None):
    """/api/analytics/top-domains: registrable domains (Public Suffix List) by requests, for the word cloud."""
    rows = (_window(hours, now).exclude(domain=None).values("domain")
            .annotate(count=Count("id"), bytes=Sum("bytes")).order_by("-count", "domain")[:limit])
    return [{"domain": row["domain"], "count": row["count"], "bytes": row["bytes"] or 0} for row in rows]


def user_agents(hours, *, limit=10, now=None):
    """/api/analytics/user-agents: User-Agent categories (when the log format carries them) and methods."""
    entries = _window(hours, now)
    with_agent = entries.exclude(user_agent=None)
    categories = with_agent.values("user_agent_category").annotate(count=Count("id")).order_by("-count",
                                                                                              "user_agent_category")
    agents = with_agent.values("user_agent").annotate(count=Count("id")).order_by("-count", "user_agent")[:limit]
    methods = entries.values("method").annotate(count=Count("id")).order_by("-count", "method")
    counts = entries.aggregate(total=Count("id"), with_agent=Count("id", filter=~Q(user_agent=None)))
    return {
        "hours": hours,
        "requests": counts["total"],
        "requests_with_user_agent": counts["with_agent"],
        "categories": [{"category": row["user_agent_category"], "count": row["count"]} for row in categories],
        "top_user_agents": [{"user_agent": row["user_agent"], "count": row["count"]} for row in agents],
        "methods": [{"name": row["method"], "method": row["method"], "count": row["count"]} for row in methods],
        # secure-proxy-manager's "service types": here the User-Agent categories.
        "service_types": [{"name": row["user_agent_category"], "count": row["count"]} for row in categories],
    }


def file_extensions(hours, *, limit=20, now=None):
    """/api/analytics/file-extensions: the top requested file types, and every file type's category
    (FILE_TYPE_CATEGORIES; "Other" for the rest), counted in the database."""
    entries = _window(hours, now).exclude(file_extension=None)
    rows = (entries.values("file_extension")
            .annotate(count=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=_BLOCKED))
            .order_by("-count", "file_extension")[:limit])
    category = Case(*(When(file_extension__in=extensions, then=Value(name))
                      for name, extensions in FILE_TYPE_CATEGORIES.items()),
                    default=Value("Other"), output_field=CharField())
    categories = (entries.annotate(category=category).values("category").annotate(count=Count("id"))
                  .order_by("-count", "category"))
    return {
        "extensions": [{"ext": "." + row["file_extension"], "extension": row["file_extension"], "count": row["count"],
                        "bytes": row["bytes"] or 0, "blocked": row["blocked"]} for row in rows],
        "categories": [{"category": row["category"], "count": row["count"]} for row in categories],
    }


def shadow_it(hours, *, now=None):
    """/api/analytics/shadow-it: use of the catalogue's services (a host or any subdomain of it)."""
    services = {service.pk: service for service in ShadowItService.objects.filter(enabled=True)}
    whens, matches = [], Q()
    for service in services.values():
        for host in service.domain_list:
            match = Q(destination_host=host) | Q(destination_host__endswith="." + host)
            matches |= match
            whens.append(When(match, then=Value(service.pk)))
    if not whens:
        return []
    rows = (_window(hours, now).filter(matches)
            .annotate(service=Case(*whens, default=None, output_field=IntegerField()))
            .values("service")
            .annotate(requests=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=_BLOCKED),
                      clients=_distinct_clients(), users=Count("user", distinct=True),
                      last_seen=Max("timestamp"))
            .order_by("-requests", "service"))
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
    rows = (_window(hours, now).exclude(waf_category=None).values("waf_category")
            .annotate(detected=Count("id"), blocked=Count("id", filter=_BLOCKED)).order_by("waf_category"))
    return {row["waf_category"]: row for row in rows}


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
    rows = (_window(hours, now).filter(blocked=True).exclude(destination=None).values("destination")
            .annotate(count=Count("id")).order_by("-count", "destination")[:limit])
    return [{"dest": row["destination"], "count": row["count"]} for row in rows]


def threat_categories(hours, *, now=None):
    """Refused requests by why they look like a threat: the WAF category that tagged them, "Direct IP" for a
    raw-address destination, else "Policy" (refused by the proxy's rules)."""
    labels = dict(WafCategory.objects.values_list("name", "label"))
    rows = (_window(hours, now).filter(blocked=True).values("waf_category", "destination_is_ip")
            .annotate(count=Count("id")))
    counts = {}
    for row in rows:
        if row["waf_category"]:
            name = labels.get(row["waf_category"], row["waf_category"])
        else:
            name = "Direct IP" if row["destination_is_ip"] else "Policy"
        counts[name] = counts.get(name, 0) + row["count"]
    return [{"category": name, "count": count} for name, count in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]


def dashboard_summary(hours, *, masked, now=None):
    """/api/dashboard/summary: what the dashboard shows, in one call, under secure-proxy-manager's keys (counters,
    top_blocked, top_clients, threat_categories, recent_blocks, waf) and ours (stats, window, timeline, ...)."""
    stats = log_stats()
    today = floor_time(now or timezone.now(), DAY)
    today_totals = ProxyLogHour.objects.filter(hour__gte=today).aggregate(total=Sum("total"), blocked=Sum("blocked"))
    profile = SecurityProfile.current()
    clients = top_clients(hours, masked=masked, limit=10, now=now)
    return {
        "total_requests": stats["total_count"],
        "blocked_requests": stats["blocked_count"],
        "today_requests": today_totals["total"] or 0,
        "today_blocked": today_totals["blocked"] or 0,
        "ip_blacklist_count": profile.ip_blacklist_count,
        "domain_blacklist_count": profile.domain_blacklist_count,
        "top_blocked": top_blocked_destinations(hours, now=now),
        "threat_categories": threat_categories(hours, now=now),
        # The URL-entropy figures of an inline WAF are not in access logs; URL-pattern detections are in
        # /api/waf/stats.
        "waf": None,
        "hours": hours,
        "stats": stats,
        "window": window_totals(hours, now=now),
        "timeline": timeline(hours, now=now),
        "top_clients": [{**row, "ip": row["client_ip"], "count": row["requests"]} for row in clients],
        "top_domains": top_hosts(hours, limit=5, now=now),
        "recent_blocks": recent_blocks(masked=masked, limit=10),
        "security_score": security_score(now=now)["score"],
    }


def audit_events():
    return AuditEvent.objects.order_by("-created_at", "-id")
