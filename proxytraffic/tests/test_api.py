"""The /analytics charts and breakdowns: their numbers on a hand-built dataset, zero-fill, ranges, tenants."""

import datetime as dt

import pytest
from django.db.models import Max, Sum

from proxytraffic import schema, selectors, services
from proxytraffic.models import TrafficBucket, TrafficErrorDay

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
RECORDS = [
    # name: ts, user, order, domain, error, count, sent, received, error_count, concurrency
    ("A", "2026-03-15 10:05:00", 1, 10, "google.com", "", 10, 100, 1000, 0, 3),
    ("B", "2026-03-15 10:20:00", 1, 10, "google.com", "", 5, 50, 500, 0, 7),
    ("F", "2026-03-15 10:50:00", 1, 10, "github.com", "ECONNREFUSED", 1, 1, 1, 1, 1),
    ("C", "2026-03-15 11:40:00", 1, 11, "github.com", "ECONNREFUSED", 4, 40, 4000, 2, 2),
    ("D", "2026-03-15 13:10:00", 2, 20, "facebook.com", "ECONNREFUSED", 8, 800, 80, 4, 9),
    ("E", "2026-03-16 09:00:00", 2, 20, "google.com", "ETIMEDOUT", 2, 20, 20, 2, 1),
]


def ingest(rows):
    logs = [
        {"ts": ts, "user_id": user, "order_id": order, "domain": domain, "error": error, "count": count,
         "bytes_sent": sent, "bytes_received": received, "error_count": errors, "max_concurrency": concurrency,
         "worker": "worker-01"}
        for _, ts, user, order, domain, error, count, sent, received, errors, concurrency in rows
    ]
    services.ingest_records(schema.check_batch({"logs": logs}, now=NOW))


@pytest.fixture
def dataset(db):
    ingest(RECORDS)


def get(client, path, **params):
    response = client.get(f"/analytics/{path}", params)
    assert response.status_code == 200, response.json()
    return response.json()


FOUR_HOURS = {"from": "2026-03-15T10:00:00Z", "to": "2026-03-15T14:00:00Z"}


def test_traffic_chart_has_every_quarter_hour_with_sums_and_zeros(viewer_client, dataset):
    data = get(viewer_client, "traffic", **FOUR_HOURS)["data"]
    assert len(data) == 16
    assert data[0] == {"bucket": "2026-03-15 10:00:00", "total_bytes_sent": "100", "total_bytes_received": "1000",
                       "bytes_total": "1100", "total_count": "10"}
    assert data[1] == {"bucket": "2026-03-15 10:15:00", "total_bytes_sent": "50", "total_bytes_received": "500",
                       "bytes_total": "550", "total_count": "5"}
    assert data[2] == {"bucket": "2026-03-15 10:30:00", "total_bytes_sent": "0", "total_bytes_received": "0",
                       "bytes_total": "0", "total_count": "0"}
    assert data[6]["bucket"] == "2026-03-15 11:30:00"
    assert data[6]["bytes_total"] == "4040"
    assert data[12]["bucket"] == "2026-03-15 13:00:00"
    assert data[12]["bytes_total"] == "880"
    assert data[15] == {"bucket": "2026-03-15 13:45:00", "total_bytes_sent": "0", "total_bytes_received": "0",
                        "bytes_total": "0", "total_count": "0"}


def test_requests_chart_counts_requests_and_errors(viewer_client, dataset):
    data = get(viewer_client, "requests", **FOUR_HOURS)["data"]
    assert data[3] == {"bucket": "2026-03-15 10:45:00", "total_count": "1", "total_errors": "1"}
    assert data[12] == {"bucket": "2026-03-15 13:00:00", "total_count": "8", "total_errors": "4"}
    assert data[4] == {"bucket": "2026-03-15 11:00:00", "total_count": "0", "total_errors": "0"}


def test_concurrency_chart_keeps_the_highest_reported_value(viewer_client, dataset):
    data = get(viewer_client, "concurrency", **FOUR_HOURS)["data"]
    assert data[1] == {"bucket": "2026-03-15 10:15:00", "max_concurrency": "7", "total_count": "5"}
    daily = get(viewer_client, "concurrency", **{"from": "2026-03-01", "to": "2026-03-31"})["data"]
    assert daily[14] == {"bucket": "2026-03-15 00:00:00", "max_concurrency": "9", "total_count": "28"}
    assert daily[15] == {"bucket": "2026-03-16 00:00:00", "max_concurrency": "1", "total_count": "2"}


