"""Request bodies on every endpoint that takes one: strict JSON whatever the Content-Type, 400s that say why."""

import json

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from vpnmonitor.api import families
from vpnmonitor.api.parsers import FORM_TYPES, MAX_DEPTH

pytestmark = pytest.mark.django_db


class RawClient(APIClient):
    """An APIClient that can leave Content-Type out altogether (content_type=None), as Go's net/http does."""

    def _base_environ(self, **request):
        environ = super()._base_environ(**request)
        if environ.get("CONTENT_TYPE") is None:
            environ.pop("CONTENT_TYPE", None)
        return environ


def body_endpoints(*, json_only=False):
    """(method, path) of every operation that takes a request body, from the OpenAPI schema.

    json_only: leave out the operations that also take form data (the OAuth2 token endpoints).
    """
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
        and not (json_only and set(operation["requestBody"]["content"]) & set(FORM_TYPES))
    )


BODY_ENDPOINTS = body_endpoints()
JSON_ONLY_ENDPOINTS = body_endpoints(json_only=True)


def test_the_schema_lists_the_endpoints_that_take_bodies():
    assert {
        ("POST", "/api/auth/token"), ("POST", "/api/auth/token/refresh"), ("POST", "/api/v1/flow-reports"),
        ("PUT", "/api/v1/flow-reports/retention"), ("POST", "/analytics/ingest"),
    } <= set(BODY_ENDPOINTS)


