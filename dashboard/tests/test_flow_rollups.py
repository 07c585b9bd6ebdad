"""The overview's and the flows page's flow numbers come from the flow-report selectors, rollups included."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.tests.conftest import add_quarters, chart, marks, seed_small_demo
from flowreports.models import FlowReport

NOW = dt.datetime(2026, 11, 20, 12, 7, tzinfo=dt.UTC)
# The default window: the flows that started in the last 7 days (to now).
WINDOW = (NOW - dt.timedelta(days=7), NOW)


@pytest.fixture
def demo(db):
    with time_machine.travel(NOW, tick=False):
        seed_small_demo()
        add_quarters(NOW)
        yield


def _read(url, client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), " ".join(query["sql"] for query in queries.captured_queries)


def test_the_overview_counts_the_last_7_days_of_flows_per_protocol_from_the_hourly_rollup(signed_in, demo):
    page, sql = _read("/", signed_in)
    in_window = FlowReport.objects.filter(start_time__range=WINDOW)
    assert in_window.count() > 0
    svg = chart(page, "chart-flow-protocols")
    slices = marks(svg, "path", "slice") + marks(svg, "circle", "slice")
    assert sorted(int(s.get("data-value")) for s in slices) == sorted(
        in_window.filter(protocol=protocol).count() for protocol in {f.protocol for f in in_window})
    assert f"{in_window.count()} flows</p>" in page
    assert "flowreports_flowreporthourly" in sql


def test_the_flows_page_total_comes_from_the_hourly_rollup_and_equals_the_rows(signed_in, demo):
    page, sql = _read("/dashboard/flows/?protocol=6", signed_in)
    total = FlowReport.objects.filter(start_time__range=WINDOW, protocol=6).count()
    assert total > 0
    assert f"{total} flows match" in page
    assert "flowreports_flowreporthourly" in sql