def test_a_date_as_to_covers_that_whole_day_in_daily_buckets(viewer_client, dataset):
    data = get(viewer_client, "traffic", **{"from": "2026-03-01", "to": "2026-03-31"})["data"]
    assert len(data) == 31
    assert data[0]["bucket"] == "2026-03-01 00:00:00"
    assert data[-1]["bucket"] == "2026-03-31 00:00:00"
    assert data[14]["total_count"] == "28"
    assert data[14]["bytes_total"] == str(1100 + 550 + 2 + 4040 + 880)
    assert data[15]["total_count"] == "2"
    assert data[13]["total_count"] == "0"


def test_a_range_of_three_days_is_charted_by_the_hour(viewer_client, dataset):
    data = get(viewer_client, "requests", **{"from": "2026-03-14", "to": "2026-03-17T00:00:00Z"})["data"]
    assert len(data) == 72
    assert data[24 + 10] == {"bucket": "2026-03-15 10:00:00", "total_count": "16", "total_errors": "1"}


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (dt.timedelta(hours=1), dt.timedelta(minutes=15)),
        (dt.timedelta(days=2), dt.timedelta(minutes=15)),
        (dt.timedelta(days=2, seconds=1), dt.timedelta(hours=1)),
        (dt.timedelta(days=14), dt.timedelta(hours=1)),
        (dt.timedelta(days=15), dt.timedelta(days=1)),
        (dt.timedelta(days=62), dt.timedelta(days=1)),
    ],
)
def test_the_chart_bucket_follows_the_length_of_the_range(span, step):
    assert selectors.chart_step(span) == step


def test_charts_filter_by_exact_domain_and_order(viewer_client, dataset):
    data = get(viewer_client, "traffic", domain="GitHub.com", **FOUR_HOURS)["data"]
    assert [(row["bucket"][11:16], row["total_count"]) for row in data if row["total_count"] != "0"] == [
        ("10:45", "1"), ("11:30", "4")]
    data = get(viewer_client, "traffic", orderId="10", **FOUR_HOURS)["data"]
    assert [row["total_count"] for row in data if row["total_count"] != "0"] == ["10", "5", "1"]
    partial = get(viewer_client, "traffic", domain="github", **FOUR_HOURS)["data"]
    assert all(row["total_count"] == "0" for row in partial)


WHOLE = {"from": "2026-03-15", "to": "2026-03-16"}


def test_domains_by_bytes_and_by_count(viewer_client, dataset):
    by_bytes = get(viewer_client, "domains", **WHOLE)["data"]
    assert by_bytes == [
        {"domain": "github.com", "total_count": "5", "bytes_total": "4042", "total_bytes_sent": "41",
         "total_bytes_received": "4001", "total_errors": "3"},
        {"domain": "google.com", "total_count": "17", "bytes_total": "1690", "total_bytes_sent": "170",
         "total_bytes_received": "1520", "total_errors": "2"},
        {"domain": "facebook.com", "total_count": "8", "bytes_total": "880", "total_bytes_sent": "800",
         "total_bytes_received": "80", "total_errors": "4"},
    ]
    by_count = get(viewer_client, "domains", sortBy="count", **WHOLE)["data"]
    assert [(row["domain"], row["total_count"]) for row in by_count] == [
        ("google.com", "17"), ("facebook.com", "8"), ("github.com", "5")]
    assert [row["domain"] for row in get(viewer_client, "domains", limit=1, **WHOLE)["data"]] == ["github.com"]
    assert [row["domain"] for row in get(viewer_client, "domains", orderId=20, **WHOLE)["data"]] == [
        "facebook.com", "google.com"]


