"""POST /analytics/ingest: strict records, all-or-nothing batches, 15-minute buckets summed on write."""

import datetime as dt
import json

import pytest
from django.test import override_settings

from proxytraffic import schema, services
from proxytraffic.models import TrafficBucket

pytestmark = pytest.mark.django_db

URL = "/analytics/ingest"


def record(**changes):
    base = {
        "ts": "2026-03-15 10:15:00", "user_id": 1, "order_id": 3, "port": 443, "protocol": "HTTPS",
        "ip_out": "185.199.100.10", "ip_from": "78.100.50.12", "peer_id": "peer-001", "worker": "worker-01",
        "domain": "google.com", "error": "", "count": 12, "bytes_sent": 10240, "bytes_received": 524800,
        "error_count": 0, "duration_ms": 15000, "max_concurrency": 5,
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


@pytest.fixture
def ingest(key_client):
    return key_client("ingest")


def post(client, logs):
    # json.dumps escapes a lone surrogate as \\ud800, as a worker's JSON library would.
    return client.post(URL, json.dumps({"logs": logs}), content_type="application/json")


def test_the_spec_example_is_stored_as_one_bucket_row(ingest):
    response = post(ingest, [record()])
    assert response.status_code == 204
    row = TrafficBucket.objects.get()
    assert row.bucket == dt.datetime(2026, 3, 15, 10, 15, tzinfo=dt.UTC)
    assert (row.user_id, row.order_id, row.domain, row.port, row.protocol) == (1, 3, "google.com", 443, "HTTPS")
    assert (row.ip_out, row.ip_from, row.peer_id, row.worker, row.error) == (
        "185.199.100.10", "78.100.50.12", "peer-001", "worker-01", "")
    assert (row.count, row.bytes_sent, row.bytes_received, row.error_count, row.duration_ms,
            row.max_concurrency) == (12, 10240, 524800, 0, 15000, 5)


def test_records_in_the_same_quarter_hour_and_key_are_summed_and_concurrency_is_a_maximum(ingest):
    post(ingest, [
        record(ts="2026-03-15 10:15:00", count=12, bytes_sent=100, max_concurrency=5),
        record(ts="2026-03-15T10:29:59Z", count=3, bytes_sent=50, max_concurrency=9),
    ])
    # A later batch adds to the same row rather than replacing it.
    post(ingest, [record(ts="2026-03-15T10:20:00+00:00", count=5, bytes_sent=25, max_concurrency=7,
                         error_count=2)])
    row = TrafficBucket.objects.get()
    assert (row.count, row.bytes_sent, row.error_count, row.max_concurrency) == (20, 175, 2, 9)
    assert row.first_seen == dt.datetime(2026, 3, 15, 10, 15, tzinfo=dt.UTC)
    assert row.last_seen == dt.datetime(2026, 3, 15, 10, 29, 59, tzinfo=dt.UTC)


def test_the_next_quarter_hour_and_another_key_are_separate_rows(ingest):
    post(ingest, [
        record(ts="2026-03-15 10:29:59"),
        record(ts="2026-03-15 10:30:00"),
        record(ts="2026-03-15 10:29:00", worker="worker-02"),
        record(ts="2026-03-15 10:29:00", error="ETIMEDOUT", error_count=1),
    ])
    assert TrafficBucket.objects.count() == 4
    assert sorted(TrafficBucket.objects.values_list("bucket__minute", "worker", "error")) == [
        (15, "worker-01", ""), (15, "worker-01", "ETIMEDOUT"), (15, "worker-02", ""), (30, "worker-01", ""),
    ]


def test_offsets_are_converted_to_utc_and_domains_to_lower_case(ingest):
    post(ingest, [record(ts="2026-03-15T12:20:00+02:00", domain="Google.COM")])
    row = TrafficBucket.objects.get()
    assert row.bucket == dt.datetime(2026, 3, 15, 10, 15, tzinfo=dt.UTC)
    assert row.domain == "google.com"


def test_optional_fields_default_to_empty_and_zero(ingest):
    response = post(ingest, [{"ts": "2026-03-15 10:15:00", "user_id": 1, "order_id": 3, "domain": "a.com",
                              "count": 1}])
    assert response.status_code == 204
    row = TrafficBucket.objects.get()
    assert (row.port, row.protocol, row.ip_out, row.worker, row.bytes_sent, row.max_concurrency) == (0, "", "", "",
                                                                                                       0, 0)


def test_addresses_are_stored_in_their_canonical_form(ingest):
    post(ingest, [record(ip_out="2001:DB8:0:0::1", ip_from="")])
    assert TrafficBucket.objects.values_list("ip_out", "ip_from").get() == ("2001:db8::1", "")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("ts", "15/03/2026 10:15", 'must be "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time'),
        ("ts", "2026-03-15", "must include a time of day"),
        ("ts", "2026-02-30 10:00:00", 'must be "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time'),
        ("ts", "0000-01-01 00:00:00", 'must be "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time'),
        ("ts", "1999-12-31 23:59:59", "must not be before 2000-01-01"),
        ("ts", "9999-12-31T23:00:00-05:00", 'must be "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time'),
        ("ts", "9999-01-01 00:00:00", "must not be more than a day in the future"),
        ("ts", 1773569700, 'must be a string "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time'),
        ("user_id", "1", "must be an integer"),
        ("user_id", -1, "must be between 0 and 9223372036854775807"),
        ("order_id", 2**63, "must be between 0 and 9223372036854775807"),
        ("order_id", 3.0, "must be an integer"),
        ("order_id", None, "must be an integer"),
        ("port", 65536, "must be between 0 and 65535"),
        ("port", -1, "must be between 0 and 65535"),
        ("port", True, "must be an integer"),
        ("protocol", "H" * 17, "must be at most 16 characters"),
        ("protocol", 443, "must be a string"),
        ("ip_out", "185.199.100.300", "must be an IPv4 or IPv6 address or empty"),
        ("ip_from", "localhost", "must be an IPv4 or IPv6 address or empty"),
        ("peer_id", "p" * 101, "must be at most 100 characters"),
        ("worker", "worker\x00", "must not contain control characters"),
        ("domain", "", "must not be empty"),
        ("domain", "goo gle.com", "must not contain spaces"),
        ("domain", "d" * 256, "must be at most 255 characters"),
        ("error", "\ud800", "must be valid Unicode text"),
        ("count", -1, "must be between 0 and 1000000000000000"),
        ("count", 10**30, "must be between 0 and 1000000000000000"),
        ("bytes_sent", "10240", "must be an integer"),
        ("bytes_received", 1.5, "must be an integer"),
        ("error_count", 13, "must not exceed count"),
        ("duration_ms", -5, "must be between 0 and 1000000000000000"),
        ("max_concurrency", [], "must be an integer"),
    ],
)
def test_each_field_is_checked_and_the_400_names_index_and_field(ingest, field, value, problem):
    response = post(ingest, [record(), record(**{field: value})])
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == f"logs[1].{field}: {problem}"
    assert body["path"] == URL
    assert body["errors"] == {"logs": {"1": {field: [problem]}}}
    assert TrafficBucket.objects.count() == 0


