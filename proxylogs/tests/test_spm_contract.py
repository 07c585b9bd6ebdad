"""secure-proxy-manager's web UI reads these endpoints: every field its pages read, with its JSON type.

The shapes are those of the UI's own types (ui/src/types.ts) and of its backend's handlers: numbers are JSON
integers, statuses are text the UI searches with `status.includes('403')`, audit details are text it lowercases
with `(details ?? '').toLowerCase()`. The data comes in through the Squid log import, as in production.
"""

import datetime as dt
from pathlib import Path

import pytest
import time_machine

from proxylogs import services
from proxylogs.models import SecurityProfile
from proxylogs.tests import logs_dataset

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures"

BASE = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
NOW = BASE + dt.timedelta(minutes=30)

# (seconds after BASE, client, code/status, bytes, method, url, user, hierarchy, mime)
NATIVE = [
    (60, "10.1.0.5", "TCP_MISS/200", 2000, "GET", "http://www.example.com/report.pdf", "-",
     "HIER_DIRECT/93.184.216.34", "application/pdf"),
    (120, "10.1.0.5", "TCP_TUNNEL/200", 5000, "CONNECT", "www.dropbox.com:443", "alice", "HIER_DIRECT/162.125.1.1", "-"),
    (180, "10.1.0.6", "TCP_DENIED/403", 300, "GET", "http://ads.example.net/tracker.js", "-", "HIER_NONE/-",
     "text/html"),
    (240, "10.1.0.6", "TCP_DENIED/403", 250, "GET", "http://shop.example.org/item?id=1%27%20union%20select%201", "-",
     "HIER_NONE/-", "text/html"),
    (300, "10.1.0.7", "TCP_DENIED/403", 200, "CONNECT", "203.0.113.9:443", "-", "HIER_NONE/-", "text/html"),
    (360, "10.1.0.7", "TCP_MISS/200", 9000, "GET", "http://dl.example.com/setup.exe", "-", "HIER_DIRECT/192.0.2.7",
     "application/octet-stream"),
    (420, "10.1.0.5", "TCP_DENIED/407", 100, "GET", "http://www.example.com/private.zip", "-", "HIER_NONE/-",
     "text/html"),
    (-86400, "10.1.0.8", "TCP_DENIED/403", 100, "GET", "http://ads.example.net/old.js", "-", "HIER_NONE/-",
     "text/html"),
]
COMBINED = [
    (600, "10.1.0.9", "http://news.example.com/", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 "
                                                  "Firefox/133.0"),
    (610, "10.1.0.9", "http://api.example.com/data.json", "curl/8.5.0"),
]
CLIENTS = ["10.1.0.5", "10.1.0.6", "10.1.0.7", "10.1.0.8", "10.1.0.9"]


def write_and_import(tmp_path):
    native = tmp_path / "access.log"
    native.write_text("".join(
        logs_dataset.native_line(BASE + dt.timedelta(seconds=offset), *rest) + "\n" for offset, *rest in NATIVE))
    combined = tmp_path / "combined.log"
    line = '{} - - [{:%d/%b/%Y:%H:%M:%S +0000}] "GET {} HTTP/1.1" 200 10 "-" "{}" TCP_MISS:HIER_DIRECT\n'
    combined.write_text("".join(line.format(client, BASE + dt.timedelta(seconds=offset), url, agent)
                                for offset, client, url, agent in COMBINED))
    for path, fmt in ((native, "squid"), (combined, "combined")):
        result = services.import_source(services.source_for_path(path, fmt))
        assert result.rejected == 0


@pytest.fixture
def imported(tmp_path):
    SecurityProfile(ip_blacklist=True, ip_blacklist_count=12, domain_blacklist=True, domain_blacklist_count=3400).save()
    with time_machine.travel(NOW, tick=False):
        write_and_import(tmp_path)
        yield


