"""/api/beta/sessions: windows, cursor paging under concurrent writes, OAuth2, throttling, GDPR, real signals."""

import base64
import datetime as dt
import shutil
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from monitoring import services
from monitoring.models import UserProfile, VpnServer, VpnSession
from monitoring.sources.status import parse_status
from monitoring.tests.factories import status2

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    return VpnServer.objects.create(name="vpn-eu", status_file="/nonexistent", region="eu-central",
                                    network_name="office")


def make_sessions(server, count, start, step=dt.timedelta(seconds=1), **extra):
    sessions = [
        VpnSession(server=server, common_name=f"user{i}", connection_key=f"k{start.isoformat()}{i}",
                   started_at=start + i * step, last_status_time=start + i * step, created_at=start + i * step,
                   updated_at=start + i * step, **extra)
        for i in range(count)
    ]
    return VpnSession.objects.bulk_create(sessions)


def page_all(client, query, on_page=None):
    seen, cursor, pages = [], None, 0
    while True:
        url = f"/api/beta/sessions?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [session["id"] for session in body["sessions"]]
        pages += 1
        if on_page:
            on_page(pages)
        cursor = body.get("nextCursor")
        if not cursor:
            return seen, pages


def test_paging_1000_new_sessions_returns_each_exactly_once_while_others_arrive_and_change(viewer_client, server):
    start = timezone.now() - dt.timedelta(hours=5)
    originals = make_sessions(server, 1000, start, step=dt.timedelta(seconds=15))

    def meanwhile(page):
        # New sessions arrive and old ones are updated between pages.
        make_sessions(server, 3, timezone.now(), step=dt.timedelta(microseconds=10))
        VpnSession.objects.filter(pk__in=[originals[page * 7].pk, originals[999 - page].pk]).update(
            updated_at=timezone.now(), bytes_received=page)

    seen, pages = page_all(viewer_client, "size=100&returnOnlyNew=true", meanwhile)
    assert len(seen) == len(set(seen))
    assert {str(s.pk) for s in originals} <= set(seen)
    assert len(seen) == 1000 + 3 * (pages - 1)  # the arrivals of all but the last page were returned once


def test_updated_window_returns_sessions_updated_in_it(viewer_client, server):
    now = timezone.now()
    old = make_sessions(server, 3, now - dt.timedelta(days=3))
    recent = make_sessions(server, 2, now - dt.timedelta(hours=2))
    VpnSession.objects.filter(pk=old[0].pk).update(updated_at=now - dt.timedelta(minutes=5))
    seen, _ = page_all(viewer_client, "size=10")
    assert seen == [str(recent[0].pk), str(recent[1].pk), str(old[0].pk)]
    only_new, _ = page_all(viewer_client, "size=10&returnOnlyNew=true")
    assert only_new == [str(recent[0].pk), str(recent[1].pk)]


def test_window_bounds_and_status_filter(viewer_client, server):
    base = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(base + dt.timedelta(days=1), tick=False):
        make_sessions(server, 3, base, step=dt.timedelta(minutes=1))
        VpnSession.objects.filter(common_name="user2").update(status="COMPLETED")
        query = "size=10&startDate=2026-11-20T10:00:00Z&endDate=2026-11-20T10:02:00Z"
        body = viewer_client.get(f"/api/beta/sessions?{query}").json()
        # startDate inclusive, endDate exclusive
        assert [s["userName"] for s in body["sessions"]] == ["user0", "user1"]
        assert "nextCursor" not in body
        completed = viewer_client.get("/api/beta/sessions?size=10&status=COMPLETED").json()
        assert [s["userName"] for s in completed["sessions"]] == ["user2"]
        empty = viewer_client.get("/api/beta/sessions?size=10&startDate=2026-11-20T10:02:00Z"
                                  "&endDate=2026-11-20T10:00:00Z").json()
        assert empty == {"sessions": []}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Invalid value for 'size': is required."),
        ("size=0", "Invalid value for 'size': must be between 1 and 100 (got '0')."),
        ("size=101", "Invalid value for 'size': must be between 1 and 100 (got '101')."),
        ("size=10&startDate=2020-01-01T00:00:00Z", "Invalid value for 'startDate': must not be more than 7 days ago "
                                                   "(got '2020-01-01T00:00:00Z')."),
        ("size=10&startDate=2026-11-20", "Invalid value for 'startDate': must be an ISO 8601 instant such as "
                                         "2022-11-08T14:53:43Z (got '2026-11-20')."),
        ("size=10&endDate=yesterday", "Invalid value for 'endDate': must be an ISO 8601 instant such as "
                                      "2022-11-08T14:53:43Z (got 'yesterday')."),
        ("size=10&status=RUNNING", "Invalid value for 'status': must be one of ACTIVE, COMPLETED, FAILED "
                                   "(got 'RUNNING')."),
        ("size=10&returnOnlyNew=maybe", "Invalid value for 'returnOnlyNew': must be true or false (got 'maybe')."),
        ("size=10&cursor=63527ce1d8e5811243db4902", "Invalid value for 'cursor': is not a cursor this API issued."),
    ],
)
def test_bad_parameters_are_400(viewer_client, server, query, message):
    response = viewer_client.get(f"/api/beta/sessions?{query}")
    assert response.status_code == 400
    assert response.json() == {"status": 400, "error": "Bad Request", "message": message}


