"""The dashboard pages: sign-in, and that each chart and table shows what the APIs serve for the same data."""

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Group

from dashboard.tests.conftest import QUARTERS, add_quarters, chart, marks, seed_small_demo, series

NOW = dt.datetime(2026, 11, 20, 12, 7, tzinfo=dt.UTC)
PAGES = ["/", "/dashboard/vpn/user-alice/", "/dashboard/flows/", "/dashboard/proxy/"]


@pytest.fixture
def demo(db):
    with time_machine.travel(NOW, tick=False):
        seed_small_demo()
        add_quarters(NOW)
        yield


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_are_sent_to_the_sign_in_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_opens_for_a_viewer(signed_in, demo, url):
    assert signed_in.get(url).status_code == 200


def test_the_root_is_the_overview(signed_in, demo):
    response = signed_in.get("/")
    assert response.templates[0].name == "dashboard/overview.html"
    assert b"<h1>Overview</h1>" in response.content


@pytest.mark.parametrize("range_name", ["24h", "7d", "30d"])
def test_the_traffic_chart_has_the_96_points_the_analytics_api_serves(signed_in, viewer_client, demo, range_name):
    api = viewer_client.get(f"/api/v1/analytics?range={range_name}").json()["data"]
    svg = chart(signed_in.get(f"/?range={range_name}").content, "chart-vpn-traffic")
    history = api[f"global_history_{range_name}"]
    assert svg.get("data-points") == "96"
    assert series(svg, "received").get("data-points") == "96"
    assert series(svg, "received").get("data-total") == str(sum(p["total_rx"] for p in history))
    assert series(svg, "sent").get("data-total") == str(sum(p["total_tx"] for p in history))
    assert series(svg, "active clients").get("data-total") == str(sum(p["active_count"] for p in history))


def test_the_24h_traffic_chart_holds_the_last_quarter_hours(signed_in, demo):
    svg = chart(signed_in.get("/").content, "chart-vpn-traffic")
    assert series(svg, "received").get("data-total") == str(sum(q[0] for q in QUARTERS))
    tips = [rect.find("{http://www.w3.org/2000/svg}title").text for rect in marks(svg, "rect", "point")]
    assert tips[-2].splitlines() == ["2026-11-20 11:45:00", "received: 1.0 MB", "sent: 2.0 MB", "active clients: 2"]


def test_top_clients_are_the_apis_top_clients_in_order(signed_in, viewer_client, demo):
    top = viewer_client.get("/api/v1/analytics?range=24h").json()["data"]["top_clients_24h"]
    bars = marks(chart(signed_in.get("/").content, "chart-top-clients"), "rect", "bar")
    assert len(bars) == len(top) == 6
    assert [(b.get("data-label"), int(b.get("data-value"))) for b in bars] == [
        (row["common_name"], row["total_bytes"]) for row in top
    ]


def test_the_overview_lists_the_clients_connected_now(signed_in, viewer_client, demo):
    page = signed_in.get("/").content.decode()
    system = viewer_client.get("/api/v1/stats/system").json()["data"]
    assert system["active_clients"] == 4  # the demo disconnects every third client
    assert 'id="active-count">4<' in page
    assert "Connected now (4)" in page
    assert "203.0.113.20:41000" in page  # user-alice's real address


def test_the_protocol_mix_is_the_flow_stats_apis(signed_in, viewer_client, demo):
    protocols = viewer_client.get("/api/v1/flow-reports/stats").json()["result"]["protocols"]
    svg = chart(signed_in.get("/").content, "chart-flow-protocols")
    slices = [n for n in svg.iter() if n.get("class") == "slice"]
    assert [(s.get("data-label"), int(s.get("data-value"))) for s in slices] == [
        ({6: "TCP", 17: "UDP"}[row["protocol"]], row["count"]) for row in protocols
    ]
    assert slices[0].get("data-label") == "TCP"  # the largest slice