def data(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def check(value, shape, where="data"):
    """value has every key of shape with its JSON type; lists must hold at least one item, each checked."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), where
        for key, inner in shape.items():
            assert key in value, f"{where}.{key} missing"
            check(value[key], inner, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where} is not a non-empty list"
        for index, item in enumerate(value):
            check(item, shape[0], f"{where}[{index}]")
    elif shape is int:
        assert type(value) is int, f"{where} is {value!r}, not an integer"
    else:
        assert isinstance(value, shape), f"{where} is {value!r}, not {shape.__name__}"


COUNT = {"count": int}
DASHBOARD = {
    "total_requests": int, "blocked_requests": int, "today_requests": int, "today_blocked": int,
    "ip_blacklist_count": int, "domain_blacklist_count": int,
    "top_blocked": [{"dest": str, **COUNT}], "top_clients": [{"ip": str, **COUNT}],
    "threat_categories": [{"category": str, **COUNT}],
    "recent_blocks": [{"timestamp": str, "source_ip": str, "method": str, "destination": str, "status": str}],
}


def test_it_serves_the_dashboard_summary_the_dashboard_and_threat_intel_pages_read(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        summary = data(viewer_client, "/api/dashboard/summary")
    check(summary, DASHBOARD)
    assert "waf" in summary and summary["waf"] is None  # the pages hide their WAF cards
    assert (summary["total_requests"], summary["blocked_requests"]) == (10, 4)
    assert (summary["today_requests"], summary["today_blocked"]) == (9, 3)
    assert (summary["ip_blacklist_count"], summary["domain_blacklist_count"]) == (12, 3400)
    assert summary["top_blocked"] == [{"dest": "203.0.113.9:443", "count": 1}, {"dest": "ads.example.net", "count": 1},
                                      {"dest": "shop.example.org", "count": 1}]
    assert [(row["ip"], row["count"]) for row in summary["top_clients"]] == [
        ("10.1.0.5", 3), ("10.1.0.6", 2), ("10.1.0.7", 2), ("10.1.0.9", 2)]
    assert summary["threat_categories"] == [{"category": "Direct IP", "count": 1}, {"category": "Policy", "count": 1},
                                            {"category": "SQL injection", "count": 1}]
    newest = summary["recent_blocks"][0]
    assert newest == {**newest, "timestamp": "2026-11-25 12:05:00", "source_ip": "10.1.0.7", "method": "CONNECT",
                      "destination": "203.0.113.9:443", "status": "403 Forbidden"}
    # The pages' own test: a 403 shows as "WAF", anything else as "DENY".
    assert [isinstance(block["status"], str) and "403" in block["status"] for block in summary["recent_blocks"]] == [
        True] * 4
    assert len(summary["recent_blocks"]) == 4


def test_it_turns_real_squid_output_into_text_statuses_in_recent_blocks(viewer_client, tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes((FIXTURES / "squid57_harness_squid.log").read_bytes())
    last = dt.datetime.fromtimestamp(1795401764.487, dt.UTC)
    with time_machine.travel(last + dt.timedelta(minutes=1), tick=False):
        services.import_source(services.source_for_path(log, "squid"))
        summary = data(viewer_client, "/api/dashboard/summary")
    assert [(row["destination"], row["status"]) for row in summary["recent_blocks"]] == [
        ("192.0.2.10:443", "403 Forbidden"), ("127.0.0.1:22", "403 Forbidden"),
        ("www.blocked.example", "403 Forbidden")]
    assert summary["threat_categories"] == [{"category": "Direct IP", "count": 2}, {"category": "Policy", "count": 1}]


def test_it_serves_client_statistics_with_ip_address_as_the_clients_page_reads_them(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        stats = data(viewer_client, "/api/clients/statistics")
    check(stats, {"total_clients": int, "clients": [{"ip_address": str, "requests": int, "blocked": int,
                                                      "last_seen": str, "status": str}]})
    assert stats["total_clients"] == 5  # seen in the last 7 days, as the page says
    assert [(row["ip_address"], row["requests"], row["blocked"]) for row in stats["clients"]] == [
        ("10.1.0.5", 3, 0), ("10.1.0.6", 2, 2), ("10.1.0.7", 2, 1), ("10.1.0.9", 2, 0), ("10.1.0.8", 1, 1)]
    assert stats["clients"][0]["last_seen"] == "2026-11-25 12:07:00"
    assert {row["status"] for row in stats["clients"]} == {"Active"}


def test_it_serves_one_clients_details_for_the_clients_page_panel(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        details = data(viewer_client, "/api/clients/10.1.0.6/details")
    check(details, {"ip_address": str, "total_requests": int, "blocked": int, "first_seen": str, "last_seen": str,
                    "top_domains": [{"destination": str, "requests": int, "blocked": int}],
                    "recent": [{"timestamp": str, "method": str, "destination": str, "status": str, "bytes": int}]})
    assert (details["ip_address"], details["total_requests"], details["blocked"]) == ("10.1.0.6", 2, 2)
    assert (details["first_seen"], details["last_seen"]) == ("2026-11-25 12:03:00", "2026-11-25 12:04:00")
    assert details["top_domains"] == [{"destination": "ads.example.net", "requests": 1, "blocked": 1},
                                      {"destination": "shop.example.org", "requests": 1, "blocked": 1}]
    # The panel marks a request blocked when /DENIED|403|BLOCKED/ matches its status.
    assert [(row["destination"], row["status"], row["bytes"]) for row in details["recent"]] == [
        ("shop.example.org", "403 Forbidden", 250), ("ads.example.net", "403 Forbidden", 300)]


def test_a_client_that_is_neither_an_address_nor_a_host_name_is_a_400(viewer_client):
    response = viewer_client.get("/api/clients/not%20a%20host/details")
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "Invalid value for 'ip': must be an IPv4 or IPv6 "
                                                             "address or a client host name (got 'not a host')."}


def test_in_gdpr_mode_a_clients_details_are_its_networks(viewer_client, imported, gdpr_on):
    with time_machine.travel(NOW, tick=False):
        response = viewer_client.get("/api/clients/10.1.0.0/details")
        by_address = data(viewer_client, "/api/clients/10.1.0.6/details")
    details = response.json()["data"]
    assert (details["ip_address"], details["total_requests"], details["blocked"]) == ("10.1.0.0", 10, 4)
    assert by_address == details  # a full address shows no more than its network
    text = response.content.decode()
    assert not any(f'"{address}"' in text for address in CLIENTS)


def test_it_serves_domain_statistics_as_a_list_with_allowed_or_blocked(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        rows = data(viewer_client, "/api/domains/statistics")
    check(rows, [{"domain_name": str, "requests": int, "status": str}])
    by_name = {row["domain_name"]: row for row in rows}
    assert (by_name["ads.example.net"]["requests"], by_name["ads.example.net"]["status"]) == (2, "Blocked")
    # A 407 challenge is not a block.
    assert (by_name["www.example.com"]["requests"], by_name["www.example.com"]["status"]) == (2, "Allowed")
    assert by_name["203.0.113.9"]["status"] == "Blocked"


@pytest.mark.parametrize(("period", "labels", "last_label", "inbound_tail", "blocked_tail"), [
    ("hour", 12, "2026-11-25 12:30", [4, 3, 2, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0, 0]),
    ("day", 24, "2026-11-25 12", [0, 9], [0, 3]),
    ("week", 7, "2026-11-25", [1, 9], [1, 3]),
    ("month", 30, "2026-11-25", [1, 9], [1, 3]),
])
def test_it_serves_the_traffic_chart_of_each_period(viewer_client, imported, period, labels, last_label,
                                                    inbound_tail, blocked_tail):
    with time_machine.travel(NOW, tick=False):
        chart = data(viewer_client, f"/api/traffic/statistics?period={period}")
    check(chart, {"labels": [str], "inbound": [int], "outbound": [int], "blocked": [int]})
    assert len(chart["labels"]) == len(chart["inbound"]) == len(chart["outbound"]) == len(chart["blocked"]) == labels
    assert chart["labels"][-1] == last_label
    assert chart["inbound"][-len(inbound_tail):] == inbound_tail
    assert chart["blocked"][-len(blocked_tail):] == blocked_tail
    assert [i - b for i, b in zip(chart["inbound"], chart["blocked"], strict=True)] == chart["outbound"]


def test_a_period_that_is_not_offered_is_a_400(viewer_client):
    response = viewer_client.get("/api/traffic/statistics?period=year")
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "Invalid value for 'period': must be one of hour, day, "
                                                             "week, month (got 'year')."}


def test_it_serves_shadow_it_services_with_name_domain_and_category(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        rows = data(viewer_client, "/api/analytics/shadow-it")
    check(rows, [{"name": str, "domain": str, "requests": int, "category": str}])
    assert [(row["name"], row["domain"], row["requests"], row["category"]) for row in rows] == [
        ("Dropbox", "dropbox.com", 1, "File sharing")]


def test_it_serves_methods_and_service_types_as_name_and_count(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        agents = data(viewer_client, "/api/analytics/user-agents")
    check(agents, {"methods": [{"name": str, **COUNT}], "service_types": [{"name": str, **COUNT}]})
    assert agents["methods"][:2] == [{"name": "GET", "method": "GET", "count": 8},
                                     {"name": "CONNECT", "method": "CONNECT", "count": 2}]
    assert agents["service_types"] == [{"name": "browser", "count": 1}, {"name": "cli", "count": 1}]


def test_it_serves_file_extensions_with_their_dot_and_categories(viewer_client, imported):
    with time_machine.travel(NOW, tick=False):
        files = data(viewer_client, "/api/analytics/file-extensions")
    check(files, {"extensions": [{"ext": str, **COUNT}], "categories": [{"category": str, **COUNT}]})
    assert files["extensions"][0] == {"ext": ".js", "extension": "js", "count": 2, "bytes": 400, "blocked": 2}
    assert sorted((row["ext"], row["count"]) for row in files["extensions"]) == [
        (".exe", 1), (".js", 2), (".json", 1), (".pdf", 1), (".zip", 1)]
    assert files["categories"] == [{"category": "Web", "count": 2}, {"category": "Archives", "count": 1},
                                   {"category": "Code and data", "count": 1}, {"category": "Documents", "count": 1},
                                   {"category": "Executables", "count": 1}]


def test_it_serves_audit_entries_with_text_details_the_audit_page_can_search(operator_client, imported):
    operator_client.post("/api/logs/clear-old")
    body = operator_client.get("/api/audit-log").json()
    check(body, {"data": [{"id": int, "username": str, "action": str, "target": str, "details": str,
                           "timestamp": str}], "total": int, "limit": int, "offset": int})
    entry = body["data"][0]
    assert (entry["username"], entry["action"]) == ("operator", "proxylogs.clear_old")
    # The page's search: (details ?? '').toLowerCase().includes(term)
    assert "retention_days=30" in (entry["details"] or "").lower()
    assert entry["detail_fields"]["retention_days"] == 30


@pytest.mark.parametrize("path", [
    "/api/dashboard/summary", "/api/clients/statistics", "/api/domains/statistics", "/api/analytics/shadow-it",
    "/api/traffic/statistics?period=hour", "/api/clients/10.1.0.5/details",
])
def test_no_client_address_shows_in_gdpr_mode(viewer_client, imported, gdpr_on, path):
    with time_machine.travel(NOW, tick=False):
        response = viewer_client.get(path)
    assert response.status_code == 200, path
    text = response.content.decode()
    for address in CLIENTS:
        assert address not in text, (path, address)


def test_gdpr_mode_masks_ip_and_ip_address_and_source_ip_to_the_network(viewer_client, imported, gdpr_on):
    with time_machine.travel(NOW, tick=False):
        summary = data(viewer_client, "/api/dashboard/summary")
        clients = data(viewer_client, "/api/clients/statistics")
    assert summary["top_clients"][0] == {**summary["top_clients"][0], "ip": "10.1.0.0", "count": 9}
    assert {row["source_ip"] for row in summary["recent_blocks"]} == {"10.1.0.0"}
    assert [(row["ip_address"], row["requests"]) for row in clients["clients"]] == [("10.1.0.0", 10)]
    assert clients["total_clients"] == 5


def test_the_schema_documents_the_shapes_the_ui_reads(viewer_client):
    schema = viewer_client.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    assert {"total_requests", "top_blocked", "threat_categories", "waf"} <= set(components["Dashboard"]["properties"])
    assert components["Block"]["properties"]["status"]["type"] == "string"
    assert {"labels", "inbound", "outbound", "blocked"} <= set(components["TrafficStatistics"]["properties"])
    period = next(p for p in schema["paths"]["/api/traffic/statistics"]["get"]["parameters"] if p["name"] == "period")
    assert set(period["schema"]["enum"]) == {"hour", "day", "week", "month"}
    assert components["AuditEvent"]["properties"]["details"]["type"] == "string"
    assert "get" in schema["paths"]["/api/clients/{ip}/details"]
