"""Envelopes, strict parameters, pagination classes and throttling of the shared API layer."""

import datetime as dt

import pytest
from django.utils import timezone

from vpnmonitor.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.urls("vpnmonitor.tests.urls")]


@pytest.fixture
def events():
    base = timezone.now() - dt.timedelta(hours=1)
    return AuditEvent.objects.bulk_create(
        [AuditEvent(user="u", action=f"a{i}", created_at=base + dt.timedelta(seconds=i)) for i in range(7)]
    )


def test_page_per_page_envelope_and_numbers(viewer_client, events):
    body = viewer_client.get("/t/flows?page=2&per_page=3").json()
    assert body["result"]["page"] == 2
    assert body["result"]["per_page"] == 3
    assert body["result"]["total_count"] == 7
    assert [item["action"] for item in body["result"]["items"]] == ["a3", "a4", "a5"]
    assert viewer_client.get("/t/flows?page=9").json()["result"]["items"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page=0", "Invalid value for 'page': must be between 1 and 10000000 (got '0')."),
        ("page=abc", "Invalid value for 'page': must be an integer (got 'abc')."),
        ("per_page=101", "Invalid value for 'per_page': must be between 1 and 100 (got '101')."),
        ("per_page=-1", "Invalid value for 'per_page': must be between 1 and 100 (got '-1')."),
    ],
)
def test_bad_page_parameters_are_400_naming_the_parameter(viewer_client, query, message):
    response = viewer_client.get(f"/t/flows?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_limit_offset_envelope(viewer_client, events):
    body = viewer_client.get("/t/logs?limit=2&offset=5").json()
    assert body["status"] == "success"
    assert (body["total"], body["limit"], body["offset"]) == (7, 2, 5)
    assert [item["action"] for item in body["data"]] == ["a5", "a6"]
    bad = viewer_client.get("/t/logs?limit=1001")
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("Invalid value for 'limit'")


def test_page_limit_envelope_counts_pages(viewer_client, events):
    body = viewer_client.get("/t/analytics?page=3&limit=3").json()
    assert (body["page"], body["limit"], body["total"], body["totalPages"]) == (3, 3, 7, 3)
    assert [item["action"] for item in body["data"]] == ["a6"]
    bad = viewer_client.get("/t/analytics?limit=0").json()
    assert bad["message"].startswith("Invalid value for 'limit'")
    assert bad["path"] == "/t/analytics"


def test_keyset_cursor_pages_each_row_once_even_when_rows_arrive_between_pages(viewer_client, events):
    seen = []
    first = viewer_client.get("/t/sessions?size=3").json()
    seen += [item["action"] for item in first["sessions"]]
    # A new row with the newest time arrives while the client pages; it must show up once, at the end.
    AuditEvent.objects.create(user="u", action="late", created_at=timezone.now())
    cursor = first["nextCursor"]
    while cursor:
        page = viewer_client.get(f"/t/sessions?size=3&cursor={cursor}").json()
        seen += [item["action"] for item in page["sessions"]]
        cursor = page.get("nextCursor")
    assert seen == [f"a{i}" for i in range(7)] + ["late"]


def test_keyset_cursor_breaks_ties_on_id(viewer_client):
    moment = timezone.now()
    AuditEvent.objects.bulk_create([AuditEvent(user="u", action=f"t{i}", created_at=moment) for i in range(5)])
    first = viewer_client.get("/t/sessions?size=2").json()
    second = viewer_client.get(f"/t/sessions?size=2&cursor={first['nextCursor']}").json()
    third = viewer_client.get(f"/t/sessions?size=2&cursor={second['nextCursor']}").json()
    actions = [i["action"] for page in (first, second, third) for i in page["sessions"]]
    assert actions == ["t0", "t1", "t2", "t3", "t4"]
    assert "nextCursor" not in third


@pytest.mark.parametrize("cursor", ["garbage", "eyJmIjoiY3JlYXRlZF9hdCJ9:1abc:forged", "x" * 2000])
def test_a_forged_or_broken_cursor_is_400(viewer_client, events, cursor):
    response = viewer_client.get(f"/t/sessions?size=2&cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid value for 'cursor'")


def test_size_is_required_for_the_keyset_listing(viewer_client):
    response = viewer_client.get("/t/sessions")
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid value for 'size': is required."


def test_monitor_envelope_and_parameter_error(viewer_client):
    assert viewer_client.get("/t/monitor?hours=5").json() == {"success": True, "data": {"hours": 5}}
    assert viewer_client.get("/t/monitor?hours=721").json() == {
        "success": False, "error": "Invalid value for 'hours': must be between 1 and 720 (got '721').",
    }


def test_throttled_caller_gets_429_with_retry_after_then_succeeds_after_the_window(key_client, settings):
    import time_machine

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "sessions": "3/min"},
    }
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        client = key_client("viewer")
        other = key_client("viewer")
        with time_machine.travel(timezone.now(), tick=False) as traveller:
            assert [client.get("/t/throttled").status_code for _ in range(3)] == [200, 200, 200]
            limited = client.get("/t/throttled")
            assert limited.status_code == 429
            assert limited["Retry-After"] == "60"
            assert limited.json()["status"] == 429
            assert other.get("/t/throttled").status_code == 200  # buckets are per caller
            traveller.shift(61)
            assert client.get("/t/throttled").status_code == 200
    finally:
        api_settings.reload()


