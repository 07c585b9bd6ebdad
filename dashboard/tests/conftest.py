"""Dashboard test data: the demo dataset at small sizes, plus VPN totals per quarter hour with known numbers."""

import datetime as dt
import io
import re
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command

SVG = "{http://www.w3.org/2000/svg}"
# Received/sent bytes and clients of the last three 15-minute periods before now, oldest first.
MIB = 1024 * 1024
QUARTERS = [(4 * MIB, 12 * MIB, 3), (6 * MIB, 30 * MIB, 5), (1 * MIB, 2 * MIB, 2)]


def seed_small_demo():
    call_command("seed_demo", clients=6, days=2, flows=500, log_lines=500, stdout=io.StringIO())


def add_quarters(now):
    """Replace the demo's 15-minute totals (what the analytics read) with three known ones to check exactly."""
    from monitoring.models import PollQuarter, VpnServer
    from vpnmonitor.timeseries import floor_time

    PollQuarter.objects.all().delete()
    server = VpnServer.objects.order_by("name").first()
    current = floor_time(now, 900)
    for back, (received, sent, clients) in zip((3, 2, 1), QUARTERS, strict=True):
        PollQuarter.objects.create(server=server, bucket=current - dt.timedelta(minutes=15 * back),
                                   bytes_received=received, bytes_sent=sent, max_clients=clients,
                                   max_connections=clients, polls=3)


def chart(html, chart_id):
    """The <svg id=chart_id> of a page, parsed (the charts are well-formed XML)."""
    text = html.decode() if isinstance(html, bytes) else html
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', text, re.S)
    assert match, f"no chart {chart_id} on the page"
    return ET.fromstring(match.group(0))


def marks(svg, tag, css_class):
    return [node for node in svg.iter(f"{SVG}{tag}") if css_class in node.get("class", "").split()]


def series(svg, name):
    for node in marks(svg, "polyline", "series"):
        if node.get("data-series") == name:
            return node
    raise AssertionError(f"no series {name}")


@pytest.fixture
def signed_in(client, viewer_user):
    client.force_login(viewer_user)
    return client


@pytest.fixture
def small_demo(db):
    from django.utils import timezone

    seed_small_demo()
    add_quarters(timezone.now())
