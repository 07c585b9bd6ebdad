"""Every sign-in path is throttled and locked out per address and per user name, cheaply, and audited."""

import base64
import datetime as dt

import pytest
import time_machine
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.urls import resolve
from rest_framework.test import APIClient

from vpnmonitor.api import families
from vpnmonitor.models import AuditEvent

pytestmark = pytest.mark.django_db
LOGIN_EVENTS = AuditEvent.objects.filter(action__in=["auth.login_failed", "auth.login_locked"])

ATTACKER, NEIGHBOUR = "203.0.113.66", "198.51.100.7"
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
    from django.contrib.auth.models import Group

    django_user_model.objects.create_user("viewer", password="pw-viewer-ok").groups.add(
        Group.objects.get(name="viewers"))
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


# (sign-in, a name and its secret, how a good sign-in answers, how a bad one answers, the URL whose family
# shapes the 429, or None for an HTML page)
PATHS = {
    "http-basic": (http_basic, "viewer", "pw-viewer-ok", 200, 401, "/api/v1/flow-reports/retention"),
    "jwt": (jwt_token, "viewer", "pw-viewer-ok", 200, 401, "/api/auth/token"),
    "admin-page": (_sign_in_page("/admin/login/"), "admin", "pw-admin-ok", 302, 200, None),
    "site-page": (_sign_in_page("/accounts/login/"), "viewer", "pw-viewer-ok", 302, 200, None),
    "browsable-api-page": (_sign_in_page("/api-auth/login/"), "viewer", "pw-viewer-ok", 302, 200, None),
    "oauth-basic": (oauth_token, "reporting-client", "s3cret-client-secret", 200, 401, "/api/beta/oauth/token"),
    "oauth-body": (oauth_token_body_secret, "reporting-client", "s3cret-client-secret", 200, 401,
                   "/api/beta/oauth/token"),
}


def locked_message(response, url):
    """The message of a 429, after checking that the body has its family's keys (an HTML page for browsers)."""
    if url is None:
        assert response["Content-Type"].startswith("text/html")
        return response.content.decode()
    family = getattr(resolve(url).func.view_class, "api_family", families.DEFAULT)
    expected = family.error("x", status=429, request=None)
    body = response.json()
    assert set(body) == set(expected), body
    return next(body[key] for key, value in expected.items() if value == "x")


def at(seconds):
    return time_machine.travel(START + dt.timedelta(seconds=seconds), tick=False)


@pytest.mark.parametrize("path", PATHS)
def test_failures_past_three_back_off_the_address_and_the_name_with_retry_after_and_no_hashing(users, path):
    sign_in, name, secret, good, bad, url = PATHS[path]
    with at(0):
        assert sign_in(name, secret, ATTACKER).status_code == good
        for _ in range(3):
            assert sign_in(name, "wrong", ATTACKER).status_code == bad
        assert sign_in(name, secret, ATTACKER).status_code == good  # three slips hold nobody up
        assert sign_in(name, "wrong", ATTACKER).status_code == bad
        refused = sign_in(name, secret, ATTACKER)
        assert (refused.status_code, refused["Retry-After"]) == (429, "1")
    with at(1):
        assert sign_in(name, "wrong", ATTACKER).status_code == bad
    with at(5):
        assert sign_in(name, "wrong", ATTACKER).status_code == bad
        hashes = CountingHasher.computed
        for secret_tried in ("wrong", secret):
            refused = sign_in(name, secret_tried, ATTACKER)
            assert refused.status_code == 429
            assert refused["Retry-After"] == "16"
            assert "Too many failed sign-in attempts" in locked_message(refused, url)
        assert CountingHasher.computed == hashes  # refused without hashing anything
    with at(20):
        assert sign_in(name, secret, ATTACKER).status_code == 429
    with at(21):
        assert sign_in(name, secret, ATTACKER).status_code == good

    failed = LOGIN_EVENTS.filter(action="auth.login_failed")
    assert failed.count() == 6
    assert set(failed.values_list("user", "target", "client_address")) == {("anonymous", name, ATTACKER)}