def test_a_cursor_for_updated_sessions_is_refused_for_new_sessions(viewer_client, server):
    make_sessions(server, 3, timezone.now() - dt.timedelta(hours=1))
    cursor = viewer_client.get("/api/beta/sessions?size=1").json()["nextCursor"]
    response = viewer_client.get(f"/api/beta/sessions?size=1&returnOnlyNew=true&cursor={cursor}")
    assert response.status_code == 400


def test_oauth2_client_credentials_end_to_end(api_client, server, viewer_user):
    from oauth2_provider.models import Application

    Application.objects.create(name="siem", client_id="siem", client_secret="siem-secret-123", user=viewer_user,
                               client_type="confidential", authorization_grant_type="client-credentials")
    make_sessions(server, 2, timezone.now() - dt.timedelta(minutes=30))
    basic = base64.b64encode(b"siem:siem-secret-123").decode()
    token = api_client.post("/api/beta/oauth/token", {"grant_type": "client_credentials"},
                            HTTP_AUTHORIZATION=f"Basic {basic}").json()
    assert set(token) == {"access_token", "token_type", "expires_in", "scope"}
    assert token["token_type"] == "bearer"
    body = api_client.get("/api/beta/sessions?size=5", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").json()
    assert len(body["sessions"]) == 2
    assert api_client.get("/api/beta/sessions?size=5").status_code == 401


def test_throttled_client_gets_429_with_retry_after_60_then_succeeds(key_client, server, settings):
    from rest_framework.settings import api_settings

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "sessions": "2/min"}}
    api_settings.reload()
    try:
        client = key_client("viewer")
        with time_machine.travel(timezone.now(), tick=False) as traveller:
            assert [client.get("/api/beta/sessions?size=1").status_code for _ in range(2)] == [200, 200]
            limited = client.get("/api/beta/sessions?size=1")
            assert (limited.status_code, limited["Retry-After"]) == (429, "60")
            traveller.shift(60)
            assert client.get("/api/beta/sessions?size=1").status_code == 200
    finally:
        api_settings.reload()


