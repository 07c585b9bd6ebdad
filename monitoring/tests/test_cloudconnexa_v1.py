"""CloudConnexa API v1 as its public Go client speaks it, over raw HTTP: the token call and the sessions cursor loop.

The Go client (cloudconnexa-go-client) POSTs {"grant_type": "client_credentials", "scope": "default"} as JSON
with HTTP Basic and *no* Content-Type, then GETs /api/v1/sessions with Content-Type: application/json and
follows nextCursor until it is missing, decoding the v1.2.0 session object.
"""

import base64
import datetime as dt
import http.client
import json
import urllib.parse

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import UserProfile, VpnServer, VpnSession
from monitoring.sources.status import parse_status
from monitoring.tests.factories import status2
from vpnmonitor.testing.real import real_fixture

CLIENT_ID, CLIENT_SECRET = "cloudconnexa-go", "s3cret-s3cret-s3cret"
# Every field of the Go client's Session struct and the JSON type it decodes (None: null is decoded as empty).
V1_FIELDS = {
    "sessionId": str, "userId": (str, type(None)), "deviceId": (str, type(None)), "regionId": (str, type(None)),
    "bytesIn": int, "bytesOut": int, "connectorName": str, "userName": (str, type(None)),
    "deviceName": (str, type(None)), "clientIp": (str, type(None)), "startDateTime": str,
    "vpnIpv4": (str, type(None)), "networkName": (str, type(None)), "regionName": (str, type(None)),
    "connectionStatus": str,
}


@pytest.fixture
def application(viewer_user):
    from oauth2_provider.models import Application

    # The application acts with its user's role: a viewer's.
    return Application.objects.create(name="terraform", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                      user=viewer_user, client_type="confidential",
                                      authorization_grant_type="client-credentials")