def test_errors_by_type_with_first_and_last_seen_and_sample_domains(viewer_client, dataset):
    assert get(viewer_client, "errors", **WHOLE)["data"] == [
        {"error": "ECONNREFUSED", "total_errors": "7", "first_seen": "2026-03-15 10:50:00",
         "last_seen": "2026-03-15 13:10:00", "sample_domains": ["facebook.com", "github.com"]},
        {"error": "ETIMEDOUT", "total_errors": "2", "first_seen": "2026-03-16 09:00:00",
         "last_seen": "2026-03-16 09:00:00", "sample_domains": ["google.com"]},
    ]
    assert [row["error"] for row in get(viewer_client, "errors", limit=1, **WHOLE)["data"]] == ["ECONNREFUSED"]
    filtered = get(viewer_client, "errors", domain="github.com", **WHOLE)["data"]
    assert filtered == [{"error": "ECONNREFUSED", "total_errors": "3", "first_seen": "2026-03-15 10:50:00",
                         "last_seen": "2026-03-15 11:40:00", "sample_domains": ["github.com"]}]


def test_sample_domains_are_the_three_with_the_most_errors(viewer_client, db):
    ingest([
        (name, "2026-03-15 10:00:00", 1, 1, domain, "EPIPE", errors, 0, 0, errors, 0)
        for name, domain, errors in [("a", "a.com", 1), ("b", "b.com", 5), ("c", "c.com", 3), ("d", "d.com", 4),
                                     ("e", "e.com", 4)]
    ])
    (row,) = get(viewer_client, "errors", **WHOLE)["data"]
    assert row["total_errors"] == "17"
    assert row["sample_domains"] == ["b.com", "d.com", "e.com"]


def test_websites_are_paged_most_visited_first(viewer_client, dataset):
    body = get(viewer_client, "websites", **WHOLE)
    assert (body["page"], body["limit"], body["total"], body["totalPages"]) == (1, 25, 3, 1)
    assert body["data"][0] == {"domain": "google.com", "total_count": "17", "bytes_total": "1690",
                               "first_visit": "2026-03-15 10:05:00", "last_visit": "2026-03-16 09:00:00"}
    page = get(viewer_client, "websites", page=2, limit=2, **WHOLE)
    assert (page["total"], page["totalPages"]) == (3, 2)
    assert page["data"] == [{"domain": "github.com", "total_count": "5", "bytes_total": "4042",
                             "first_visit": "2026-03-15 10:50:00", "last_visit": "2026-03-15 11:40:00"}]
    beyond = get(viewer_client, "websites", page=3, limit=2, **WHOLE)
    assert (beyond["data"], beyond["total"], beyond["totalPages"]) == ([], 3, 2)


def test_an_empty_range_is_all_zeros_and_empty_lists(viewer_client, dataset):
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00Z"}
    assert get(viewer_client, "requests", **window)["data"] == [
        {"bucket": f"2026-01-01 00:{minute:02d}:00", "total_count": "0", "total_errors": "0"}
        for minute in (0, 15, 30, 45)
    ]
    assert get(viewer_client, "domains", **window)["data"] == []
    assert get(viewer_client, "errors", **window)["data"] == []
    assert get(viewer_client, "websites", **window) == {"data": [], "page": 1, "limit": 25, "total": 0,
                                                         "totalPages": 0}


def test_a_tenant_scoped_key_sees_only_its_tenant_whatever_it_asks_for(key_client, dataset):
    tenant = key_client("viewer", tenant=1)
    assert [row["domain"] for row in get(tenant, "domains", **WHOLE)["data"]] == ["github.com", "google.com"]
    assert get(tenant, "domains", orderId=20, **WHOLE)["data"] == []
    assert get(tenant, "errors", domain="facebook.com", **WHOLE)["data"] == []
    assert get(tenant, "errors", **WHOLE)["data"][0]["total_errors"] == "3"
    websites = get(tenant, "websites", **WHOLE)
    assert websites["total"] == 2
    assert websites["data"][0]["total_count"] == "15"
    assert websites["data"][0]["last_visit"] == "2026-03-15 10:20:00"
    chart = get(tenant, "traffic", **FOUR_HOURS)["data"]
    assert chart[12] == {"bucket": "2026-03-15 13:00:00", "total_bytes_sent": "0", "total_bytes_received": "0",
                         "bytes_total": "0", "total_count": "0"}
    daily = get(tenant, "concurrency", **{"from": "2026-03-01", "to": "2026-03-31"})["data"]
    assert daily[14] == {"bucket": "2026-03-15 00:00:00", "max_concurrency": "7", "total_count": "20"}
    other = key_client("viewer", tenant=2)
    assert get(other, "requests", orderId=10, **FOUR_HOURS)["data"][0]["total_count"] == "0"