def test_sessions_from_a_poll_sequence_fill_the_spec_object(viewer_client, server):
    UserProfile.objects.create(common_name="alice", user_id="u-17", user_name="alice.smith", email="alice@example.com",
                               first_name="Alice", last_name="Smith", user_group="staff")
    now = timezone.now().replace(microsecond=0)
    with time_machine.travel(now, tick=False) as traveller:
        services.record_poll(server, parse_status(status2(now - dt.timedelta(seconds=20),
                                                          [("alice", 1, now - dt.timedelta(seconds=60), 10, 20, "10.8.0.2")])))
        # alice reconnects under the same name (new Client ID and Connected Since), then disconnects
        services.record_poll(server, parse_status(status2(now - dt.timedelta(seconds=10),
                                                          [("alice", 2, now - dt.timedelta(seconds=12), 5, 6, "10.8.0.3")])))
        services.record_poll(server, parse_status(status2(now, [])))
        traveller.shift(1)  # endDate (default now) is exclusive
        body = viewer_client.get("/api/beta/sessions?size=10&returnOnlyNew=true").json()
    first, second = body["sessions"]
    assert (first["status"], second["status"]) == ("COMPLETED", "COMPLETED")
    assert first == {
        "bytesIn": 10, "bytesOut": 20, "clientUUID": None, "connectorId": str(server.pk), "connectorName": "vpn-eu",
        "deviceId": None, "deviceName": None, "disconnectReason": "connection closed", "email": "alice@example.com",
        "firstName": "Alice", "hostId": str(server.pk), "hostName": "vpn-eu", "id": first["id"], "lastName": "Smith",
        "networkId": "office", "networkName": "office", "osType": None, "osVersion": None, "protocol": None,
        "publicIp": "198.51.100.11", "region": "eu-central", "sessionDurationSeconds": 50,
        "sessionEndTime": (now - dt.timedelta(seconds=10)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sessionStartTime": (now - dt.timedelta(seconds=60)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "status": "COMPLETED", "tunnelIpV4": "10.8.0.2", "tunnelIpV6": None, "userGroup": "staff", "userId": "u-17",
        "userName": "alice.smith",
    }
    assert (second["tunnelIpV4"], second["bytesIn"], second["sessionDurationSeconds"]) == ("10.8.0.3", 5, 12)


def test_gdpr_mode_masks_public_and_tunnel_addresses_and_leaves_out_email_and_names(viewer_client, server, gdpr_on):
    UserProfile.objects.create(common_name="user0", email="u0@example.com", first_name="U", last_name="Zero")
    make_sessions(server, 1, timezone.now() - dt.timedelta(minutes=5), real_ip="203.0.113.77",
                  virtual_address="10.8.0.77", virtual_ipv6="2001:db8:5:6::1000")
    session = viewer_client.get("/api/beta/sessions?size=1").json()["sessions"][0]
    assert session["publicIp"] == "203.0.113.0"
    assert (session["tunnelIpV4"], session["tunnelIpV6"]) == ("10.8.0.0", "2001:db8:5::")
    assert (session["email"], session["firstName"], session["lastName"], session["userName"]) == (None,) * 4


def test_failed_sessions_come_from_a_real_openvpn_log_and_peer_info_fills_os(viewer_client, server, tmp_path):
    log = tmp_path / "openvpn.log"
    shutil.copy(FIXTURES / "openvpn-server.log", log)
    server.log_file = str(log)
    server.save()
    # The good client's connection, as the poll sees it (peer 127.0.0.1:45737 in the log).
    connected = dt.datetime(2026, 11, 23, 2, 57, 24, tzinfo=dt.UTC)
    services.record_poll(server, parse_status(status2(connected + dt.timedelta(seconds=5), [])))
    VpnSession.objects.create(server=server, common_name="user-alice", connection_key="alice", started_at=connected,
                              last_status_time=connected, real_ip="127.0.0.1", real_port=45737)
    counts = services.tail_server_log(server)
    assert counts["failed"] == 1 and counts["peer_info"] == 1
    again = services.tail_server_log(VpnServer.objects.get(pk=server.pk))
    assert again["lines"] == 0 and VpnSession.objects.filter(status="FAILED").count() == 1
    failed = VpnSession.objects.get(status="FAILED")
    assert (failed.common_name, failed.real_ip, failed.real_port, failed.disconnect_reason) == (
        "intruder", "127.0.0.1", 32990, "certificate rejected: certificate signature failure")
    alice = VpnSession.objects.get(common_name="user-alice")
    assert (alice.os_type, alice.os_version) == ("linux", "2.6.14")

    # Listed by when it was observed (now), whatever the log's own times were.
    body = viewer_client.get("/api/beta/sessions?size=10&status=FAILED&returnOnlyNew=false").json()
    assert [(s["status"], s["disconnectReason"], s["userName"]) for s in body["sessions"]] == [
        ("FAILED", "certificate rejected: certificate signature failure", "intruder")]
