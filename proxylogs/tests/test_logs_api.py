"""Every /api/logs... and analytics endpoint's numbers on the hand-built dataset of logs_dataset."""

import pytest
from django.db import connection

from proxylogs.models import ProxyLogEntry, SecurityProfile
from proxylogs.tests import logs_dataset
from vpnmonitor import partitions
from vpnmonitor.models import AuditEvent
from vpnmonitor.timeseries import format_timestamp

pytestmark = pytest.mark.django_db


@pytest.fixture
def base():
    return logs_dataset.build()


def data(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def test_logs_are_newest_first_with_total_and_spec_status_text(viewer_client, base):
    body = viewer_client.get("/api/logs?limit=3").json()
    assert (body["total"], body["limit"], body["offset"]) == (9, 3, 0)
    first = body["data"][0]
    assert first["timestamp"] == format_timestamp(base)
    # Newest first, ties broken by id descending: the last stored of the current hour comes first.
    assert [row["destination"] for row in body["data"]] == ["ads.example.net", "www.dropbox.com:443",
                                                            "www.example.com"]
    assert body["data"][0]["status"] == "403 Forbidden"
    assert body["data"][0]["result_code"] == "TCP_DENIED"
    assert body["data"][1]["status"] == "200 Connection established"
    assert body["data"][1]["user"] == "alice"


def test_logs_page_with_offset_and_sort_by_bytes_ascending(viewer_client, base):
    body = viewer_client.get("/api/logs?sort=bytes&order=asc&limit=2&offset=1").json()
    assert [row["bytes"] for row in body["data"]] == [200, 250]  # after the 100 of the 407
    assert body["total"] == 9


@pytest.mark.parametrize(("sort", "first"), [
    ("source_ip", "10.0.0.5"), ("destination", "198.51.100.4:8443"), ("status", 200), ("method", "CONNECT"),
    ("timestamp", 999),
])
def test_logs_sort_ascending_by_each_column(viewer_client, base, sort, first):
    row = viewer_client.get(f"/api/logs?sort={sort}&order=asc&limit=1").json()["data"][0]
    value = {"source_ip": row["client_ip"], "destination": row["destination"], "status": row["http_status"],
             "method": row["method"], "timestamp": row["bytes"]}[sort]
    assert value == first


@pytest.mark.parametrize(("query", "parameter"), [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("offset=-1", "offset"), ("limit=abc", "limit"),
    ("sort=client_ip", "sort"), ("order=up", "order"),
])
def test_bad_log_parameters_are_400_naming_the_parameter(viewer_client, query, parameter):
    response = viewer_client.get(f"/api/logs?{query}")
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert parameter in response.json()["message"]


def test_milliseconds_survive_storage(viewer_client, base):
    rows = viewer_client.get("/api/logs?limit=1").json()["data"]
    assert rows[0]["time"].endswith(".000Z")
    entry = ProxyLogEntry.objects.order_by("-timestamp", "-id").first()
    assert entry.timestamp == base


def test_stats_count_403_and_denied_but_not_407_and_raw_ip_blocks_with_connect(viewer_client, base):
    stats = data(viewer_client, "/api/logs/stats")
    assert stats["total_count"] == 9
    assert stats["blocked_count"] == 3  # C (403 GET), D (CONNECT to an IPv4), H (GET to an IPv6); not E (407)
    assert stats["ip_blocks_count"] == 2  # D and H
    assert stats["last_import"] is None  # hand-stored rows, no import ran


def test_timeline_is_hourly_and_zero_filled(viewer_client, base):
    points = data(viewer_client, "/api/logs/timeline?hours=6")
    assert [p["time"] for p in points][-1] == format_timestamp(base)
    assert [(p["total"], p["blocked"]) for p in points] == [(2, 1), (0, 0), (0, 0), (3, 1), (0, 0), (3, 1)]
    assert len(data(viewer_client, "/api/logs/timeline")) == 24
    assert len(data(viewer_client, "/api/logs/timeline?hours=720")) == 720


@pytest.mark.parametrize("hours", ["0", "721", "-3", "1.5", "x"])
def test_timeline_outside_its_range_is_400(viewer_client, hours):
    response = viewer_client.get(f"/api/logs/timeline?hours={hours}")
    assert response.status_code == 400
    assert "'hours'" in response.json()["message"]


def test_clear_old_follows_the_retention_policy_and_is_audited(operator_client, base):
    from vpnmonitor import retention

    retention.set_retention_days("proxy_logs", 60)
    assert operator_client.post("/api/logs/clear-old").json()["deleted"] == 0  # the oldest entry is 40 days old
    retention.set_retention_days("proxy_logs", 30)
    response = operator_client.post("/api/logs/clear-old")
    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": "Cleared old logs", "deleted": 1,
                               "retention_days": 30}
    assert data(operator_client, "/api/logs/stats")["total_count"] == 8
    event = AuditEvent.objects.filter(action="proxylogs.clear_old").first()
    assert event.user == "operator" and event.details == {"deleted": 1, "retention_days": 30}


