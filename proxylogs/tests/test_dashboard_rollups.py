"""The summaries read from proxylogs.dashboard_rollups return what the same aggregates over the entries return:
on mixed entries (addresses and host names, users, empty hosts, raw-address destinations, WAF categories, file
types, User-Agents, entries stamped ahead of now), for windows whose start falls anywhere in an hour, after
every write and delete the service makes, on SQLite and PostgreSQL.

The reference functions below scan the entries, as the selectors did before the rollups.
"""

import datetime as dt
import importlib
import random
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Case, CharField, Count, IntegerField, Max, Q, Sum, Value, When

from proxylogs import dashboard_rollups, selectors, services
from proxylogs.catalogue import FILE_TYPE_CATEGORIES
from proxylogs.ingest.domains import file_extension
from proxylogs.models import (
    ProxyLogAgentHour,
    ProxyLogClientHour,
    ProxyLogClientSeen,
    ProxyLogDestinationHour,
    ProxyLogEntry,
    ProxyLogHostClientSeen,
    ProxyLogHostSeen,
    ProxyLogRequestDay,
    ProxyLogRequestHour,
    ShadowItService,
    WafCategory,
)
from vpnmonitor import retention
from vpnmonitor import rollups as core
from vpnmonitor.privacy import mask_host, mask_ip

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 4, 13, 37, 12, 500_000, tzinfo=UTC)
CLIENTS = ["10.0.0.5", "10.0.0.6", "10.0.1.9", "2001:db8::7", "ws-1.corp.example", "printer"]
HOSTS = [("www.dropbox.com", "dropbox.com", False), ("dl.dropboxusercontent.com", "dropboxusercontent.com", False),
         ("pastebin.com", "pastebin.com", False), ("a.example", "a.example", False),
         ("b.example", "b.example", False), ("203.0.113.9", None, True), (None, None, False)]
AGENTS = [None, "", "Mozilla/5.0 (Windows NT 10.0) Firefox/121.0", "curl/8.5.0", "x" * 1200]
URLS = ["/", "/app.js", "/report.pdf", "/photo.jpg", "/setup.exe", "/data.json"]
WINDOWS = [1, 2, 5, 24, 72]


def entry(pick, moment):
    client = pick.choice(CLIENTS)
    by_name = not client[0].isdigit()
    host, domain, is_ip = pick.choice(HOSTS)
    method = pick.choice(["CONNECT", "GET", "GET", "POST"])
    url = f"{host}:443" if method == "CONNECT" else f"http://{host}{pick.choice(URLS)}"
    blocked = pick.random() < 0.25
    agent = pick.choice(AGENTS)
    values = {
        "timestamp": moment, "elapsed_ms": 5, "client_ip": None if by_name else client,
        "client_host": client if by_name else None, "client_network": mask_host(client) if by_name else mask_ip(client),
        "user": pick.choice([None, None, "alice", "bob"]), "method": method, "url": url,
        "destination": None if host is None else (f"{host}:443" if method == "CONNECT" else host),
        "destination_host": host, "destination_port": 443, "destination_is_ip": is_ip, "domain": domain,
        "file_extension": None if method == "CONNECT" else file_extension(url),
        "http_status": 403 if blocked else pick.choice([200, 304, 404]),
        "result_code": "TCP_DENIED" if blocked else pick.choice(["TCP_MISS", "TCP_HIT", "TCP_TUNNEL"]),
        "bytes": pick.randrange(0, 5000), "hierarchy": "HIER_DIRECT", "peer": None, "mime_type": None,
        "user_agent": agent, "user_agent_category": None if not agent else pick.choice(["browser", "cli"]),
        "referer": None, "blocked": blocked,
        "waf_category": pick.choice([None, None, None, "xss", "sql-injection"]), "source_id": None,
    }
    return tuple(values[column] for column in services.COLUMNS)


