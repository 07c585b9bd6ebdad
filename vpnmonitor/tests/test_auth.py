"""Every authentication method, the 401 shapes, and the role rules."""

import base64

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("vpnmonitor.tests.urls")]


def test_missing_credentials_are_401_in_each_family_shape(api_client):
    flows = api_client.get("/t/flows")
    assert flows.status_code == 401
    assert flows.json() == {"error": "Authentication credentials were not provided."}
    assert flows["WWW-Authenticate"].startswith("Bearer")

    logs = api_client.get("/t/logs").json()
    assert logs == {"status": "error", "message": "Authentication credentials were not provided."}

    monitor = api_client.get("/t/monitor").json()
    assert monitor == {"success": False, "error": "Authentication credentials were not provided."}

    analytics = api_client.get("/t/analytics").json()
    assert analytics["message"] == "Authentication credentials were not provided."
    assert analytics["path"] == "/t/analytics"
    assert analytics["timestamp"].endswith("Z")

    sessions = api_client.get("/t/sessions?size=1").json()
    assert sessions == {
        "status": 401, "error": "Unauthorized", "message": "Authentication credentials were not provided.",
    }


def test_session_login_reads(client, viewer_user):
    client.force_login(viewer_user)
    assert client.get("/t/flows").status_code == 200


def test_http_basic_reads_and_a_wrong_password_is_401(api_client, viewer_user):
    good = base64.b64encode(b"viewer:pw-viewer").decode()
    assert api_client.get("/t/flows", HTTP_AUTHORIZATION=f"Basic {good}").status_code == 200
    bad = base64.b64encode(b"viewer:wrong").decode()
    response = api_client.get("/t/flows", HTTP_AUTHORIZATION=f"Basic {bad}")
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid username/password."}


def test_jwt_obtain_refresh_and_use(api_client, viewer_user):
    tokens = api_client.post("/api/auth/token", {"username": "viewer", "password": "pw-viewer"}, format="json").json()
    assert set(tokens) == {"access", "refresh"}
    assert api_client.get("/t/flows", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").status_code == 200

    refreshed = api_client.post("/api/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json").json()
    assert api_client.get("/t/logs", HTTP_AUTHORIZATION=f"Bearer {refreshed['access']}").status_code == 200


def test_a_tampered_jwt_is_401(api_client, viewer_user):
    access = api_client.post("/api/auth/token", {"username": "viewer", "password": "pw-viewer"},
                             format="json").json()["access"]
    header, payload, signature = access.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    response = api_client.get("/t/flows", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert "token" in response.json()["error"].lower()


def _oauth_application(user=None):
    from oauth2_provider.models import Application

    secret = "s3cret-client-secret"
    app = Application.objects.create(
        name="reporting", client_id="reporting-client", client_secret=secret, user=user,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    return app, secret


def test_oauth2_client_credentials_token_reads(api_client, viewer_user):
    _, secret = _oauth_application(viewer_user)
    basic = base64.b64encode(f"reporting-client:{secret}".encode()).decode()
    response = api_client.post(
        "/api/beta/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 200, response.content
    token = response.json()
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 3600
    assert api_client.get("/t/flows", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 200
    assert api_client.get("/t/flows", HTTP_AUTHORIZATION="Bearer not-a-real-token").status_code == 401


def test_oauth2_token_with_wrong_client_secret_is_refused(api_client):
    _oauth_application()
    basic = base64.b64encode(b"reporting-client:wrong").decode()
    response = api_client.post(
        "/api/beta/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_api_key_reads_and_an_unknown_or_revoked_key_is_401(api_client, make_api_key):
    from vpnmonitor.models import ApiKey

    plaintext = make_api_key("viewer")
    assert api_client.get("/t/flows", HTTP_X_API_KEY=plaintext).status_code == 200
    assert ApiKey.objects.get().last_used_at is not None

    wrong = plaintext[:-4] + "AAAA"
    response = api_client.get("/t/flows", HTTP_X_API_KEY=wrong)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or revoked API key."}

    ApiKey.objects.get().revoke()
    assert api_client.get("/t/flows", HTTP_X_API_KEY=plaintext).status_code == 401


def test_only_the_hash_of_a_key_is_stored(make_api_key):
    from vpnmonitor.models import ApiKey

    plaintext = make_api_key("viewer")
    stored = ApiKey.objects.get()
    assert plaintext.split("_", 2)[2] not in (stored.key_hash, stored.key_id)
    assert stored.key_hash == ApiKey.hash_secret(plaintext.split("_", 2)[2])


def test_viewer_gets_403_on_an_operator_action_and_operator_succeeds(viewer_client, key_client, operator_client):
    response = viewer_client.post("/t/operate")
    assert response.status_code == 403
    assert response.json() == {"error": "This action needs the operator role."}
    assert key_client("viewer").post("/t/operate").status_code == 403
    assert key_client("operator").post("/t/operate").json() == {"result": {"message": "done"}}
    assert operator_client.post("/t/operate").status_code == 200


def test_ingest_keys_may_only_ingest(key_client, viewer_client):
    ingest = key_client("ingest")
    assert ingest.post("/t/ingest").status_code == 204
    assert ingest.get("/t/flows").status_code == 403
    assert ingest.post("/t/operate").status_code == 403
    assert viewer_client.post("/t/ingest").status_code == 403
    assert key_client("operator").post("/t/ingest").status_code == 204


def test_health_needs_no_credentials(api_client):
    response = api_client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_createapikey_prints_a_working_key_once(api_client, capsys):
    from django.core.management import call_command

    call_command("createapikey", "proxy-worker-1", "--role", "ingest", "--tenant", "7")
    plaintext = capsys.readouterr().out.strip()
    from vpnmonitor.models import ApiKey

    key = ApiKey.objects.get(name="proxy-worker-1")
    assert (key.role, key.tenant_user_id) == ("ingest", 7)
    assert api_client.post("/t/ingest", HTTP_X_API_KEY=plaintext).status_code == 204