def test_clear_deletes_everything_and_is_audited(operator_client, base):
    response = operator_client.post("/api/logs/clear")
    assert response.status_code == 200
    assert response.json()["message"] == "All logs cleared"
    assert response.json()["deleted"] == 9
    assert data(operator_client, "/api/logs/stats")["total_count"] == 0
    assert all(p["total"] == 0 for p in data(operator_client, "/api/logs/timeline?hours=6"))
    assert AuditEvent.objects.get(action="proxylogs.clear").details == {"deleted": 9}


@pytest.mark.parametrize("path", ["/api/logs/clear", "/api/logs/clear-old"])
def test_viewers_may_not_clear(viewer_client, base, path):
    response = viewer_client.post(path)
    assert response.status_code == 403
    assert response.json()["status"] == "error"
    assert ProxyLogEntry.objects.count() == 9
    assert not AuditEvent.objects.exists()


def test_anonymous_callers_are_refused(api_client):
    assert api_client.get("/api/logs").status_code == 401


def test_security_score_weighs_claimed_controls_and_lowers_contradicted_claims(viewer_client, base):
    assert data(viewer_client, "/api/security/score")["score"] == 0
    SecurityProfile(waf=True, direct_ip_blocking=True, https_inspection=True).save()
    score = data(viewer_client, "/api/security/score")
    # F (an allowed CONNECT to 198.51.100.4) contradicts direct-IP blocking; B and F are opaque tunnels and no
    # https:// request was logged, which contradicts HTTPS inspection. Only the WAF's 15 points remain.
    assert score["score"] == 15
    assert score["max_score"] == 100
    assert any("1 request(s) to raw IP addresses" in r and "198.51.100.4:8443" in r for r in score["recommendations"])
    assert any("HTTPS inspection is enabled, but 2" in r for r in score["recommendations"])
    assert sum(control["weight"] for control in score["controls"]) == 100


def test_security_score_is_100_when_every_claim_holds(viewer_client):
    SecurityProfile(**{field: True for field in (
        "ip_blacklist", "domain_blacklist", "direct_ip_blocking", "content_filtering", "waf", "https_inspection",
        "rate_limiting", "default_password_changed", "time_restrictions")}).save()
    score = data(viewer_client, "/api/security/score")
    assert (score["score"], score["recommendations"]) == (100, [])


def test_traffic_statistics_over_the_last_day(viewer_client, base):
    stats = data(viewer_client, "/api/traffic/statistics")
    assert (stats["requests"], stats["blocked_requests"], stats["allowed"], stats["bytes"]) == (8, 3, 5, 7950)
    assert stats["unique_clients"] == 5
    assert [(row["status"], row["count"]) for row in stats["by_status"]] == [(200, 3), (403, 3), (404, 1), (407, 1)]
    assert [(row["method"], row["count"]) for row in stats["by_method"]] == [("GET", 5), ("CONNECT", 3)]
    assert len(stats["hourly"]) == 24 and stats["hourly"][-1]["requests"] == 3


def test_clients_statistics_rank_clients_by_requests(viewer_client, base):
    stats = data(viewer_client, "/api/clients/statistics?limit=2")
    assert stats["unique_clients"] == stats["total_clients"] == 5
    assert stats["clients"][0] == {"client_ip": "10.0.0.5", "ip_address": "10.0.0.5", "requests": 3, "bytes": 1550,
                                   "blocked": 2, "last_seen": format_timestamp(base), "status": "Active"}
    assert (stats["clients"][1]["client_ip"], stats["clients"][1]["requests"]) == ("10.0.0.7", 2)