def test_the_proxy_timeline_has_24_hourly_columns_of_the_timeline_api(signed_in, viewer_client, demo):
    timeline = viewer_client.get("/api/logs/timeline?hours=24").json()["data"]
    columns = marks(chart(signed_in.get("/").content, "chart-proxy-timeline"), "g", "column")
    assert len(columns) == 24
    assert [int(c.get("data-total")) for c in columns] == [p["total"] for p in timeline]
    blocked = [int(c.findall("{http://www.w3.org/2000/svg}rect")[1].get("data-value")) for c in columns]
    assert blocked == [p["blocked"] for p in timeline]


def test_the_security_score_is_the_apis(signed_in, viewer_client, demo):
    score = viewer_client.get("/api/security/score").json()["data"]["score"]
    svg = chart(signed_in.get("/").content, "chart-score")
    assert svg.get("data-value") == str(score)


def test_a_range_the_overview_does_not_offer_is_a_400(signed_in, demo):
    assert signed_in.get("/?range=1h").status_code == 400


@pytest.mark.parametrize("range_name", ["1h", "3h", "6h", "12h", "24h", "7d", "30d", "1y"])
def test_the_client_history_has_the_points_of_the_stats_api(signed_in, viewer_client, demo, range_name):
    history = viewer_client.get(f"/api/v1/stats/user-alice?range={range_name}").json()["data"]["history"]
    svg = chart(signed_in.get(f"/dashboard/vpn/user-alice/?range={range_name}").content, "chart-client-history")
    assert int(svg.get("data-points")) == len(history) > 0
    received = [float(pair.split(",")[1]) for pair in series(svg, "received Mbit/s").get("points").split()]
    assert len(received) == len(history)


def test_zero_filled_ranges_have_one_point_per_step(signed_in, demo):
    expected = {"1h": 120, "3h": 180, "6h": 180, "12h": 144, "24h": 96}
    for range_name, points in expected.items():
        svg = chart(signed_in.get(f"/dashboard/vpn/user-alice/?range={range_name}").content, "chart-client-history")
        assert svg.get("data-points") == str(points), range_name


def test_the_client_page_shows_rates_sessions_and_certificate(signed_in, viewer_client, demo):
    summary = viewer_client.get("/api/v1/stats/user-alice?range=24h").json()["data"]
    page = signed_in.get("/dashboard/vpn/user-alice/").content.decode()
    assert 'id="client-status">Active<' in page
    assert f"{summary['current_rates']['recv_mbps']:.3f}" in page
    assert page.count("<td>COMPLETED</td>") == 2  # two days of history: one closed session a day
    assert page.count("<td>ACTIVE</td>") == 1
    assert "user-alice.crt" in page and "<code>A000</code>" in page


def test_an_unknown_client_is_a_404(signed_in, demo):
    assert signed_in.get("/dashboard/vpn/nobody/").status_code == 404


def test_flows_filter_like_the_api(signed_in, viewer_client, demo):
    api = viewer_client.get("/api/v1/flow-reports?protocol=17&direction=uplink&per_page=1").json()["result"]
    stats = viewer_client.get("/api/v1/flow-reports/stats?protocol=17&direction=uplink").json()["result"]
    page = signed_in.get("/dashboard/flows/?protocol=17&direction=uplink").content.decode()
    assert f"{api['total_count']} flows match" in page
    bars = marks(chart(page, "chart-flow-protocols"), "rect", "bar")
    assert [(b.get("data-label"), int(b.get("data-value"))) for b in bars] == [("UDP", api["total_count"])]
    destinations = marks(chart(page, "chart-flow-destinations"), "rect", "bar")
    assert [(b.get("data-label"), int(b.get("data-value"))) for b in destinations] == [
        (row["ip"], row["count"]) for row in stats["top_destinations_uplink"]
    ]
    rows = page.split('<section class="card" id="flow-table">')[1]
    assert rows.count("<td>UDP</td>") == min(50, api["total_count"])
    assert "<td>TCP</td>" not in rows


def test_a_bad_flow_filter_is_a_400_that_names_it(signed_in, demo):
    response = signed_in.get("/dashboard/flows/?protocol=tcp")
    assert response.status_code == 400
    assert "Invalid value for &#x27;protocol&#x27;: must be an integer" in response.content.decode()