def test_a_body_over_the_limit_is_413_in_the_family_shape(key_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = key_client("ingest").post("/t/ingest", data="x" * 5000, content_type="application/json",
                                         HTTP_AUTHORIZATION="Bearer some-oauth-token")
    assert response.status_code == 413
    assert response.json()["message"] == "The body is 5000 bytes; it may be at most 2048 bytes."


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_date_time_beyond_the_calendar_is_400_not_500(value):
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from vpnmonitor.api.exceptions import BadParameter
    from vpnmonitor.api.params import QueryParams

    request = Request(APIRequestFactory().get("/", {"from": value}))
    with pytest.raises(BadParameter) as raised:
        QueryParams(request).datetime("from")
    assert raised.value.message.startswith("Invalid value for 'from': must be an ISO 8601 date or date-time")


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_in_the_openapi_schema_resolves(viewer_client):
    schema = viewer_client.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    refs = set(_refs(schema))
    assert "#/components/schemas/FlowReport" in refs
    dangling = sorted(ref for ref in refs if ref.removeprefix("#/components/schemas/") not in components)
    assert dangling == []


def _bounded_integer_parameters(schema):
    """(path, name, minimum, maximum) of each GET's bounded integer query parameter, for operations
    that need no path parameter and no other required parameter."""
    for path, operations in schema["paths"].items():
        operation = operations.get("get")
        if operation is None or "{" in path:
            continue
        parameters = [p for p in operation.get("parameters", []) if p["in"] == "query"]
        if any(p.get("required") for p in parameters):
            continue
        for parameter in parameters:
            bounds = parameter.get("schema", {})
            if bounds.get("type") == "integer" and "minimum" in bounds and "maximum" in bounds:
                yield path, parameter["name"], bounds["minimum"], bounds["maximum"]


def test_documented_integer_bounds_are_the_enforced_ones(operator_client):
    """Every bounded integer a GET documents answers 400 just outside its bounds and 200 at them."""
    schema = operator_client.get("/api/schema/?format=json").json()
    checked = list(_bounded_integer_parameters(schema))
    assert ("/api/logs/timeline", "hours", 1, 720) in checked and len(checked) >= 20
    for path, name, minimum, maximum in checked:
        for value, status in ((minimum - 1, 400), (maximum + 1, 400), (minimum, 200), (maximum, 200)):
            response = operator_client.get(path, {name: value})
            assert response.status_code == status, (path, name, value, response.content[:200])