def test_domains_statistics_rank_destination_hosts(viewer_client, base):
    body = viewer_client.get("/api/domains/statistics").json()
    assert (body["status"], body["unique_domains"], body["hours"]) == ("success", 7, 168)
    rows = body["data"]
    assert rows[0] == {"domain_name": "www.example.com", "domain": "www.example.com", "requests": 2, "bytes": 1100,
                       "blocked": 0, "clients": 2, "status": "Allowed"}
    assert {"2001:db8::99", "203.0.113.9"} <= {row["domain"] for row in rows}


def test_top_domains_group_by_registrable_domain(viewer_client, base):
    rows = data(viewer_client, "/api/analytics/top-domains")
    assert rows[0] == {"domain": "example.com", "count": 2, "bytes": 1100}
    assert {"example.co.uk", "example.net", "dropbox.com"} <= {row["domain"] for row in rows}


def test_file_extensions(viewer_client, base):
    rows = data(viewer_client, "/api/analytics/file-extensions")["extensions"]
    assert sorted((row["extension"], row["count"]) for row in rows) == [("html", 1), ("js", 1), ("pdf", 1),
                                                                        ("zip", 1)]
    assert next(row for row in rows if row["extension"] == "js")["blocked"] == 1


def test_user_agents_without_agents_in_the_log_still_break_down_methods(viewer_client, base):
    agents = data(viewer_client, "/api/analytics/user-agents")
    assert (agents["requests"], agents["requests_with_user_agent"], agents["categories"]) == (8, 0, [])
    assert agents["methods"] == [{"name": "GET", "method": "GET", "count": 5},
                                 {"name": "CONNECT", "method": "CONNECT", "count": 3}]
    assert agents["service_types"] == []