def entries(count, seed=3):
    """Entries over the 80 hours before NOW and 2 hours after it, some on the hour and some at each window's start."""
    pick = random.Random(seed)
    moments = [NOW - dt.timedelta(seconds=pick.randrange(-7200, 80 * 3600), microseconds=pick.randrange(10**6))
               for _ in range(count)]
    moments += [NOW - dt.timedelta(hours=hours) for hours in WINDOWS]
    moments += [core.floor_time(NOW, core.HOUR) - dt.timedelta(hours=n) for n in range(0, 80, 7)]
    return [entry(pick, moment) for moment in moments]


def store(rows, size=97):
    for first in range(0, len(rows), size):
        services.store_rows(rows[first:first + size])


# The entries' aggregates, as the selectors computed them before the rollups.

def window(hours, now=NOW):
    return ProxyLogEntry.objects.filter(timestamp__gte=now - dt.timedelta(hours=hours))


def distinct_clients():
    return Count("client_ip", distinct=True) + Count("client_host", distinct=True)


def raw_window_totals(hours, now=NOW):
    totals = window(hours, now).aggregate(
        requests=Count("id"), blocked=Count("id", filter=Q(blocked=True)), bytes=Sum("bytes"),
        unique_clients=distinct_clients(), unique_domains=Count("domain", distinct=True))
    totals["bytes"] = totals["bytes"] or 0
    totals["allowed"] = totals["requests"] - totals["blocked"]
    return totals


def raw_breakdown(hours, field, limit=20, now=NOW):
    return list(window(hours, now).values(field).annotate(count=Count("id"), bytes=Sum("bytes"))
                .order_by("-count", field)[:limit])


def raw_top_clients(hours, masked, limit, now=NOW):
    from django.db.models import F

    keys = ["client_network"] if masked else ["client_ip", "client_host"]
    rows = (window(hours, now).values(*keys)
            .annotate(requests=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=Q(blocked=True)),
                      last_seen=Max("timestamp"))
            .order_by("-requests", *(F(key).asc(nulls_last=True) for key in keys))[:limit])
    return [{"client_ip": row["client_network"] if masked else (row["client_ip"] or row["client_host"]),
             "requests": row["requests"], "bytes": row["bytes"] or 0, "blocked": row["blocked"],
             "last_seen": selectors._time(row["last_seen"])} for row in rows]


def raw_top_hosts(hours, limit, now=NOW):
    rows = (window(hours, now).exclude(destination_host=None).values("destination_host")
            .annotate(requests=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=Q(blocked=True)),
                      clients=distinct_clients())
            .order_by("-requests", "destination_host")[:limit])
    return [{"domain": row["destination_host"], "requests": row["requests"], "bytes": row["bytes"] or 0,
             "blocked": row["blocked"], "clients": row["clients"]} for row in rows]


def raw_top_domains(hours, limit, now=NOW):
    rows = (window(hours, now).exclude(domain=None).values("domain")
            .annotate(count=Count("id"), bytes=Sum("bytes")).order_by("-count", "domain")[:limit])
    return [{"domain": row["domain"], "count": row["count"], "bytes": row["bytes"] or 0} for row in rows]


def raw_user_agents(hours, limit, now=NOW):
    entries = window(hours, now)
    with_agent = entries.exclude(user_agent=None)
    categories = with_agent.values("user_agent_category").annotate(count=Count("id")).order_by(
        "-count", "user_agent_category")
    agents = with_agent.values("user_agent").annotate(count=Count("id")).order_by("-count", "user_agent")[:limit]
    methods = entries.values("method").annotate(count=Count("id")).order_by("-count", "method")
    counts = entries.aggregate(total=Count("id"), with_agent=Count("id", filter=~Q(user_agent=None)))
    return {
        "hours": hours, "requests": counts["total"], "requests_with_user_agent": counts["with_agent"],
        "categories": [{"category": row["user_agent_category"], "count": row["count"]} for row in categories],
        # The rollup keys an agent by its first AGENT_LENGTH characters.
        "top_user_agents": [{"user_agent": row["user_agent"][:dashboard_rollups.AGENT_LENGTH], "count": row["count"]}
                            for row in agents],
        "methods": [{"name": row["method"], "method": row["method"], "count": row["count"]} for row in methods],
        "service_types": [{"name": row["user_agent_category"], "count": row["count"]} for row in categories],
    }