@pytest.mark.parametrize("path", PATHS)
def test_another_address_is_not_locked_out_by_an_address_limit(users, path):
    sign_in, name, secret, good, bad, url = PATHS[path]
    with at(0):
        # Four names, one failure each: the attacker's address is held up, no name is.
        for other in ("alice", "bob", "carol", "dave"):
            assert sign_in(other, "guess", ATTACKER).status_code == bad
        refused = sign_in(name, secret, ATTACKER)
        assert (refused.status_code, refused["Retry-After"]) == (429, "1")
        if url is not None:
            assert locked_message(refused, url).startswith("Too many failed sign-in attempts from this address.")
        assert sign_in(name, secret, NEIGHBOUR).status_code == good
    assert sorted(LOGIN_EVENTS.values_list("target", flat=True)) == ["alice", "bob", "carol", "dave"]


@pytest.mark.parametrize("path", ["http-basic", "jwt", "oauth-basic"])
def test_a_name_attacked_from_many_addresses_is_held_up_for_every_address(users, path):
    sign_in, name, secret, good, bad, url = PATHS[path]
    with at(0):
        for n in range(4):
            assert sign_in(name, "guess", f"192.0.2.{n + 1}").status_code == bad
        refused = sign_in(name, secret, NEIGHBOUR)
        assert (refused.status_code, refused["Retry-After"]) == (429, "1")
        assert locked_message(refused, url).startswith("Too many failed sign-in attempts for this user name.")
        # Other names from that address are unaffected.
        if path == "oauth-basic":
            assert jwt_token("viewer", "pw-viewer-ok", NEIGHBOUR).status_code == 200
        else:
            other = "admin" if name == "viewer" else "viewer"
            assert sign_in(other, f"pw-{other}-ok", NEIGHBOUR).status_code == good


def backoff(failure):
    """Seconds refused after the given failure (the policy of vpnmonitor/logins.py)."""
    return 0 if failure <= 3 else min(4 ** (failure - 4), 60)


@pytest.mark.parametrize("path", PATHS)
def test_twenty_failures_lock_out_for_fifteen_minutes_and_are_audited(users, path):
    sign_in, name, secret, good, bad, url = PATHS[path]
    moment = 0
    for failure in range(1, 21):
        with at(moment):
            assert sign_in(name, "wrong", ATTACKER).status_code == bad
        last, moment = moment, moment + backoff(failure)
    with at(last):
        hashes = CountingHasher.computed
        refused = sign_in(name, secret, ATTACKER)
        assert CountingHasher.computed == hashes
    assert refused.status_code == 429
    assert refused["Retry-After"] == "900"
    locks = LOGIN_EVENTS.filter(action="auth.login_locked")
    assert sorted((event.details["scope"], event.details["failures"], event.details["seconds"]) for event in locks) \
        == [("address", 20, 900), ("username", 20, 900)]
    assert set(locks.values_list("target", "client_address")) == {(name, ATTACKER)}
    assert LOGIN_EVENTS.filter(action="auth.login_failed").count() == 20
    with at(last + 899):
        assert sign_in(name, secret, ATTACKER).status_code == 429
        assert sign_in(name, secret, NEIGHBOUR).status_code == 429  # the name is locked everywhere
    with at(last + 900):
        assert sign_in(name, secret, ATTACKER).status_code == good


def test_an_unknown_name_costs_one_hash_per_check_and_none_while_held_up(users):
    for n, moment in enumerate((0, 0, 0, 0, 1, 5, 21)):
        with at(moment):
            assert jwt_token("nobody", "guess", ATTACKER).status_code == 401
            assert CountingHasher.computed == n + 1
            if n >= 3:
                for _ in range(10):
                    assert jwt_token("nobody", "guess", ATTACKER).status_code == 429
                assert CountingHasher.computed == n + 1
    assert LOGIN_EVENTS.filter(action="auth.login_failed").count() == 7


def fail_four_times(names, addresses):
    for name, address in zip(names, addresses, strict=True):
        assert jwt_token(name, "guess", address).status_code == 401


def test_names_are_counted_whatever_their_case(users):
    with at(0):
        fail_four_times(["VIEWER", " Viewer", "viewer ", "vIEWER"], [f"192.0.2.{n}" for n in range(1, 5)])
        refused = jwt_token("viewer", "pw-viewer-ok", NEIGHBOUR)
    assert (refused.status_code, refused["Retry-After"]) == (429, "1")