def test_unscoped_keys_and_users_see_every_tenant(key_client, viewer_client, dataset):
    for client in (key_client("viewer"), key_client("operator"), viewer_client):
        assert len(get(client, "domains", **WHOLE)["data"]) == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("to=2026-03-16", "Invalid value for 'from': is required."),
        ("from=2026-03-15", "Invalid value for 'to': is required."),
        ("from=15.03.2026&to=2026-03-16", "Invalid value for 'from': must be an ISO 8601 date or date-time such as "
                                          "2026-03-15 or 2026-03-15T10:00:00Z (got '15.03.2026')."),
        ("from=2026-03-16T00:00:00Z&to=2026-03-15T00:00:00Z",
         "Invalid value for 'to': 'to' must be after 'from' (got '2026-03-15T00:00:00Z')."),
        ("from=2026-03-15T10:00:00Z&to=2026-03-15T10:00:00Z",
         "Invalid value for 'to': 'to' must be after 'from' (got '2026-03-15T10:00:00Z')."),
        ("from=2026-01-01&to=2026-03-05",
         "Invalid value for 'to': the range must not exceed 62 days (got '2026-03-05')."),
        ("from=1969-12-31&to=1970-01-02",
         "Invalid value for 'from': must be between 1970-01-01 and 9999-01-01 (got '1969-12-31')."),
        ("from=9999-12-01&to=9999-12-31",
         "Invalid value for 'from': must be between 1970-01-01 and 9999-01-01 (got '9999-12-01')."),
        ("from=2026-03-15&to=9999-12-31T23:00:00-05:00",
         "Invalid value for 'to': must be an ISO 8601 date or date-time such as 2026-03-15 or "
         "2026-03-15T10:00:00Z (got '9999-12-31T23:00:00-05:00')."),
        ("from=0000-01-01&to=2026-03-16", "Invalid value for 'from': must be an ISO 8601 date or date-time such as "
                                          "2026-03-15 or 2026-03-15T10:00:00Z (got '0000-01-01')."),
        ("from=2026-03-15&to=2026-03-16&orderId=abc", "Invalid value for 'orderId': must be an integer (got 'abc')."),
        ("from=2026-03-15&to=2026-03-16&orderId=99999999999999999999",
         "Invalid value for 'orderId': must be between 0 and 9223372036854775807 (got '99999999999999999999')."),
        ("from=2026-03-15&to=2026-03-16&domain=a%00b", "Invalid value for 'domain': must not contain NUL characters."),
    ],
)
@pytest.mark.parametrize("path", ["traffic", "requests", "concurrency", "domains", "errors", "websites"])
def test_bad_ranges_and_filters_are_400_naming_the_parameter(viewer_client, path, query, message):
    response = viewer_client.get(f"/analytics/{path}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == message
    assert body["path"] == f"/analytics/{path}"
    assert body["timestamp"].endswith("Z")


def test_two_full_calendar_months_are_allowed(viewer_client, dataset):
    assert len(get(viewer_client, "traffic", **{"from": "2026-07-01", "to": "2026-08-31"})["data"]) == 62


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("domains", "sortBy=size", "Invalid value for 'sortBy': must be one of bytes, count (got 'size')."),
        ("domains", "limit=0", "Invalid value for 'limit': must be between 1 and 100 (got '0')."),
        ("domains", "limit=101", "Invalid value for 'limit': must be between 1 and 100 (got '101')."),
        ("errors", "limit=abc", "Invalid value for 'limit': must be an integer (got 'abc')."),
        ("websites", "limit=101", "Invalid value for 'limit': must be between 1 and 100 (got '101')."),
        ("websites", "page=0", "Invalid value for 'page': must be between 1 and 10000000 (got '0')."),
    ],
)
def test_bad_sort_limit_and_page_are_400(viewer_client, path, query, message):
    response = viewer_client.get(f"/analytics/{path}?from=2026-03-15&to=2026-03-16&{query}")
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_reading_needs_a_reader(api_client, key_client):
    response = api_client.get("/analytics/domains?from=2026-03-15&to=2026-03-16")
    assert response.status_code == 401
    assert set(response.json()) == {"message", "path", "timestamp"}
    assert key_client("ingest").get("/analytics/domains?from=2026-03-15&to=2026-03-16").status_code == 403