def raw_file_extensions(hours, limit, now=NOW):
    entries = window(hours, now).exclude(file_extension=None)
    rows = (entries.values("file_extension")
            .annotate(count=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=Q(blocked=True)))
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


def raw_shadow_it(hours, now=NOW):
    services_ = {service.pk: service for service in ShadowItService.objects.filter(enabled=True)}
    whens, matches = [], Q()
    for service in services_.values():
        for host in service.domain_list:
            match = Q(destination_host=host) | Q(destination_host__endswith="." + host)
            matches |= match
            whens.append(When(match, then=Value(service.pk)))
    if not whens:  # an empty catalogue (a transactional test flushed it): no service is used, as the selector says
        return []
    rows = (window(hours, now).filter(matches)
            .annotate(service=Case(*whens, default=None, output_field=IntegerField())).values("service")
            .annotate(requests=Count("id"), bytes=Sum("bytes"), blocked=Count("id", filter=Q(blocked=True)),
                      clients=distinct_clients(), users=Count("user", distinct=True), last_seen=Max("timestamp"))
            .order_by("-requests", "service"))
    return [(services_[row["service"]].name, row["requests"], row["bytes"] or 0, row["blocked"], row["clients"],
             row["users"], selectors._time(row["last_seen"])) for row in rows]


def raw_waf(hours, now=NOW):
    rows = (window(hours, now).exclude(waf_category=None).values("waf_category")
            .annotate(detected=Count("id"), blocked=Count("id", filter=Q(blocked=True))).order_by("waf_category"))
    return {row["waf_category"]: row for row in rows}


def raw_threats(hours, now=NOW):
    labels = dict(WafCategory.objects.values_list("name", "label"))
    counts = {}
    for row in (window(hours, now).filter(blocked=True).values("waf_category", "destination_is_ip")
                .annotate(count=Count("id"))):
        if row["waf_category"]:
            name = labels.get(row["waf_category"], row["waf_category"])
        else:
            name = "Direct IP" if row["destination_is_ip"] else "Policy"
        counts[name] = counts.get(name, 0) + row["count"]
    return [{"category": name, "count": count} for name, count in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]


def raw_blocked_destinations(hours, limit, now=NOW):
    rows = (window(hours, now).filter(blocked=True).exclude(destination=None).values("destination")
            .annotate(count=Count("id")).order_by("-count", "destination")[:limit])
    return [{"dest": row["destination"], "count": row["count"]} for row in rows]


