"""Deep pages of /api/logs in time order: found through the hourly rollup's counts, the same rows as OFFSET."""

import datetime as dt
import random
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from proxylogs import selectors
from proxylogs.models import ProxyLogEntry, ProxyLogHour
from proxylogs.services import COLUMNS, store_rows

pytestmark = pytest.mark.django_db

BASE = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)
# Hours after BASE that hold entries (3 and 4 hold none, 30 is the next day), and how many distinct times each.
HOURS = {0: 90, 1: 3, 2: 160, 5: 1, 6: 120, 30: 70}


def _moments(generator):
    """Each hour's times: its first and last millisecond, and random ones; each time 1 to 12 entries (ties)."""
    for hour, distinct in HOURS.items():
        start = BASE + dt.timedelta(hours=hour)
        times = {start, start + dt.timedelta(milliseconds=3_599_999)}
        while len(times) < distinct:
            times.add(start + dt.timedelta(milliseconds=generator.randrange(3_600_000)))
        for moment in times:
            yield from [moment] * generator.randint(1, 12)


def _row(moment, number, generator):
    values = dict.fromkeys(COLUMNS)
    blocked = number % 9 == 0
    values.update(timestamp=moment, elapsed_ms=5, client_ip=f"10.0.0.{number % 200 + 1}", client_network="10.0.0.0",
                  method="GET", url=f"http://example.com/{number}", destination="example.com",
                  destination_host="example.com", destination_is_ip=False, domain="example.com",
                  http_status=403 if blocked else 200, result_code="TCP_DENIED" if blocked else "TCP_MISS",
                  bytes=generator.randrange(1000), hierarchy="HIER_DIRECT", blocked=blocked)
    return tuple(values[column] for column in COLUMNS)


@pytest.fixture
def entries():
    """About 1,500 entries over 6 hours of two days, stored in shuffled order, so ids do not follow time."""
    generator = random.Random(23)
    moments = list(_moments(generator))
    generator.shuffle(moments)
    rows = [_row(moment, number, generator) for number, moment in enumerate(moments)]
    # In a few statements, as imports write them: the rollup counts each statement's rows.
    for first in range(0, len(rows), 400):
        store_rows(rows[first:first + 400])
    return len(rows)


def _ids(rows):
    return [row.id for row in rows]


def _ordered(order):
    prefix = "" if order == "asc" else "-"
    return ProxyLogEntry.objects.order_by(f"{prefix}timestamp", f"{prefix}id")


def _hour_edges(order):
    """The offsets at which an hour starts in this order, and their neighbours."""
    hours = ProxyLogHour.objects.order_by("hour" if order == "asc" else "-hour").values_list("total", flat=True)
    edges, running = set(), 0
    for total in hours:
        edges |= {running - 1, running, running + 1}
        running += total
    return {edge for edge in edges if edge >= 0}


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_page_in_time_order_is_the_page_offset_gives(entries, order):
    assert sum(ProxyLogHour.objects.values_list("total", flat=True)) == entries
    queryset = _ordered(order)
    offsets = sorted(set(range(0, entries + 20, 29)) | _hour_edges(order) | {entries - 1, entries})
    for offset in offsets:
        for limit in (1, 7, 100):
            expected = _ids(queryset[offset:offset + limit])
            assert _ids(selectors.log_page(queryset, offset, limit, deep_offset=0)) == expected, (offset, limit)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_deep_page_reads_the_rollup_then_the_page_ids_from_its_hour_on_then_their_rows(entries, order):
    queryset = _ordered(order)
    offset = entries // 2
    with CaptureQueriesContext(connection) as queries:
        page = selectors.log_page(queryset, offset, 10, deep_offset=0)
    assert _ids(page) == _ids(queryset[offset:offset + 10])
    rollup, keys, rows = (query["sql"] for query in queries.captured_queries)
    assert "proxylogs_proxyloghour" in rollup
    assert "OFFSET" not in rows
    # The residual offset is less than one hour's entries (at most 12 entries a time, 160 times an hour).
    skipped = re.search(r"OFFSET (\d+)", keys)
    residual = int(skipped.group(1)) if skipped else 0
    assert residual < 12 * 160
    assert residual < offset


def test_past_the_last_entry_a_deep_page_is_empty(entries):
    assert selectors.log_page(_ordered("asc"), entries, 10, deep_offset=0) == []
    assert selectors.log_page(_ordered("desc"), entries + 500, 10, deep_offset=0) == []


@pytest.mark.parametrize("queryset", [
    pytest.param(lambda: _ordered("desc").filter(blocked=True), id="filtered"),
    pytest.param(lambda: ProxyLogEntry.objects.order_by("bytes", "id"), id="sorted by bytes"),
    pytest.param(lambda: ProxyLogEntry.objects.order_by("timestamp"), id="time order without the id"),
])
def test_what_the_rollup_cannot_answer_reads_the_plain_offset(entries, queryset):
    queryset = queryset()
    with CaptureQueriesContext(connection) as queries:
        page = selectors.log_page(queryset, 60, 25, deep_offset=0)
    assert _ids(page) == _ids(queryset[60:85])
    assert len(page) == 25
    assert all("proxylogs_proxyloghour" not in query["sql"] for query in queries.captured_queries)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_deep_api_pages_in_time_order_match_the_offset_query(viewer_client, entries, order):
    queryset = _ordered(order)
    assert entries > selectors.DEEP_OFFSET
    for offset in (selectors.DEEP_OFFSET, selectors.DEEP_OFFSET + 137, entries - 30, entries):
        body = viewer_client.get(f"/api/logs?sort=timestamp&order={order}&limit=50&offset={offset}").json()
        assert (body["total"], body["limit"], body["offset"]) == (entries, 50, offset)
        assert [row["id"] for row in body["data"]] == _ids(queryset[offset:offset + 50])


def test_the_openapi_offset_states_what_a_deep_offset_costs_in_each_sort(viewer_client):
    schema = viewer_client.get("/api/schema/?format=json").json()
    offset = next(p for p in schema["paths"]["/api/logs"]["get"]["parameters"] if p["name"] == "offset")
    assert "sort=timestamp" in offset["description"]
    assert "With sort=source_ip the database steps over each skipped entry in its index" in offset["description"]
    assert "Every other sort has no index" in offset["description"]
    assert "an offset of 1,000,000 takes 10 to 30 s" in offset["description"]
    audit = next(p for p in schema["paths"]["/api/audit-log"]["get"]["parameters"] if p["name"] == "offset")
    assert audit["description"] == "Number of entries to skip."