def test_flows_page_through_50_at_a_time(signed_in, viewer_client, demo):
    total = viewer_client.get("/api/v1/flow-reports?per_page=1").json()["result"]["total_count"]
    page = signed_in.get("/dashboard/flows/?page=2").content.decode()
    assert f"page 2 of {-(-total // 50)}" in page


@pytest.mark.parametrize(("window", "hours"), [("24h", 24), ("3d", 72), ("7d", 168)])
def test_the_proxy_timeline_has_one_column_per_hour(signed_in, viewer_client, demo, window, hours):
    timeline = viewer_client.get(f"/api/logs/timeline?hours={hours}").json()["data"]
    columns = marks(chart(signed_in.get(f"/dashboard/proxy/?window={window}").content, "chart-proxy-timeline"),
                    "g", "column")
    assert len(columns) == hours
    assert sum(int(c.get("data-total")) for c in columns) == sum(p["total"] for p in timeline) > 0


def test_the_proxy_page_shows_top_domains_and_recent_blocks(signed_in, viewer_client, demo):
    domains = viewer_client.get("/api/analytics/top-domains?hours=24&limit=15").json()["data"]
    summary = viewer_client.get("/api/dashboard/summary").json()["data"]
    page = signed_in.get("/dashboard/proxy/").content.decode()
    bars = marks(chart(page, "chart-proxy-domains"), "rect", "bar")
    assert [(b.get("data-label"), int(b.get("data-value"))) for b in bars] == [
        (row["domain"], row["count"]) for row in domains
    ]
    assert f'id="proxy-requests">{summary["window"]["requests"]}<' in page
    assert f'id="proxy-blocked">{summary["window"]["blocked"]}<' in page
    newest = summary["recent_blocks"][0]
    assert f'<td class="ip">{newest["client_ip"]}</td>' in page


def test_gdpr_mode_masks_every_address_on_the_pages(signed_in, demo, gdpr_on):
    overview = signed_in.get("/").content.decode()
    assert "203.0.113.0:41000" in overview and "203.0.113.20" not in overview
    assert "GDPR mode: addresses are masked" in overview
    client_page = signed_in.get("/dashboard/vpn/user-alice/").content.decode()
    assert "203.0.113.20" not in client_page and '<td class="ip">203.0.113.0</td>' in client_page
    assert '<td class="ip">10.8.0.0</td>' in client_page  # the tunnel address too
    flows = signed_in.get("/dashboard/flows/?source=:53").content.decode()  # downlink answers from DNS servers
    assert '<td class="ip">100.64.' in flows
    inside = re.findall(r'<td class="ip">(100\.64\.\d+\.\d+)', flows)
    assert inside and all(address.endswith(".0") for address in inside)
    proxy = signed_in.get("/dashboard/proxy/").content.decode()
    clients = marks(chart(proxy, "chart-proxy-clients"), "rect", "bar")
    assert clients and all(b.get("data-label").endswith(".0") or b.get("data-label").endswith("::")
                           for b in clients)


def test_users_allowed_to_see_addresses_see_them_in_gdpr_mode(signed_in, viewer_user, demo, gdpr_on):
    viewer_user.groups.add(Group.objects.get(name="unmasked-ip"))
    overview = signed_in.get("/").content.decode()
    assert "203.0.113.20:41000" in overview
    assert "GDPR mode" not in overview


def test_the_admin_links_to_the_dashboard(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/").content.decode()
    assert '<a href="/" id="dashboard-link">Dashboard</a>' in page
    assert '<a href="/dashboard/flows/">Flows</a>' in page


def test_the_browsable_api_links_to_the_dashboard(signed_in):
    page = signed_in.get("/api/v1/stats/system", HTTP_ACCEPT="text/html").content.decode()
    assert '<a href="/" id="dashboard-link">Dashboard</a>' in page


def test_a_viewer_without_staff_status_signs_in_on_the_sign_in_page(client, viewer_user, demo):
    assert b'name="username"' in client.get("/accounts/login/?next=/").content
    response = client.post("/accounts/login/", {"username": "viewer", "password": "pw-viewer", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert b"<h1>Overview</h1>" in client.get("/").content