def test_user_agents_are_categorised_from_combined_logs(viewer_client, tmp_path):
    from django.utils import timezone

    from proxylogs import services

    stamp = timezone.now().strftime("%d/%b/%Y:%H:%M:%S +0000")
    line = '{} - - [{}] "GET http://a.example/{} HTTP/1.1" 200 10 "-" "{}" TCP_MISS:HIER_DIRECT\n'
    log = tmp_path / "combined.log"
    log.write_text("".join(line.format(client, stamp, path, agent) for client, path, agent in [
        ("10.0.0.5", "", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
        ("10.0.0.5", "x", "curl/8.5.0"),
        ("10.0.0.6", "y", "curl/7.88.1"),
    ]))
    services.import_source(services.source_for_path(log, "combined"))
    agents = data(viewer_client, "/api/analytics/user-agents")
    assert agents["requests_with_user_agent"] == 3
    assert agents["categories"] == [{"category": "cli", "count": 2}, {"category": "browser", "count": 1}]
    assert agents["top_user_agents"][0]["count"] == 1


def test_shadow_it_finds_catalogue_services_and_the_catalogue_is_editable(viewer_client, base):
    from proxylogs.models import ShadowItService

    rows = data(viewer_client, "/api/analytics/shadow-it")
    assert [(row["service"], row["requests"], row["bytes"], row["users"], row["clients"]) for row in rows] == [
        ("Dropbox", 1, 5000, 1, 1)]
    ShadowItService.objects.create(name="Example ads", category="Advertising", domains="example.net\n")
    rows = data(viewer_client, "/api/analytics/shadow-it")
    assert {(row["service"], row["blocked"]) for row in rows} == {("Dropbox", 0), ("Example ads", 1)}
    ShadowItService.objects.filter(name="Dropbox").update(enabled=False)
    assert [row["service"] for row in data(viewer_client, "/api/analytics/shadow-it")] == ["Example ads"]


def test_waf_stats_and_categories_count_tagged_entries(viewer_client, base):
    from proxylogs.models import WafCategory

    stats = data(viewer_client, "/api/waf/stats")
    assert (stats["detected_requests"], stats["blocked_requests"], stats["entropy"]) == (1, 1, 0.0)
    assert stats["by_category"] == [{"category": "sql-injection", "label": "SQL injection", "detected": 1,
                                     "blocked": 1}]
    assert stats["total_rules"] == WafCategory.objects.count() == 5
    categories = {row["name"]: row for row in data(viewer_client, "/api/waf/categories")}
    assert categories["sql-injection"]["detected"] == 1 and categories["sql-injection"]["enabled"] is True
    assert categories["xss"]["detected"] == 0


def test_dashboard_summary_in_one_call(viewer_client, base):
    summary = data(viewer_client, "/api/dashboard/summary")
    assert summary["stats"]["blocked_count"] == 3
    assert summary["window"]["requests"] == 8
    assert summary["top_clients"][0]["client_ip"] == "10.0.0.5"
    assert summary["top_domains"][0]["domain"] == "www.example.com"
    assert summary["recent_blocks"][0]["destination"] == "ads.example.net"
    assert len(summary["timeline"]) == 24 and summary["timeline"][-1]["total"] == 3
    assert summary["security_score"] == 0


@pytest.mark.parametrize("path", [
    "/api/dashboard/summary", "/api/clients/statistics", "/api/domains/statistics",
    "/api/analytics/shadow-it", "/api/analytics/user-agents", "/api/analytics/file-extensions",
    "/api/analytics/top-domains", "/api/waf/stats", "/api/waf/categories",
])
def test_analytics_windows_are_validated(viewer_client, path):
    response = viewer_client.get(f"{path}?hours=0")
    assert response.status_code == 400
    assert response.json() == {"status": "error",
                               "message": "Invalid value for 'hours': must be between 1 and 720 (got '0')."}


def test_audit_log_pages_with_its_own_limits(operator_client):
    for _ in range(3):
        operator_client.post("/api/logs/clear")
    body = operator_client.get("/api/audit-log?limit=2").json()
    assert (body["total"], body["limit"]) == (3, 2)
    assert body["data"][0]["action"] == "proxylogs.clear"
    assert body["data"][0]["client_address"] == "127.0.0.1"
    assert operator_client.get("/api/audit-log").json()["limit"] == 50
    assert operator_client.get("/api/audit-log?limit=201").status_code == 400


def test_every_endpoint_is_in_the_openapi_schema(viewer_client):
    schema = viewer_client.get("/api/schema/?format=json").json()
    for path in ["/api/logs", "/api/logs/stats", "/api/logs/timeline", "/api/logs/clear", "/api/logs/clear-old",
                 "/api/security/score", "/api/dashboard/summary", "/api/traffic/statistics",
                 "/api/clients/statistics", "/api/domains/statistics", "/api/analytics/shadow-it",
                 "/api/analytics/user-agents", "/api/analytics/file-extensions", "/api/analytics/top-domains",
                 "/api/waf/stats", "/api/waf/categories", "/api/audit-log"]:
        assert path in schema["paths"], path
    parameters = {p["name"] for p in schema["paths"]["/api/logs"]["get"]["parameters"]}
    assert {"limit", "offset", "sort", "order"} <= parameters


def test_the_openapi_sort_states_which_sorts_have_an_index_and_what_the_others_cost(viewer_client):
    schema = viewer_client.get("/api/schema/?format=json").json()
    sort = next(p for p in schema["paths"]["/api/logs"]["get"]["parameters"] if p["name"] == "sort")
    assert sort["schema"]["enum"] == ["bytes", "destination", "method", "source_ip", "status", "timestamp"]
    assert "sort=timestamp and sort=source_ip, either order, read the first page from an index" in sort["description"]
    assert "Every other sort (destination, status, bytes, method) has no index" in sort["description"]
    assert "at 10M entries" in sort["description"]


def test_the_entries_table_has_exactly_the_indexes_the_sort_description_names():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, ProxyLogEntry._meta.db_table)
    indexed = sorted(tuple(c["columns"]) for c in constraints.values() if c["index"] and not c["primary_key"])
    if connection.vendor == "postgresql":
        # The client index is each day's partition's once the day is over (vpnmonitor.partitions.index_closed).
        assert indexed == [("timestamp", "id")]
        assert [index.columns for index in partitions.declared(ProxyLogEntry).closed_indexes] == [("client_ip", "id")]
    else:
        assert indexed == [("client_ip", "id"), ("timestamp", "id")]
