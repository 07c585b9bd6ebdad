"""Every sign-in path is throttled and locked out per address and per user name, cheaply, and audited."""

import base64
import datetime as dt

import pytest
import time_machine
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from rest_framework.test import APIClient

from vpnmonitor.models import AuditEvent

pytestmark = pytest.mark.django_db

ATTACKER, NEIGHBOUR = "203.0.113.66", "198.51.100.7"
# Ten seconds into a minute, so a throttle for the rest of the minute lasts 50 s.
START = dt.datetime(2026, 3, 2, 9, 0, 10, tzinfo=dt.UTC)


class CountingHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2 hasher, counting the hashes it computes (checks and dummy hashes alike).

    Fewer iterations than production's, so that the suite stays quick; the count is what matters.
    """

    computed = 0
    iterations = 1000

    def encode(self, password, salt, iterations=None):
        CountingHasher.computed += 1
        return super().encode(password, salt, iterations)


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    CountingHasher.computed = 0
    return CountingHasher


@pytest.fixture
def users(django_user_model):
    django_user_model.objects.create_user("viewer", password="pw-viewer-ok")
    django_user_model.objects.create_superuser("admin", password="pw-admin-ok")
    from oauth2_provider.models import Application

    Application.objects.create(
        name="reporting", client_id="reporting-client", client_secret="s3cret-client-secret",
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    CountingHasher.computed = 0


def _basic(name, password):
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def http_basic(name, password, address):
    return APIClient().get("/api/v1/flow-reports/retention", HTTP_AUTHORIZATION=_basic(name, password),
                           REMOTE_ADDR=address)


def jwt_token(name, password, address):
    return APIClient().post("/api/auth/token", {"username": name, "password": password}, format="json",
                            REMOTE_ADDR=address)


def _sign_in_page(url):
    def sign_in(name, password, address):
        return APIClient().post(url, {"username": name, "password": password}, format="multipart",
                                REMOTE_ADDR=address, HTTP_ACCEPT="text/html,application/xhtml+xml")
    return sign_in


def oauth_token(name, password, address):
    return APIClient().post("/api/beta/oauth/token", {"grant_type": "client_credentials"}, format="multipart",
                            HTTP_AUTHORIZATION=_basic(name, password), REMOTE_ADDR=address)


def oauth_token_body_secret(name, password, address):
    return APIClient().post(
        "/api/beta/oauth/token",
        {"grant_type": "client_credentials", "client_id": name, "client_secret": password},
        format="multipart", REMOTE_ADDR=address,
    )


# (sign-in, a name and its secret, how a good sign-in answers, how a bad one answers, the 429 body's message key)
PATHS = {
    "http-basic": (http_basic, "viewer", "pw-viewer-ok", 200, 401, "error"),
    "jwt": (jwt_token, "viewer", "pw-viewer-ok", 200, 401, "detail"),
    "admin-page": (_sign_in_page("/admin/login/"), "admin", "pw-admin-ok", 302, 200, None),
    "site-page": (_sign_in_page("/accounts/login/"), "viewer", "pw-viewer-ok", 302, 200, None),
    "browsable-api-page": (_sign_in_page("/api-auth/login/"), "viewer", "pw-viewer-ok", 302, 200, None),
    "oauth-basic": (oauth_token, "reporting-client", "s3cret-client-secret", 200, 401, "detail"),
    "oauth-body": (oauth_token_body_secret, "reporting-client", "s3cret-client-secret", 200, 401, "detail"),
}


def locked_message(response, key):
    if key is None:
        assert response["Content-Type"].startswith("text/html")
        return response.content.decode()
    return response.json()[key]


@pytest.mark.parametrize("path", PATHS)
def test_five_failures_in_a_minute_throttle_the_address_and_the_name_with_retry_after(users, path):
    sign_in, name, secret, good, bad, key = PATHS[path]
    with time_machine.travel(START, tick=False):
        assert sign_in(name, secret, ATTACKER).status_code == good
        for _ in range(5):
            assert sign_in(name, "wrong", ATTACKER).status_code == bad
        hashes = CountingHasher.computed
        for secret_tried in ("wrong", secret):
            refused = sign_in(name, secret_tried, ATTACKER)
            assert refused.status_code == 429
            assert refused["Retry-After"] == "50"
            assert "Too many failed sign-in attempts" in locked_message(refused, key)
        assert CountingHasher.computed == hashes  # refused without hashing anything

    failed = AuditEvent.objects.filter(action="login.failed")
    assert failed.count() == 5
    assert set(failed.values_list("user", "client_address")) == {(name, ATTACKER)}
    locks = AuditEvent.objects.filter(action="login.locked").order_by("id")
    assert [(event.details["scope"], event.details["seconds"], event.details["failures"]) for event in locks] == [
        ("address", 50, 5), ("username", 50, 5),
    ]

    with time_machine.travel(START + dt.timedelta(seconds=50), tick=False):
        assert sign_in(name, secret, ATTACKER).status_code == good  # the next minute starts afresh


@pytest.mark.parametrize("path", PATHS)
def test_another_address_is_not_locked_out_by_an_address_limit(users, path):
    sign_in, name, secret, good, bad, key = PATHS[path]
    with time_machine.travel(START, tick=False):
        # Five different names: the attacker's address reaches its limit, no name reaches its own.
        for other in ("alice", "bob", "carol", "dave", "erin"):
            assert sign_in(other, "guess", ATTACKER).status_code == bad
        refused = sign_in(name, secret, ATTACKER)
        assert refused.status_code == 429
        if key is not None:
            assert locked_message(refused, key).startswith("Too many failed sign-in attempts from this address.")
        assert sign_in(name, secret, NEIGHBOUR).status_code == good
    assert AuditEvent.objects.get(action="login.locked").details["scope"] == "address"


@pytest.mark.parametrize("path", ["http-basic", "jwt", "oauth-basic"])
def test_a_name_attacked_from_many_addresses_is_locked_for_every_address(users, path):
    sign_in, name, secret, good, bad, key = PATHS[path]
    with time_machine.travel(START, tick=False):
        for n in range(5):
            assert sign_in(name, "guess", f"192.0.2.{n + 1}").status_code == bad
        refused = sign_in(name, secret, NEIGHBOUR)
        assert refused.status_code == 429
        assert locked_message(refused, key).startswith("Too many failed sign-in attempts for this user name.")
        # Other names from that address are unaffected.
        other = "admin" if name == "viewer" else "viewer"
        if path == "oauth-basic":
            assert jwt_token("viewer", "pw-viewer-ok", NEIGHBOUR).status_code == 200
        else:
            assert sign_in(other, f"pw-{other}-ok", NEIGHBOUR).status_code == good


def test_twenty_failures_in_fifteen_minutes_lock_out_for_fifteen_minutes(users):
    for minute in range(4):
        with time_machine.travel(START + dt.timedelta(minutes=minute), tick=False):
            for _ in range(5):
                assert jwt_token("viewer", "wrong", ATTACKER).status_code == 401
    with time_machine.travel(START + dt.timedelta(minutes=3), tick=False):
        refused = jwt_token("viewer", "pw-viewer-ok", ATTACKER)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "900"
    locks = AuditEvent.objects.filter(action="login.locked", details__seconds=900)
    assert sorted(event.details["scope"] for event in locks) == ["address", "username"]
    assert all(event.details["failures"] == 20 for event in locks)
    with time_machine.travel(START + dt.timedelta(minutes=17), tick=False):
        assert jwt_token("viewer", "pw-viewer-ok", ATTACKER).status_code == 429
    with time_machine.travel(START + dt.timedelta(minutes=18, seconds=1), tick=False):
        assert jwt_token("viewer", "pw-viewer-ok", ATTACKER).status_code == 200
    assert AuditEvent.objects.filter(action="login.failed").count() == 20


def test_an_unknown_name_costs_one_hash_and_none_while_locked(users):
    with time_machine.travel(START, tick=False):
        for n in range(5):
            jwt_token("nobody", "guess", ATTACKER)
            assert CountingHasher.computed == n + 1
        for _ in range(20):
            assert jwt_token("nobody", "guess", ATTACKER).status_code == 429
        assert CountingHasher.computed == 5
    assert AuditEvent.objects.filter(action="login.failed").count() == 5


def test_names_are_counted_whatever_their_case(users):
    with time_machine.travel(START, tick=False):
        for name in ("Viewer", "VIEWER", "viewer", " viewer", "vIewer"):
            jwt_token(name, "guess", f"192.0.2.{len(name)}{name.count('V')}")
        assert jwt_token("viewer", "pw-viewer-ok", NEIGHBOUR).status_code == 429


def test_forged_forwarded_for_headers_do_not_move_the_address(users):
    with time_machine.travel(START, tick=False):
        for n in range(5):
            APIClient().post("/api/auth/token", {"username": f"u{n}", "password": "x"}, format="json",
                             REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        refused = APIClient().post("/api/auth/token", {"username": "viewer", "password": "pw-viewer-ok"},
                                   format="json", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert refused.status_code == 429
    assert set(AuditEvent.objects.values_list("client_address", flat=True)) == {ATTACKER}


def test_ipv6_addresses_of_one_slash_64_share_a_limit(users):
    with time_machine.travel(START, tick=False):
        for n in range(5):
            jwt_token(f"u{n}", "guess", f"2001:db8:1:2::{n + 1}")
        assert jwt_token("viewer", "pw-viewer-ok", "2001:db8:1:2:ffff::9").status_code == 429
        assert jwt_token("viewer", "pw-viewer-ok", "2001:db8:1:3::1").status_code == 200


def test_http_basic_failures_are_counted_before_the_request_throttles_run(users):
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            assert http_basic("viewer", "wrong", ATTACKER).json() == {"error": "Invalid username/password."}
        refused = http_basic("viewer", "pw-viewer-ok", ATTACKER)
    assert refused.json() == {
        "error": "Too many failed sign-in attempts from this address. Expected available in 50 seconds.",
    }


def test_the_oauth_token_endpoint_answers_429_as_json(users):
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            assert oauth_token("reporting-client", "wrong", ATTACKER).json()["error"] == "invalid_client"
        refused = oauth_token("reporting-client", "s3cret-client-secret", ATTACKER)
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": "Too many failed sign-in attempts from this address. Expected available in 50 seconds.",
    }
    assert set(AuditEvent.objects.filter(action="login.failed").values_list("user", "target")) == {
        ("reporting-client", "/api/beta/oauth/token"),
    }