@pytest.fixture
def superuser_client(django_user_model):
    client = RawClient()
    client.force_authenticate(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    return client


def family_of(path):
    return getattr(resolve(path).func.view_class, "api_family", families.DEFAULT)


def error_message(path, response):
    """The message of an error response, after checking that the body has exactly its family's keys."""
    body = response.json()
    if set(body) == {"error", "error_description"}:  # an OAuth2 token endpoint answers as RFC 6749 says
        return body["error_description"]
    errors = body.get("errors")  # structured detail, when the family shape carries one
    expected = family_of(path).error("x", status=response.status_code, request=None, errors=errors)
    assert set(body) == set(expected), body
    for key in ("message", "error", "detail"):
        if key in expected and expected[key] == "x":
            return body[key]
    raise AssertionError(body)


def send(client, method, path, body, content_type="application/json"):
    return client.generic(method, path, body, content_type=content_type)


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_a_hundred_thousand_levels_of_nesting_is_a_400_naming_the_depth(superuser_client, method, path):
    response = send(superuser_client, method, path, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert error_message(path, response) == (
        f"The body nests JSON arrays or objects more than {MAX_DEPTH} levels deep."
    )


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_nesting_just_past_the_limit_is_a_400_too(superuser_client, method, path):
    body = '{"a": ' * MAX_DEPTH + "[]" + "}" * MAX_DEPTH
    response = send(superuser_client, method, path, body)
    assert response.status_code == 400
    assert "more than 32 levels deep" in error_message(path, response)


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("content_type", ["application/json", None, "text/plain"])
def test_invalid_utf8_is_a_400_naming_the_byte(superuser_client, method, path, content_type):
    response = send(superuser_client, method, path, b'{"logs": [], "username": "ab\xff"}', content_type)
    assert response.status_code == 400
    assert error_message(path, response) == (
        "The body is not valid UTF-8: byte 0xff at position 28 (invalid start byte)."
    )


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_an_unpaired_surrogate_escape_is_a_400(superuser_client, method, path):
    response = send(superuser_client, method, path, b'{"username": "ab\\ud800"}')
    assert response.status_code == 400
    assert error_message(path, response) == "username: must be valid Unicode text"


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain; charset=utf-8"])
def test_a_json_body_without_its_content_type_gets_the_same_answer_as_with_it(
    superuser_client, method, path, content_type
):
    body = json.dumps({"unexpected": [1, 2]})
    labelled = send(superuser_client, method, path, body)
    unlabelled = send(superuser_client, method, path, body, content_type)
    assert unlabelled.status_code == labelled.status_code != 415
    strip = lambda response: {k: v for k, v in response.json().items() if k != "timestamp"}  # noqa: E731
    assert strip(unlabelled) == strip(labelled)


@pytest.mark.parametrize(("method", "path"), JSON_ONLY_ENDPOINTS)
@pytest.mark.parametrize("body", [b"days=30", b"<days>30</days>", b"{'days': 30}", b"[NaN]", b"[1e999]"])
def test_a_body_that_is_not_json_is_a_400_saying_so(superuser_client, method, path, body):
    response = send(superuser_client, method, path, body, "application/xml")
    assert response.status_code == 400
    assert error_message(path, response).startswith("The body is not valid JSON")


@pytest.mark.parametrize(("method", "path"), JSON_ONLY_ENDPOINTS)
def test_form_and_multipart_posts_are_a_400_saying_the_body_must_be_json(superuser_client, method, path):
    form = superuser_client.generic(method, path, "days=30&source_ip=192.0.2.1",
                                    content_type="application/x-www-form-urlencoded")
    assert form.status_code == 400
    assert error_message(path, form) == "The body must be JSON, not a form (application/x-www-form-urlencoded)."
    multipart = superuser_client.post(path, {"days": "30"}, format="multipart") if method == "POST" else \
        superuser_client.put(path, {"days": "30"}, format="multipart")
    assert multipart.status_code == 400
    assert error_message(path, multipart) == "The body must be JSON, not a form (multipart/form-data)."


def flow():
    return {
        "subscriber_id": "001019756139935", "source_ip": "192.168.1.100", "destination_ip": "8.8.8.8",
        "source_port": 10000, "destination_port": 53, "protocol": 17, "packets": 100, "bytes": 5000,
        "start_time": "2025-02-22T10:30:00.000Z", "end_time": "2025-02-22T10:30:01.000Z",
    }


def test_form_and_multipart_posts_of_flows_store_nothing(key_client):
    from flowreports.models import FlowReport

    ingest = key_client("ingest")
    assert ingest.post("/api/v1/flow-reports", flow(), format="multipart").json() == {
        "error": "The body must be JSON, not a form (multipart/form-data).",
    }
    response = ingest.generic("POST", "/api/v1/flow-reports", "source_ip=192.0.2.1&bytes=5",
                              content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert FlowReport.objects.count() == 0


def test_flows_posted_as_text_plain_or_without_a_content_type_are_stored(make_api_key):
    from flowreports.models import FlowReport

    client = RawClient()
    client.credentials(HTTP_X_API_KEY=make_api_key("ingest"))
    for content_type in (None, "text/plain"):
        response = client.generic("POST", "/api/v1/flow-reports", json.dumps([flow(), flow()]),
                                  content_type=content_type)
        assert response.status_code == 201
        assert response.json()["result"]["stored"] == 2
    assert FlowReport.objects.count() == 4


def test_curl_d_json_labelled_as_a_form_is_read_as_json(key_client):
    response = key_client("ingest").generic("POST", "/api/v1/flow-reports", json.dumps([flow()]),
                                            content_type="application/x-www-form-urlencoded")
    assert response.json() == {"result": {"message": "Flow reports stored successfully", "stored": 1}}


def test_ella_core_client_changes_retention_without_a_content_type(operator_user):
    """Ella Core's Go client (client/flow_reports.go) PUTs json.Encoder output with only an Authorization header."""
    client = RawClient()
    access = client.post("/api/auth/token", {"username": "operator", "password": "pw-operator"},
                         format="json").json()["access"]
    response = client.generic("PUT", "/api/v1/flow-reports/retention", b'{"days":45}\n', content_type=None,
                              HTTP_AUTHORIZATION=f"Bearer {access}", HTTP_USER_AGENT="Go-http-client/1.1",
                              HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response.json() == {"result": {"message": "Flow reports retention policy updated successfully"}}
    assert client.get("/api/v1/flow-reports/retention", HTTP_AUTHORIZATION=f"Bearer {access}").json() == {
        "result": {"days": 45},
    }


def test_a_traffic_batch_without_a_content_type_is_ingested(make_api_key):
    from proxytraffic.models import TrafficBucket

    client = RawClient()
    client.credentials(HTTP_X_API_KEY=make_api_key("ingest"))
    record = {"ts": "2026-03-15T10:15:00Z", "user_id": 1, "order_id": 3, "domain": "example.com", "count": 12}
    response = client.generic("POST", "/analytics/ingest", json.dumps({"logs": [record]}), content_type=None)
    assert response.status_code == 204
    assert TrafficBucket.objects.get().count == 12


def test_invalid_utf8_inside_a_traffic_record_is_a_400_and_stores_nothing(make_api_key):
    from proxytraffic.models import TrafficBucket

    client = RawClient()
    client.credentials(HTTP_X_API_KEY=make_api_key("ingest"))
    body = b'{"logs": [{"ts": "2026-03-15T10:15:00Z", "user_id": 1, "order_id": 3, "domain": "ex\xe9.com", "count": 1}]}'
    response = client.generic("POST", "/analytics/ingest", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "The body is not valid UTF-8: byte 0xe9 at position 83 (invalid continuation byte)."
    assert response.json()["path"] == "/analytics/ingest"
    assert TrafficBucket.objects.count() == 0


def test_a_byte_order_mark_is_ignored(operator_client):
    response = operator_client.generic("PUT", "/api/v1/flow-reports/retention", b'\xef\xbb\xbf{"days": 9}',
                                       content_type="application/json")
    assert response.status_code == 200


def test_swagger_ui_asked_for_json_with_a_bad_jwt_is_not_a_500(api_client):
    response = api_client.get("/api/docs/", HTTP_ACCEPT="application/json", HTTP_AUTHORIZATION="Bearer a.b.c")
    assert response.status_code == 406
    assert api_client.get("/api/docs/").status_code == 200