def test_forged_forwarded_for_headers_do_not_move_the_address(users):
    with at(0):
        for n in range(4):
            APIClient().post("/api/auth/token", {"username": f"u{n}", "password": "x"}, format="json",
                             REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        refused = APIClient().post("/api/auth/token", {"username": "viewer", "password": "pw-viewer-ok"},
                                   format="json", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert refused.status_code == 429
    assert set(LOGIN_EVENTS.values_list("client_address", flat=True)) == {ATTACKER}


def test_behind_the_proxy_the_address_it_forwarded_counts(users, settings):
    from rest_framework.settings import api_settings

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def sign_in(name, password, forwarded):
        return APIClient().post("/api/auth/token", {"username": name, "password": password}, format="json",
                                REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    try:
        with at(0):
            for n in range(4):
                assert sign_in(f"u{n}", "x", f"10.0.0.{n}, {ATTACKER}").status_code == 401
            assert sign_in("viewer", "pw-viewer-ok", f"10.0.0.9, {ATTACKER}").status_code == 429
            assert sign_in("viewer", "pw-viewer-ok", NEIGHBOUR).status_code == 200
    finally:
        api_settings.reload()
    assert set(LOGIN_EVENTS.values_list("client_address", flat=True)) == {ATTACKER}


def test_ipv6_addresses_of_one_slash_64_share_a_limit(users):
    with at(0):
        fail_four_times(["u1", "u2", "u3", "u4"], [f"2001:db8:1:2::{n}" for n in range(1, 5)])
        assert jwt_token("viewer", "pw-viewer-ok", "2001:db8:1:2:ffff::9").status_code == 429
        assert jwt_token("viewer", "pw-viewer-ok", "2001:db8:1:3::1").status_code == 200


def test_ipv4_clients_of_a_dual_stack_socket_keep_their_own_limits(users):
    with at(0):
        fail_four_times(["u1", "u2", "u3", "u4"], [f"::ffff:{ATTACKER}"] * 4)
        assert jwt_token("viewer", "pw-viewer-ok", ATTACKER).status_code == 429
        assert jwt_token("viewer", "pw-viewer-ok", f"::ffff:{NEIGHBOUR}").status_code == 200


def test_http_basic_failures_are_counted_before_the_request_throttles_run(users):
    with at(0):
        for _ in range(4):
            assert http_basic("viewer", "wrong", ATTACKER).json() == {"error": "Invalid username/password."}
        refused = http_basic("viewer", "pw-viewer-ok", ATTACKER)
    assert refused.json() == {
        "error": "Too many failed sign-in attempts from this address. Expected available in 1 second.",
    }


def test_the_oauth_token_endpoint_answers_429_as_json(users):
    with at(0):
        for _ in range(4):
            assert oauth_token("reporting-client", "wrong", ATTACKER).json()["error"] == "invalid_client"
        refused = oauth_token("reporting-client", "s3cret-client-secret", ATTACKER)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"
    assert locked_message(refused, "/api/beta/oauth/token") == (
        "Too many failed sign-in attempts from this address. Expected available in 1 second."
    )
    failed = LOGIN_EVENTS.filter(action="auth.login_failed")
    assert set(failed.values_list("target", flat=True)) == {"reporting-client"}
    assert {(event.details["path"], event.details["via"]) for event in failed} == {
        ("/api/beta/oauth/token", "oauth client basic"),
    }


def test_callers_past_their_free_failures_take_turns_and_others_do_not_wait(users):
    from django.core.cache import cache

    from vpnmonitor.logins import SUSPECT_CHECK_KEY

    with at(0):
        fail_four_times(["u1", "u2", "u3", "u4"], [ATTACKER] * 4)
    with at(1):
        cache.set(SUSPECT_CHECK_KEY, "another check", timeout=10)  # a check of another such caller runs
        hashes = CountingHasher.computed
        waiting = jwt_token("viewer", "pw-viewer-ok", ATTACKER)
        assert (waiting.status_code, waiting["Retry-After"]) == (429, "1")
        assert locked_message(waiting, "/api/auth/token") == (
            "Too many failed sign-in attempts are being checked at once. Expected available in 1 second."
        )
        assert CountingHasher.computed == hashes
        assert jwt_token("viewer", "pw-viewer-ok", NEIGHBOUR).status_code == 200  # no failures: no turn to take
        cache.delete(SUSPECT_CHECK_KEY)
        assert jwt_token("viewer", "pw-viewer-ok", ATTACKER).status_code == 200
        assert cache.get(SUSPECT_CHECK_KEY) is None  # the turn is given back