def raw(live_server, method, path, body=None, headers=None):
    """One request exactly as given: no header is added but Host and Content-Length."""
    url = urllib.parse.urlsplit(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def basic(client_id=CLIENT_ID, secret=CLIENT_SECRET):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def go_client_token(live_server, path="/api/v1/oauth/token"):
    status, headers, body = raw(live_server, "POST", path,
                                body=json.dumps({"grant_type": "client_credentials", "scope": "default"}).encode(),
                                headers={"Authorization": basic(), "Accept": "application/json",
                                         "User-Agent": "Go-http-client/1.1"})
    assert status == 200, body
    return json.loads(body)


def record_sessions(now):
    """Sessions through the poll path: the five clients of a real OpenVPN 2.3 status file, then 23 more."""
    real = VpnServer.objects.create(name="vpn-real", status_file="/nonexistent", region="eu-west",
                                    network_name="office")
    services.record_poll(real, parse_status(real_fixture("openvpn/kumina/server3.status").read_text()))
    generated = VpnServer.objects.create(name="vpn-gen", status_file="/nonexistent")
    services.record_poll(generated, parse_status(status2(
        now - dt.timedelta(seconds=30),
        [(f"user{i:02d}", i, now - dt.timedelta(minutes=10 + i), 1000 * i, 2000 * i, f"10.8.0.{i + 2}")
         for i in range(23)])))
    return set(VpnSession.objects.values_list("pk", flat=True))


def test_the_go_clients_token_call_and_cursor_loop_return_every_session_once(live_server, application):
    now = timezone.now()
    UserProfile.objects.create(common_name="redacted4", user_id="u-4", user_name="dana", device_name="laptop-4")
    expected = record_sessions(now)
    assert len(expected) == 28

    token = go_client_token(live_server)
    assert isinstance(token["access_token"], str) and token["access_token"]
    assert (token["token_type"], token["scope"]) == ("bearer", "read")

    start = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # Go: time.RFC3339
    end = (now + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"Authorization": f"Bearer {token['access_token']}", "User-Agent": "cloudconnexa-go",
               "Content-Type": "application/json"}
    seen, pages, cursor = [], 0, ""
    while True:
        query = {"size": "4", "startDate": start, "endDate": end, **({"cursor": cursor} if cursor else {})}
        status, response_headers, body = raw(live_server, "GET", "/api/v1/sessions?" + urllib.parse.urlencode(query),
                                             headers=headers)
        assert status == 200, body
        assert response_headers["Content-Type"].startswith("application/json")
        page = json.loads(body)
        assert set(page) <= {"sessions", "nextCursor"}
        for session in page["sessions"]:
            for field, kind in V1_FIELDS.items():
                assert isinstance(session[field], kind), (field, session[field])
                assert not isinstance(session[field], bool)
            dt.datetime.fromisoformat(session["startDateTime"].replace("Z", "+00:00"))
        seen += [int(session["sessionId"]) for session in page["sessions"]]
        pages += 1
        cursor = page.get("nextCursor", "")
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 28  # no duplicates
    assert set(seen) == expected  # no gaps
    assert pages == 7
    # Oldest update first, as the cursor orders them.
    assert seen == list(VpnSession.objects.order_by("updated_at", "pk").values_list("pk", flat=True))


def test_a_real_status_files_session_in_the_v1_schema(live_server, application):
    UserProfile.objects.create(common_name="redacted4", user_id="u-4", user_name="dana", device_name="laptop-4")
    record_sessions(timezone.now())
    token = go_client_token(live_server)
    status, _, body = raw(live_server, "GET", "/api/v1/sessions?size=100&status=ACTIVE",
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert status == 200
    sessions = {session["sessionId"]: session for session in json.loads(body)["sessions"]}
    dana = next(session for session in sessions.values() if session["userName"] == "dana")
    stored = VpnSession.objects.get(common_name="redacted4")
    assert dana == {
        "sessionId": str(stored.pk), "userId": "u-4", "deviceId": None, "regionId": "eu-west",
        # Above 2^32: the real file's counter is kept whole.
        "bytesIn": 24289622392, "bytesOut": 70914674697, "connectorName": "vpn-real", "userName": "dana",
        "deviceName": "laptop-4", "clientIp": "0.0.0.0", "startDateTime": "2017-03-17T10:16:29.000Z",
        "vpnIpv4": "0.0.0.0", "networkName": "office", "regionName": "eu-west", "connectionStatus": "ACTIVE",
    }
    assert len(sessions) == 28


def test_the_token_takes_form_data_and_credentials_in_the_body(live_server, application):
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                   "client_secret": CLIENT_SECRET}).encode()
    status, _, body = raw(live_server, "POST", "/api/v1/oauth/token", body=form,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and json.loads(body)["scope"] == "read"
    as_json = json.dumps({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                          "client_secret": CLIENT_SECRET}).encode()
    for content_type in ("application/json", "text/plain", None):
        headers = {"Content-Type": content_type} if content_type else {}
        status, _, body = raw(live_server, "POST", "/api/v1/oauth/token", body=as_json, headers=headers)
        assert status == 200, (content_type, body)
    # The beta endpoint is the same one.
    assert go_client_token(live_server, "/api/beta/oauth/token")["token_type"] == "bearer"


@pytest.mark.parametrize(("body", "headers", "status", "error"), [
    (b"{not json", {}, 400, "invalid_request"),
    (b'["client_credentials"]', {}, 400, "invalid_request"),
    (b'{"grant_type": 5}', {}, 400, "invalid_request"),
    (b"grant_type=client_credentials", {"Content-Type": "multipart/form-data"}, 400, "invalid_request"),
    (b'{"grant_type": "client_credentials"}', {"Authorization": basic(secret="wrong")}, 401, "invalid_client"),
    (b'{"grant_type": "urn:example:unknown"}', {"Authorization": basic()}, 400, "unsupported_grant_type"),
])
def test_a_bad_token_call_is_an_oauth_error(live_server, application, body, headers, status, error):
    got, _, response = raw(live_server, "POST", "/api/v1/oauth/token", body=body, headers=headers)
    assert (got, json.loads(response)["error"]) == (status, error)


def test_v1_sessions_errors_keep_the_sessions_shape_not_the_monitors(client, viewer_client, db):
    response = viewer_client.get("/api/v1/sessions?size=0")
    assert response.status_code == 400
    assert response.json() == {"status": 400, "error": "Bad Request",
                               "message": "Invalid value for 'size': must be between 1 and 100 (got '0')."}
    assert client.get("/api/v1/sessions?size=1").status_code == 401
    # The OpenVPN monitor's /api/v1 paths are untouched.
    assert viewer_client.get("/api/v1/clients").json()["success"] is True


def test_gdpr_mode_masks_the_client_and_tunnel_addresses_and_leaves_out_the_user_name(viewer_client, gdpr_on):
    server = VpnServer.objects.create(name="vpn", status_file="/nonexistent")
    now = timezone.now()
    services.record_poll(server, parse_status(status2(now, [("alice", 7, now - dt.timedelta(minutes=3), 1, 2,
                                                              "10.8.0.9")])))
    session = viewer_client.get("/api/v1/sessions?size=1").json()["sessions"][0]
    assert (session["clientIp"], session["userName"], session["vpnIpv4"]) == ("198.51.100.0", None, "10.8.0.0")


def test_the_schema_documents_v1_sessions_and_its_token(viewer_client):
    schema = viewer_client.get("/api/schema/?format=json").json()
    sessions = schema["paths"]["/api/v1/sessions"]["get"]
    assert {"size", "cursor", "startDate", "endDate", "status", "returnOnlyNew"} <= {
        p["name"] for p in sessions["parameters"]}
    properties = schema["components"]["schemas"]["SessionV1"]["properties"]
    assert set(V1_FIELDS) == set(properties)
    token = schema["paths"]["/api/v1/oauth/token"]["post"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(token["requestBody"]["content"])
