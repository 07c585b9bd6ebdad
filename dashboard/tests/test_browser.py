"""End to end in Debian's Chromium (driven by Playwright): sign in, open every page on seeded data, and check
in the DOM that each chart drew its data. Screenshots go to test-artifacts/."""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from dashboard.tests.conftest import add_quarters, seed_small_demo

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "e2e-Secret-pw-1"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path, live_server, monkeypatch):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (Debian packages chromium and chromium-driver; "
                    "scripts/install-test-programs installs them when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        # A persistent context is how Playwright takes a fresh --user-data-dir of our choosing.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(20_000)
        requests, problems = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.requests, page.problems = requests, problems
        try:
            yield page
        finally:
            context.close()
            # With Playwright's loop in this thread, Django keys connections by context: close the ones the
            # test's reads opened here, or PostgreSQL refuses to drop the test database at the end.
            connections.close_all()
    # Nothing may come from anywhere but the server under test (no CDN), and nothing may fail in the page.
    assert [url for url in requests if not url.startswith(live_server.url)] == []
    assert problems == []


@pytest.fixture
def seeded(transactional_db, django_user_model):
    from django.contrib.auth.models import Group
    from django.utils import timezone

    seed_small_demo()
    add_quarters(timezone.now())
    # Staff status for the admin link test; the sign-in page itself takes any user (see test_pages).
    user = django_user_model.objects.create_user("operator-e2e", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="viewers"))
    return user


def sign_in(page, base):
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url  # anonymous: sent to the sign-in form
    page.fill("#id_username", "operator-e2e")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/")


def drawn_points(page, selector):
    """How many points the browser parsed into an SVG polyline (its own geometry, not our attribute)."""
    return page.eval_on_selector(selector, "el => el.points.numberOfItems")


def drawn_count(page, selector):
    """How many of the matching SVG marks have a real rendered size."""
    return page.eval_on_selector_all(
        selector, "els => els.filter(el => { const b = el.getBBox(); return b.width > 0 && b.height > 0; }).length"
    )


def within(count, before, after):
    # A time boundary (a new hour or 15 minutes) may pass between computing the expectation and the page load.
    assert count in {before, after}, (count, before, after)


def shot(page, name):
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_an_operator_signs_in_and_every_chart_draws_its_data(browser_page, live_server, seeded):
    from flowreports import selectors as flow_selectors
    from flowreports.filtersets import FlowReportFilterSet
    from flowreports.models import FlowReport
    from monitoring import selectors as vpn_selectors
    from proxylogs import selectors as proxy_selectors

    page, base = browser_page, live_server.url
    sign_in(page, base)

    # Overview
    assert page.inner_text("h1") == "Overview"
    assert drawn_points(page, '#chart-vpn-traffic polyline[data-series="received"]') == 96
    assert drawn_points(page, '#chart-vpn-traffic polyline[data-series="active clients"]') == 96
    assert page.locator("#chart-vpn-traffic rect.point").count() == 96
    assert page.locator("#chart-vpn-traffic").bounding_box()["width"] > 600
    top = vpn_selectors.analytics("24h")["top_clients_24h"]
    assert drawn_count(page, "#chart-top-clients rect.bar") == len(top) == 6
    assert page.inner_text("#active-count") == "4"
    assert page.locator("#active-clients tbody tr").count() == 4
    protocols = flow_selectors.flow_stats(FlowReportFilterSet({}, queryset=FlowReport.objects.all()).qs)["protocols"]
    assert drawn_count(page, "#chart-flow-protocols .slice") == len(protocols) == 2
    assert page.locator("#chart-proxy-timeline g.column").count() == 24
    assert drawn_count(page, "#chart-proxy-timeline rect.segment") > 0
    assert drawn_count(page, "#chart-score rect.meter-fill") == 1
    shot(page, "overview")

    page.click("#vpn-traffic .ranges >> text=7d")
    page.wait_for_url(f"{base}/?range=7d")
    assert drawn_points(page, '#chart-vpn-traffic polyline[data-series="sent"]') == 96

    # A VPN client, from its bar in the top clients chart, at every range
    page.goto(f"{base}/")
    page.click(f'#chart-top-clients a:has-text("{top[0]["common_name"]}")')
    page.wait_for_url(f"{base}/dashboard/vpn/{top[0]['common_name']}/")
    common_name = top[0]["common_name"]
    for range_name in vpn_selectors.STATS_RANGES:
        before = len(vpn_selectors.client_history(common_name, range_name)[0])
        page.click(f"#client-history .ranges >> text={range_name}")
        page.wait_for_url(f"{base}/dashboard/vpn/{common_name}/?range={range_name}")
        after = len(vpn_selectors.client_history(common_name, range_name)[0])
        within(drawn_points(page, '#chart-client-history polyline[data-series="received Mbit/s"]'), before, after)
        if range_name in ("24h", "7d"):
            shot(page, f"client-{range_name}")
    from dashboard import selectors as dashboard_selectors

    assert page.locator("#sessions tbody tr").count() == len(dashboard_selectors.client_sessions(common_name)) > 0
    assert page.locator("#certificate tbody tr").count() == 1

    # Flows, filtered through the form
    page.click("nav.dash-nav >> text=Flows")
    page.fill("input[name=protocol]", "17")
    page.select_option("select[name=direction]", "uplink")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/dashboard/flows/?*protocol=17*")
    udp = FlowReportFilterSet({"protocol": "17", "direction": "uplink"}, queryset=FlowReport.objects.all()).qs
    stats = flow_selectors.flow_stats(udp)
    assert drawn_count(page, "#chart-flow-protocols rect.bar") == 1
    assert drawn_count(page, "#chart-flow-destinations rect.bar") == len(stats["top_destinations_uplink"]) > 0
    rows = page.locator("#flow-table tbody tr")
    assert rows.count() == min(50, udp.count())
    assert set(page.locator("#flow-table tbody tr td:nth-child(6)").all_inner_texts()) == {"UDP"}
    shot(page, "flows")

    # Proxy
    page.click("nav.dash-nav >> text=Proxy")
    page.wait_for_url(f"{base}/dashboard/proxy/")
    assert page.locator("#chart-proxy-timeline g.column").count() == 24
    assert drawn_count(page, "#chart-proxy-domains rect.bar") == len(proxy_selectors.top_domains(24, limit=15)) > 0
    blocks = proxy_selectors.recent_blocks(masked=False, limit=20)
    assert page.locator("#recent-blocks tbody tr").count() == len(blocks) > 0
    shot(page, "proxy")


def test_the_admin_and_the_browsable_api_link_to_the_dashboard(browser_page, live_server, seeded):
    page, base = browser_page, live_server.url
    sign_in(page, base)
    page.goto(f"{base}/admin/")
    page.click("#dashboard-link")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/api/v1/stats/system")
    page.click("#dashboard-link")
    page.wait_for_url(f"{base}/")
    assert page.inner_text("h1") == "Overview"