def test_missing_required_fields_and_unknown_fields_are_named(ingest):
    response = post(ingest, [record(ts=..., count=..., bytes_recv=5)])
    assert response.status_code == 400
    assert response.json()["errors"]["logs"]["0"] == {
        "ts": ["is required"], "count": ["is required"], "bytes_recv": ["is not a field of a traffic record"],
    }


def test_one_bad_record_rejects_the_whole_batch(ingest):
    logs = [record(ts=f"2026-03-15 1{i % 10}:00:00") for i in range(50)]
    logs[17]["port"] = 70000
    logs[42]["domain"] = 7
    response = post(ingest, logs)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "logs[17].port: must be between 0 and 65535; logs[42].domain: must be a string"
    )
    assert TrafficBucket.objects.count() == 0


def test_a_batch_of_ten_thousand_is_accepted_and_one_more_is_413(ingest):
    logs = [record(order_id=i) for i in range(10_000)]
    assert post(ingest, logs).status_code == 204
    assert TrafficBucket.objects.count() == 10_000
    too_many = post(ingest, logs + [record()])
    assert too_many.status_code == 413
    assert too_many.json()["message"] == "A batch may hold at most 10,000 records (got 10,001); split it."
    assert TrafficBucket.objects.count() == 10_000


@override_settings(PROXY_TRAFFIC_MAX_INGEST_BYTES=2000)
def test_a_body_over_the_size_limit_is_413_before_it_is_parsed(ingest):
    body = json.dumps({"logs": [record() for _ in range(10)]})
    response = ingest.post(URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["message"] == f"The body is {len(body)} bytes; a batch may be at most 2000 bytes."
    assert set(response.json()) == {"message", "path", "timestamp"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "logs: is required and must be a list of records"),
        ({"logs": {"ts": "x"}}, "logs: is required and must be a list of records"),
        ({"logs": [], "extra": 1}, "extra: is not a field of the ingest body"),
        ({"logs": ["a"]}, "logs[0]: must be an object"),
        ([1, 2], 'logs: the body must be a JSON object {"logs": [...]}'),
    ],
)
def test_a_malformed_body_is_a_400(ingest, body, message):
    response = post(ingest, []) if body is None else ingest.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_invalid_json_is_a_400_in_the_analytics_error_shape(ingest):
    response = ingest.post(URL, '{"logs": [NaN', content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == {"message", "path", "timestamp"}


def test_an_empty_batch_is_accepted_and_writes_nothing(ingest):
    assert post(ingest, []).status_code == 204
    assert TrafficBucket.objects.count() == 0


def test_a_tenant_scoped_ingest_key_may_only_push_its_own_user_id(key_client):
    client = key_client("ingest", tenant=7)
    response = post(client, [record(user_id=7), record(user_id=8)])
    assert response.status_code == 400
    assert response.json()["message"] == "logs[1].user_id: this API key may only push records of user_id 7"
    assert TrafficBucket.objects.count() == 0
    assert post(client, [record(user_id=7)]).status_code == 204


def test_viewers_may_not_ingest_and_anonymous_callers_are_401(key_client, api_client, viewer_client):
    assert post(key_client("viewer"), [record()]).status_code == 403
    assert post(viewer_client, [record()]).status_code == 403
    response = post(api_client, [record()])
    assert response.status_code == 401
    assert set(response.json()) == {"message", "path", "timestamp"}


def test_operators_and_jwt_users_in_the_ingest_group_may_ingest(operator_client, django_user_model, api_client):
    from django.contrib.auth.models import Group

    assert post(operator_client, [record()]).status_code == 204
    user = django_user_model.objects.create_user("worker", password="pw-worker-123")
    user.groups.add(Group.objects.get(name="ingest"))
    token = api_client.post("/api/auth/token", {"username": "worker", "password": "pw-worker-123"},
                            format="json").json()["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert post(api_client, [record(order_id=4)]).status_code == 204
    assert TrafficBucket.objects.count() == 2


def test_counters_saturate_at_the_bigint_maximum_instead_of_failing(db):
    big = schema.MAX_COUNTER
    now = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    records = schema.check_batch({"logs": [record(count=big, bytes_sent=big)] * 10_000}, now=now)
    for _ in range(2):
        services.ingest_records(records)
    row = TrafficBucket.objects.get()
    assert row.count == 2**63 - 1
    assert row.bytes_sent == 2**63 - 1


def test_demo_data_goes_through_the_ingest_checks_and_shows_up_in_the_api(viewer_client):
    from django.utils import timezone

    from proxytraffic import demo

    assert not demo.has_data()
    now = timezone.now()
    summary = demo.seed(now=now, options={"seed": 1, "days": 2, "log_lines": 500, "clients": 6})
    assert summary.startswith("500 proxy traffic records from 6 orders of 3 tenants")
    assert demo.has_data()
    start = (now - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    chart = viewer_client.get(f"/analytics/requests?from={start}&to={end}").json()["data"]
    assert sum(int(row["total_count"]) for row in chart) == sum(TrafficBucket.objects.values_list("count", flat=True))


def test_retention_prunes_buckets_and_rollups_older_than_90_days_by_default(ingest):
    from proxytraffic.models import TrafficTotal
    from vpnmonitor import retention

    post(ingest, [record(ts="2026-03-15 10:15:00", error="ETIMEDOUT", error_count=1),
                  record(ts="2026-06-20 08:00:00", error="ETIMEDOUT", error_count=1)])
    assert TrafficTotal.objects.count() == 2
    now = dt.datetime(2026, 6, 21, tzinfo=dt.UTC)
    assert retention.prune("proxy_traffic", now=now) == 1
    assert retention.prune("proxy_traffic_totals", now=now) == 1
    assert retention.prune("proxy_traffic_domain_days", now=now) == 1
    assert retention.prune("proxy_traffic_error_days", now=now) == 1
    assert list(TrafficBucket.objects.values_list("bucket__month", flat=True)) == [6]
    assert list(TrafficTotal.objects.values_list("count", flat=True)) == [12]


def test_accepted_batches_are_counted_for_the_metrics(key_client, viewer_client):
    from prometheus_client.parser import text_string_to_metric_families

    ingest = key_client("ingest")
    assert ingest.post(URL, {"logs": [record(), record(domain="b.example")]}, format="json").status_code == 204
    assert ingest.post(URL, {"logs": [record()]}, format="json").status_code == 204
    assert ingest.post(URL, {"logs": [record(count=-1)]}, format="json").status_code == 400
    text = viewer_client.get("/metrics").content.decode()
    samples = {(s.name, s.labels.get("dataset")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("vpnmonitor_ingest_records_total", "proxy_traffic")] == 3
    assert samples[("vpnmonitor_ingest_batches_total", "proxy_traffic")] == 2


FAST_PATH_CASES = [
    {},
    {"domain": "  Example.COM "},
    {"domain": "a b.com"},
    {"domain": "   "},
    {"domain": "caf\u00e9.example"},
    {"domain": "x\ud800.com"},
    {"error": "line\nbreak"},
    {"worker": "w" * 101},
    {"protocol": "p" * 16},
    {"ip_out": "::FFFF:1.2.3.4"},
    {"ip_from": "1.2.3"},
    {"ip_from": ""},
    {"port": True},
    {"port": 65536},
    {"count": 5, "error_count": 6},
    {"count": 5, "error_count": 5},
    {"bytes_sent": schema.MAX_COUNTER + 1},
    {"max_concurrency": -1},
    {"user_id": "7"},
    {"ts": "2026-03-01"},
    {"ts": "2026-03-01T10:00:00+02:00"},
    {"ts": 1700000000},
    {"ts": "2026-03-18 00:00:00"},
    {"surplus": 1},
    {"port": ..., "protocol": ..., "ip_out": ..., "error": ..., "max_concurrency": ...},
    {"domain": ...},
    {"ts": ...},
]


@pytest.mark.parametrize("changes", FAST_PATH_CASES)
@pytest.mark.parametrize("tenant", [None, 1, 2])
def test_the_fast_check_agrees_with_the_full_check(changes, tenant):
    """convert_batch() (one msgspec pass) accepts exactly what check_record() accepts, and yields the same record."""
    raw = record(**changes)
    now = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    checked, errors = schema.check_record(raw, now, tenant)
    fast = schema.convert_batch({"logs": [raw]}, tenant=tenant, now=now)
    assert fast == (None if errors else [checked])


def test_the_fast_check_accepts_valid_records():
    now = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    assert schema.convert_batch({"logs": [record(domain=" Google.COM")]}, now=now)[0].domain == "google.com"


BATCH_CASES = FAST_PATH_CASES + [
    {"ts": "1999-12-31 23:59:59"},
    {"ts": "2026-03-17 00:00:00Z"},
    {"ts": "2026-03-15T10:00:00.250Z"},
    {"ts": " 2026-03-15 10:00:00"},
    {"ts": "2026-02-30 10:00:00"},
    {"ts": "9999-12-31T23:00:00-05:00"},
    {"order_id": 2**63},
    {"count": 10**30},
    {"order_id": 3.0},
    {"order_id": None},
    {"peer_id": "p" * 101},
    {"domain": "d" * 256},
    {"error": "\U0001f600 emoji"},
]


@pytest.mark.parametrize("changes", BATCH_CASES)
@pytest.mark.parametrize("tenant", [None, 1, 2])
def test_the_one_pass_batch_decoder_agrees_with_the_full_check(changes, tenant):
    """decode_batch() (one msgspec pass) accepts exactly what the field-by-field check accepts, and yields the
    same records."""
    body = {"logs": [record(), record(**changes), record(domain="Other.example", ip_out="")]}
    now = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    checked = [schema.check_record(raw, now, tenant) for raw in body["logs"]]
    expected = None if any(errors for _, errors in checked) else [checked_record for checked_record, _ in checked]
    assert schema.decode_batch(json.dumps(body).encode(), tenant=tenant, now=now) == expected
    assert schema.convert_batch(body, tenant=tenant, now=now) == expected


@pytest.mark.parametrize("raw", [b"", b"[]", b"{}", b'{"logs": {}}', b'{"logs": [], "x": 1}', b"{\"logs\": [NaN]}"])
def test_the_one_pass_batch_decoder_declines_what_is_not_a_batch(raw):
    assert schema.decode_batch(raw) is None
    assert schema.decode_batch(b'{"logs": []}') == []
    assert schema.decode_batch(json.dumps({"logs": [record()] * (schema.MAX_RECORDS + 1)}).encode()) is None


def summaries():
    from proxytraffic.models import TrafficDomainDay, TrafficErrorDay, TrafficTotal

    fields = ("count", "bytes_sent", "bytes_received", "error_count", "duration_ms", "max_concurrency",
              "first_seen", "last_seen")
    return (set(TrafficTotal.objects.values_list("bucket", *fields)),
            set(TrafficDomainDay.objects.values_list("day", "domain", *fields)),
            set(TrafficErrorDay.objects.values_list("day", "error", "domain", *fields)))


def test_the_all_tenant_summaries_equal_the_bucket_rows_rolled_up_again(db):
    from vpnmonitor import rollups

    now = dt.datetime(2026, 3, 17, tzinfo=dt.UTC)
    logs = [record(ts=f"2026-03-{15 + i % 2} {(i * 7) % 24:02d}:{(i * 11) % 60:02d}:{i % 60:02d}",
                   user_id=1 + i % 3, domain=("a.com", "b.org", "c.net")[i % 3 if i % 4 else 0],
                   error=("", "", "timeout", "refused")[i % 4], count=1 + i, bytes_sent=10 * i,
                   error_count=i % 4 // 2, max_concurrency=(i * 13) % 17) for i in range(200)]
    for batch in (logs[:120], logs[120:]):
        services.ingest_records(schema.check_batch({"logs": batch}, now=now))
    totals, domain_days, error_days = stored = summaries()
    assert sum(row[1] for row in totals) == sum(1 + i for i in range(200))
    assert {row[1] for row in error_days} == {"timeout", "refused"}
    assert len(domain_days) == 6
    rollups.rebuild(TrafficBucket)
    assert summaries() == stored