def assert_selectors_match_the_entries():
    # At NOW a window's partial first hour is read from the entries; 25 minutes earlier, as that hour's rollup
    # rows less the entries of its first 12 minutes. Entries after the earlier now are ahead of it.
    # And 200 hours: longer than a week, the selectors sum each part's rollup rows per key first.
    for now, hours in [(now, hours) for now in (NOW, NOW - dt.timedelta(minutes=25)) for hours in [*WINDOWS, 200]]:
        assert selectors.window_totals(hours, now=now) == raw_window_totals(hours, now=now)
        traffic = selectors.traffic_statistics("day", now=now)
        assert [(r["status"], r["count"], r["bytes"]) for r in traffic["by_status"]] == [
            (r["http_status"], r["count"], r["bytes"]) for r in raw_breakdown(24, now=now, field="http_status")]
        assert [(r["result_code"], r["count"]) for r in traffic["by_result_code"]] == [
            (r["result_code"], r["count"]) for r in raw_breakdown(24, now=now, field="result_code")]
        for masked in (False, True):
            assert (selectors.top_clients(hours, masked=masked, limit=4, now=now)
                    == raw_top_clients(hours, masked, 4, now=now))
        clients = selectors.clients_statistics(hours, masked=False, now=now)
        assert clients["unique_clients"] == raw_window_totals(hours, now=now)["unique_clients"]
        assert selectors.top_hosts(hours, limit=5, now=now) == raw_top_hosts(hours, 5, now=now)
        assert selectors.domains_statistics(hours, now=now)["unique_domains"] == (
            window(hours, now).aggregate(n=Count("destination_host", distinct=True))["n"])
        assert selectors.top_domains(hours, limit=3, now=now) == raw_top_domains(hours, 3, now=now)
        assert selectors.user_agents(hours, limit=3, now=now) == raw_user_agents(hours, 3, now=now)
        assert selectors.file_extensions(hours, limit=4, now=now) == raw_file_extensions(hours, 4, now=now)
        assert [(r["name"], r["requests"], r["bytes"], r["blocked"], r["clients"], r["users"], r["last_seen"])
                for r in selectors.shadow_it(hours, now=now)] == raw_shadow_it(hours, now=now)
        assert selectors.waf_detections(hours, now=now) == raw_waf(hours, now=now)
        assert selectors.threat_categories(hours, now=now) == raw_threats(hours, now=now)
        assert (selectors.top_blocked_destinations(hours, limit=3, now=now)
                == raw_blocked_destinations(hours, 3, now=now))
        # The summary reads the destinations once for its totals, refused destinations, threats and hosts.
        summary = selectors.dashboard_summary(hours, masked=False, now=now)
        assert summary["window"] == raw_window_totals(hours, now=now)
        assert summary["top_blocked"] == raw_blocked_destinations(hours, 10, now=now)
        assert summary["threat_categories"] == raw_threats(hours, now=now)
        assert summary["top_domains"] == raw_top_hosts(hours, 5, now=now)
        assert summary["top_clients"] == [{**row, "ip": row["client_ip"], "count": row["requests"]}
                                          for row in raw_top_clients(hours, False, 10, now=now)]
    for now, (period, hours) in [(now, period) for now in (NOW, NOW - dt.timedelta(minutes=25))
                                 for period in (("day", 24), ("week", 168), ("month", 720))]:
        # The totals come from the requests rollup (hourly, or whole days), as window_totals gives them.
        traffic = selectors.traffic_statistics(period, now=now)
        totals = raw_window_totals(hours, now=now)
        assert (traffic["requests"], traffic["blocked_requests"], traffic["allowed"], traffic["bytes"],
                traffic["unique_clients"], traffic["unique_domains"]) == (
            totals["requests"], totals["blocked"], totals["allowed"], totals["bytes"], totals["unique_clients"],
            totals["unique_domains"])
        assert [(r["method"], r["count"], r["bytes"]) for r in traffic["by_method"]] == [
            (r["method"], r["count"], r["bytes"] or 0) for r in raw_breakdown(hours, now=now, field="method")]
        assert [(r["status"], r["count"], r["bytes"]) for r in traffic["by_status"]] == [
            (r["http_status"], r["count"], r["bytes"] or 0) for r in raw_breakdown(hours, now=now, field="http_status")]


def rollup_tables():
    return {model.__name__: sorted(model.objects.values_list(*[f.attname for f in model._meta.fields
                                                                 if f.attname != "id"]), key=repr)
            for model in (ProxyLogClientHour, ProxyLogDestinationHour, ProxyLogRequestHour, ProxyLogAgentHour,
                          ProxyLogRequestDay, ProxyLogClientSeen, ProxyLogHostSeen, ProxyLogHostClientSeen)}


def test_summaries_from_the_rollups_equal_the_entries_aggregates():
    store(entries(700))
    assert ProxyLogEntry.objects.count() == 700 + len(WINDOWS) + 12
    # Something to find in every summary.
    assert window(5).filter(user="alice", destination_host__endswith="dropbox.com").exists()
    assert window(5).exclude(waf_category=None).filter(blocked=True).exists()
    assert_selectors_match_the_entries()


