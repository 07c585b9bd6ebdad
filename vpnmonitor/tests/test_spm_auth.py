"""Sign-in, refresh and liveness as secure-proxy-manager's web UI calls them (its Login page and sidebar)."""

import json

import pytest
import time_machine
from django.utils import timezone

from vpnmonitor.models import AuditEvent

pytestmark = pytest.mark.django_db


def login(client, username="viewer", password="pw-viewer", **extra):
    return client.post("/api/auth/login", {"username": username, "password": password}, format="json", **extra)


def test_it_signs_in_with_tokens_the_api_accepts(api_client, viewer_user):
    response = login(api_client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "access_token", "refresh_token", "token_type"}
    assert (body["status"], body["token_type"]) == ("success", "Bearer")
    assert all(isinstance(body[key], str) and body[key].count(".") == 2 for key in ("access_token", "refresh_token"))
    # What the UI does next: every request with the access token.
    summary = api_client.get("/api/dashboard/summary", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert summary.status_code == 200 and summary.json()["status"] == "success"
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.user, event.target, event.client_address) == ("viewer", "viewer", "127.0.0.1")


def test_a_wrong_password_is_a_401_in_its_shape_and_audited(api_client, viewer_user):
    response = login(api_client, password="wrong")
    assert response.status_code == 401
    assert response.json() == {"status": "error", "detail": "incorrect username or password"}
    assert response["WWW-Authenticate"].startswith("Bearer")
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert (event.target, event.details) == (
        "viewer", {"reason": "bad_credentials", "via": "password", "path": "/api/auth/login"})
    # The Audit page lists it with its details as text.
    listed = api_client.get("/api/audit-log", HTTP_AUTHORIZATION=f"Bearer {login(api_client).json()['access_token']}")
    failed = next(row for row in listed.json()["data"] if row["action"] == "auth.login_failed")
    # key=value pairs; PostgreSQL's jsonb keeps its own key order
    assert set(failed["details"].split(", ")) == {"reason=bad_credentials", "via=password", "path=/api/auth/login"}
    assert failed["username"] == "anonymous"


def test_the_jwt_token_endpoint_checks_and_audits_passwords_the_same_way(api_client, viewer_user):
    refused = api_client.post("/api/auth/token", {"username": "viewer", "password": "wrong"}, format="json")
    assert refused.status_code == 401
    tokens = api_client.post("/api/auth/token", {"username": "viewer", "password": "pw-viewer"}, format="json").json()
    assert set(tokens) == {"access", "refresh"}
    assert api_client.get("/api/logs/stats", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").status_code == 200
    assert list(AuditEvent.objects.order_by("id").values_list("action", "target")) == [
        ("auth.login_failed", "viewer"), ("auth.login", "viewer")]


def test_an_inactive_user_cannot_sign_in(api_client, viewer_user):
    viewer_user.is_active = False
    viewer_user.save()
    assert login(api_client).status_code == 401


@pytest.mark.parametrize(("body", "content_type"), [
    (json.dumps({"username": "viewer"}), "application/json"),
    (json.dumps({"username": "viewer", "password": 5}), "application/json"),
    (json.dumps(["viewer", "pw-viewer"]), "application/json"),
    ("{not json", "application/json"),
])
def test_a_bad_body_is_a_400_in_its_shape(api_client, viewer_user, body, content_type):
    response = api_client.post("/api/auth/login", body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["status"] == "error" and isinstance(response.json()["detail"], str)


def test_a_stale_bearer_token_does_not_stop_a_sign_in(api_client, viewer_user):
    response = login(api_client, HTTP_AUTHORIZATION="Bearer a.b.c")
    assert response.status_code == 200


def test_sign_in_is_throttled_with_a_429_in_its_shape(api_client, viewer_user, settings):
    from rest_framework.settings import api_settings

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "default": "3/min"}}
    api_settings.reload()
    try:
        with time_machine.travel(timezone.now(), tick=False):
            assert [login(api_client, password="wrong").status_code for _ in range(3)] == [401, 401, 401]
            limited = login(api_client)
        assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
        assert limited.json()["status"] == "error" and "throttled" in limited.json()["detail"]
    finally:
        api_settings.reload()


def test_refresh_gives_a_new_access_token(api_client, viewer_user):
    tokens = login(api_client).json()
    response = api_client.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["token_type"], body["refresh_token"]) == ("success", "Bearer", tokens["refresh_token"])
    assert api_client.get("/api/logs/stats", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "access"])
def test_refresh_with_anything_but_a_refresh_token_is_a_401(api_client, viewer_user, token):
    if token == "access":
        token = login(api_client).json()["access_token"]
    response = api_client.post("/api/auth/refresh", {"refresh_token": token}, format="json")
    assert response.status_code == 401
    assert response.json() == {"status": "error", "detail": "invalid or expired refresh token"}


def test_refresh_for_a_deleted_user_is_a_401(api_client, viewer_user):
    refresh = login(api_client).json()["refresh_token"]
    viewer_user.delete()
    assert api_client.post("/api/auth/refresh", {"refresh_token": refresh}, format="json").status_code == 401


def test_refresh_without_a_token_is_a_400(api_client):
    response = api_client.post("/api/auth/refresh", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"status": "error", "detail": "refresh_token required"}


def test_health_answers_without_credentials_for_the_sidebar_badge(api_client):
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer expired.token.here"}):
        response = api_client.get("/api/health", **headers)
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["runtime"]) == ("healthy", "python")
        assert isinstance(body["version"], str) and body["checks"]["database"] == "ok"


def test_the_schema_documents_sign_in_refresh_and_health(api_client, viewer_user):
    api_client.force_authenticate(viewer_user)
    paths = api_client.get("/api/schema/?format=json").json()["paths"]
    assert "post" in paths["/api/auth/login"] and "post" in paths["/api/auth/refresh"]
    assert {"200", "401", "429"} <= set(paths["/api/auth/login"]["post"]["responses"])
    assert "get" in paths["/api/health"]