def test_the_schema_documents_every_analytics_endpoint_with_required_from_and_to(viewer_client):
    schema = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("traffic", "requests", "concurrency", "domains", "errors", "websites"):
        parameters = {p["name"]: p for p in schema["paths"][f"/analytics/{path}"]["get"]["parameters"]}
        assert parameters["from"]["required"] and parameters["to"]["required"]
        assert "orderId" in parameters
    assert "requestBody" in schema["paths"]["/analytics/ingest"]["post"]


def test_unfiltered_charts_read_the_totals_and_agree_with_the_bucket_rows(db):
    from django.utils import timezone

    from proxytraffic import demo

    now = timezone.now()
    demo.seed(now=now, options={"seed": 3, "days": 20, "log_lines": 3000, "clients": 9})
    for span in (dt.timedelta(days=1), dt.timedelta(days=5), dt.timedelta(days=20)):
        query = selectors.TrafficQuery(start=now - span, end=now + dt.timedelta(minutes=1))
        assert selectors.chart_source(query).model.__name__ == "TrafficTotal"
        from_buckets = selectors.buckets(query)
        assert selectors.traffic_chart(query) == selectors._chart(
            query, from_buckets, total_bytes_sent=Sum("bytes_sent"), total_bytes_received=Sum("bytes_received"),
            bytes_total=Sum("bytes_sent") + Sum("bytes_received"), total_count=Sum("count"))
        assert selectors.requests_chart(query) == selectors._chart(
            query, from_buckets, total_count=Sum("count"), total_errors=Sum("error_count"))
        assert selectors.concurrency_chart(query) == selectors._chart(
            query, from_buckets, max_concurrency=Max("max_concurrency"), total_count=Sum("count"))
    # The 20-day chart covers every demo record.
    assert sum(row["total_count"] for row in selectors.requests_chart(query)) == TrafficBucket.objects.aggregate(
        n=Sum("count"))["n"]


def test_breakdowns_over_whole_days_read_the_daily_rollup_and_agree_with_the_bucket_rows(db):
    from django.utils import timezone

    from proxytraffic import demo

    now = timezone.now()
    demo.seed(now=now, options={"seed": 4, "days": 20, "log_lines": 3000, "clients": 9})
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for days, domain in ((1, None), (7, None), (21, None), (21, "github.com")):
        query = selectors.TrafficQuery(start=today - dt.timedelta(days=days - 1), end=today + dt.timedelta(days=1),
                                       domain=domain)
        assert selectors.breakdown_source(query).model.__name__ == "TrafficDomainDay"
        rows = selectors.buckets(query)
        for sort_by in ("bytes", "count"):
            assert selectors.domains(query, sort_by=sort_by, limit=100) == selectors.domains(
                query, sort_by=sort_by, limit=100, source=rows)
        assert selectors.breakdown_source(query, TrafficErrorDay).model is TrafficErrorDay
        for limit in (100, 2, 1):
            assert selectors.errors(query, limit=limit) == selectors.errors(query, limit=limit, source=rows)
        assert list(selectors.websites(query)) == list(selectors.websites(query, source=rows))
    assert len(selectors.domains(query, limit=100)) == 1
    week = selectors.TrafficQuery(start=today - dt.timedelta(days=6), end=today + dt.timedelta(days=1))
    found = selectors.errors(week, limit=100)
    assert len(found) >= 3 and all(1 <= len(row["sample_domains"]) <= 3 for row in found)
    assert [row["error"] for row in selectors.errors(week, limit=2)] == [row["error"] for row in found[:2]]


@pytest.mark.parametrize(
    "changes", [{"start": dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC)}, {"tenant": 1}, {"order_id": 101}],
)
def test_breakdowns_over_part_days_or_for_a_tenant_or_order_read_the_bucket_rows(changes):
    query = selectors.TrafficQuery(**{"start": dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                                      "end": dt.datetime(2026, 3, 3, tzinfo=dt.UTC), **changes})
    assert selectors.breakdown_source(query).model.__name__ == "TrafficBucket"