def test_a_batch_counted_in_python_equals_the_rollups_counted_in_sql():
    rows = entries(400, seed=8)
    store(rows)
    stored = rollup_tables()
    counted = dashboard_rollups.count_batch(rows, services.COLUMNS)
    raw = ProxyLogEntry.objects.all()
    for rollup in dashboard_rollups.ROLLUPS:
        assert counted[rollup] == core.counts_in(rollup, raw)
    dashboard_rollups.rebuild()
    assert rollup_tables() == stored


def test_the_daily_upserts_sum_the_hourly_upserts_parameters_into_days():
    # The import's path: the hourly counts encoded once; each daily upsert sums them into days (in SQL on
    # PostgreSQL, over 4 days here) and equals the daily counts made in Python and a rebuild from the entries.
    from django.db import transaction

    rows = entries(500, seed=9)
    counts = services.count_rows(rows, daily=False)
    assert not set(dashboard_rollups.DAILY.values()) & set(counts)
    with transaction.atomic():
        services.store_rows(rows, {})
        core.apply(dashboard_rollups.prepare(counts), growing=True)
    in_python = dashboard_rollups.count_batch(rows, services.COLUMNS)
    for hourly, daily in dashboard_rollups.DAILY.items():
        assert len({key[0] for key in in_python[daily]}) == 4
        stored_days = {tuple(row[:len(daily.key)]): tuple(row[len(daily.key):]) for row in
                       daily.rollup_model.objects.values_list(*daily.key, *(m.name for m in daily.measures))}
        assert stored_days == in_python[daily] == core.coarsen(hourly, daily, counts[hourly])
        assert core.counts_in(daily, ProxyLogEntry.objects.all()) == in_python[daily]
    stored = rollup_tables()
    dashboard_rollups.rebuild()
    assert rollup_tables() == stored
    with pytest.raises(ValueError, match="not a coarser step"):
        core.prepare_coarser(dashboard_rollups.CLIENTS, dashboard_rollups.DESTINATIONS_DAILY, core.Counter())


def test_the_counts_of_chunks_merged_in_any_order_equal_the_counts_of_the_whole():
    # The import merges each chunk's counts into its batch's; chunks come in time order (a latest time then
    # replaces the one before it as it is), but a log's lines need not.
    rows = sorted(entries(600, seed=12), key=lambda row: row[0])
    whole = services.count_rows(rows, daily=False)
    chunks = [rows[first:first + 150] for first in range(0, len(rows), 150)]
    for parts in (chunks, chunks[::-1], chunks[1::2] + chunks[::2]):
        merged = {}
        for part in parts:
            services._merged(merged, services.count_rows(part, daily=False))
        assert merged == whole
    assert len(whole[dashboard_rollups.HOST_CLIENTS_SEEN]) > 100


def test_retention_and_clearing_keep_the_rollups_exact():
    store(entries(600, seed=11))
    retention.delete_before(ProxyLogEntry, "timestamp", NOW - dt.timedelta(hours=30), batch_size=150,
                            delete=services.delete_entries)
    assert not ProxyLogEntry.objects.filter(timestamp__lt=NOW - dt.timedelta(hours=30)).exists()
    assert not ProxyLogClientSeen.objects.filter(last_seen__lt=NOW - dt.timedelta(hours=30)).exists()
    assert_selectors_match_the_entries()
    after_prune = rollup_tables()
    dashboard_rollups.rebuild()
    assert rollup_tables() == after_prune
    services.clear_logs()
    assert all(rows == [] for rows in rollup_tables().values())
    assert selectors.window_totals(24, now=NOW) == raw_window_totals(24)


def test_the_daily_requests_rollup_is_filled_from_the_hourly_one():
    # Migration 0019 fills the daily rollup of an existing database from the hourly rows, not from the entries.
    store(entries(300, seed=5))
    counted = rollup_tables()["ProxyLogRequestDay"]
    assert len(counted) > 20
    ProxyLogRequestDay.objects.all().delete()
    migration = importlib.import_module("proxylogs.migrations.0019_fill_request_day_rollup")
    migration.fill(apps, SimpleNamespace(connection=connection))
    assert rollup_tables()["ProxyLogRequestDay"] == counted
