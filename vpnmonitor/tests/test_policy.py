"""The access policy: every URL of the site × method × credential answers as the policy table says.

The endpoints are read from the URL configuration, so a new URL without a line in the table fails here.
What each credential may do is written out below from the README's roles, not taken from the code.
"""

import base64

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from vpnmonitor.api.permissions import OWN_ACCESS_CONTROL, POLICY, PUBLIC, TENANT

pytestmark = pytest.mark.django_db

NONE, READ, OPERATE, INGEST = frozenset(), "read", "operate", "ingest"
ALL = frozenset({READ, OPERATE, INGEST})


def _walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            yield route, pattern, namespace


def _methods(callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return ["GET"]  # a function view (dashboard pages)
    names = getattr(view_class, "http_method_names", [])
    return sorted(m.upper() for m in names if m not in ("head", "options") and hasattr(view_class, m))


def site_endpoints():
    """[(view name, method, url, is an API view)] for every URL outside OWN_ACCESS_CONTROL."""
    found = []
    for route, pattern, namespace in _walk(get_resolver().url_patterns):
        if any(("/" + route).startswith(prefix) for prefix in OWN_ACCESS_CONTROL):
            continue
        assert pattern.name, f"/{route} has no URL name, so the policy table cannot list it"
        view_name = f"{namespace}{pattern.name}"
        kwargs = {name: "alice" for name in pattern.pattern.converters}
        url = reverse(view_name, kwargs=kwargs)
        callback = pattern.callback
        is_api = hasattr(callback, "cls")
        for method in _methods(callback):
            found.append((view_name, method, url, is_api))
    return found


def test_every_url_of_the_site_has_a_line_in_the_policy_table_and_no_line_is_stale():
    endpoints = {(name, method) for name, method, _, _ in site_endpoints()}
    listed = {(name, method) for name, rules in POLICY.items() for method in rules}
    assert sorted(endpoints - listed) == [], "endpoints missing from vpnmonitor.api.permissions.POLICY"
    assert sorted(listed - endpoints) == [], "POLICY lines for endpoints that do not exist"


# What the README's roles say each endpoint needs, written out by hand (not read from POLICY), so a wrong line in
# the table fails here even though the matrix below checks the site against the table.
README_WRITES = {
    ("flow-reports", "POST"): INGEST, ("traffic-ingest", "POST"): INGEST,
    ("flow-reports", "DELETE"): OPERATE, ("flow-reports-retention", "PUT"): OPERATE,
    ("proxylogs-clear", "POST"): OPERATE, ("proxylogs-clear-old", "POST"): OPERATE,
}
README_PUBLIC = {
    "health", "vpn-health-short", "liveness", "schema", "swagger-ui", "dashboard:favicon",
    "token_obtain_pair", "token_refresh", "auth-login", "auth-refresh",
    "oauth-token", "oauth-token-v1", "oauth2_provider:token", "oauth2_provider:revoke-token",
}
README_TENANT = {"traffic-ingest", "traffic-chart", "traffic-requests", "traffic-concurrency", "traffic-domains",
                 "traffic-errors", "traffic-websites"}


def test_the_policy_table_says_what_the_readmes_roles_say():
    for name, rules in POLICY.items():
        for method, rule in rules.items():
            needed = rule.removesuffix(TENANT)
            if (name, method) in README_WRITES:
                assert needed == README_WRITES[name, method], (name, method)
            elif name in README_PUBLIC:
                assert (method, needed) in {("GET", PUBLIC), ("POST", PUBLIC)}, (name, method)
            else:
                assert (method, needed) == ("GET", READ), (name, method)  # metrics, audit log, pages, data
            assert rule.endswith(TENANT) == (name in README_TENANT), (name, method)
    assert {name for name, _ in README_WRITES} | README_PUBLIC | README_TENANT <= set(POLICY)
    assert {(name, method) for name, rules in POLICY.items() for method in rules if method != "GET"} == (
        set(README_WRITES) | {(name, "POST") for name in README_PUBLIC if "POST" in POLICY[name]})


def test_an_endpoint_left_out_of_the_table_is_refused_to_everyone(settings, api_client, django_user_model):
    settings.ROOT_URLCONF = "vpnmonitor.tests.urls_unlisted"
    root = django_user_model.objects.create_superuser("root", password=None)
    api_client.force_authenticate(root)
    response = api_client.get("/unlisted")
    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint is not open to any credential."}


def _user(django_user_model, name, groups=(), superuser=False):
    from django.contrib.auth.models import Group

    make = django_user_model.objects.create_superuser if superuser else django_user_model.objects.create_user
    user = make(name, password=None)
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


def _oauth_token(owner, scope):
    from oauth2_provider.models import Application
    from rest_framework.test import APIClient

    client_id = f"app-{owner.username}"
    if not Application.objects.filter(client_id=client_id).exists():
        Application.objects.create(
            name=client_id, client_id=client_id, client_secret="client-secret-of-the-app", user=owner,
            client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        )
    basic = base64.b64encode(f"{client_id}:client-secret-of-the-app".encode()).decode()
    response = APIClient().post("/api/beta/oauth/token", {"grant_type": "client_credentials", "scope": scope},
                                HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == scope
    return response.json()["access_token"]


@pytest.fixture
def credentials(django_user_model, make_api_key):
    """{name: (APIClient, signs in by session, capabilities the README gives it)}; a tenant key's name says so."""
    from rest_framework.test import APIClient

    def session(user):
        client = APIClient()
        client.force_login(user)
        return client

    def header(**headers):
        client = APIClient()
        client.credentials(**headers)
        return client

    app_owner = _user(django_user_model, "app-owner", ["operators", "unmasked-ip"])
    root_owner = _user(django_user_model, "root-owner", superuser=True)
    return {
        "anonymous": (APIClient(), False, None),
        "user in no group": (session(_user(django_user_model, "nobody")), True, NONE),
        "viewers": (session(_user(django_user_model, "v", ["viewers"])), True, {READ}),
        "operators": (session(_user(django_user_model, "o", ["operators"])), True, ALL),
        "ingest group": (session(_user(django_user_model, "i", ["ingest"])), True, {INGEST}),
        "unmasked-ip only": (session(_user(django_user_model, "u", ["unmasked-ip"])), True, NONE),
        "superuser": (session(_user(django_user_model, "root", superuser=True)), True, ALL),
        "viewer key": (header(HTTP_X_API_KEY=make_api_key("viewer")), False, {READ}),
        "operator key": (header(HTTP_X_API_KEY=make_api_key("operator")), False, ALL),
        "ingest key": (header(HTTP_X_API_KEY=make_api_key("ingest")), False, {INGEST}),
        "tenant ingest key": (header(HTTP_X_API_KEY=make_api_key("ingest", 7)), False, {INGEST}),
        "tenant viewer key": (header(HTTP_X_API_KEY=make_api_key("viewer", 7)), False, {READ}),
        "oauth scope read": (header(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(app_owner, 'read')}"), False, {READ}),
        "oauth scope write": (header(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(app_owner, 'write')}"), False,
                              {OPERATE}),
        "oauth scope ingest": (header(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(app_owner, 'ingest')}"), False,
                               {INGEST}),
        "oauth all scopes, superuser's app": (
            header(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(root_owner, 'read write ingest')}"), False, NONE),
    }


def _refused(response):
    """How the policy refuses: 401 for a missing credential, 403, or the sign-in page for the dashboard."""
    if response.status_code == 403:
        return "403"
    if response.status_code == 401 and b"not provided" in response.content:
        return "401"
    if response.status_code == 302 and "/accounts/login/" in response.get("Location", ""):
        return "sign-in"
    return None


def test_every_endpoint_answers_every_credential_as_the_policy_table_says(credentials):
    wrong = []
    endpoints = site_endpoints()
    assert len(endpoints) >= 50
    for view_name, method, url, is_api in endpoints:
        rule = POLICY[view_name][method]
        required, tenant_open = rule.removesuffix(TENANT), rule.endswith(TENANT)
        for name, (client, by_session, capabilities) in credentials.items():
            response = client.generic(method, url, content_type="application/json")
            refused = _refused(response)
            signed_in = capabilities is not None and (is_api or by_session)
            if required == PUBLIC:
                expected = None
            elif not signed_in:
                expected = "401" if is_api else "sign-in"
            elif name.startswith("tenant") and not tenant_open:
                expected = "403"  # a tenant's key reaches only the endpoints that confine it to its tenant
            else:
                expected = None if required in capabilities else "403"
            if refused != expected or (expected is None and response.status_code == 401 and rule != PUBLIC):
                wrong.append(f"{method} {url} as {name}: {response.status_code}, expected "
                             f"{expected or 'not refused'}")
    assert wrong == []


def test_a_read_token_of_a_superusers_application_changes_no_retention_and_ingests_nothing(django_user_model):
    from rest_framework.test import APIClient

    from flowreports import services

    before = services.retention_days()
    owner = _user(django_user_model, "root-owner", superuser=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(owner, 'read')}")

    response = client.put("/api/v1/flow-reports/retention", {"days": 2}, format="json")
    assert response.status_code == 403
    assert response.json() == {"error": "This action needs the operator role."}
    assert services.retention_days() == before
    assert client.post("/api/v1/flow-reports", [], format="json").status_code == 403
    assert client.get("/api/v1/flow-reports").status_code == 403


def test_a_token_gets_the_overlap_of_its_scopes_and_its_owners_role(django_user_model):
    from rest_framework.test import APIClient

    viewer = _user(django_user_model, "reader", ["viewers"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(viewer, 'read write')}")

    assert client.get("/api/v1/flow-reports").status_code == 200
    assert client.put("/api/v1/flow-reports/retention", {"days": 2}, format="json").status_code == 403


def test_options_needs_what_the_endpoints_least_demanding_method_needs_and_a_missing_method_is_405(
        api_client, key_client, viewer_client):
    assert api_client.options("/api/v1/flow-reports").status_code == 401
    assert viewer_client.options("/api/v1/flow-reports").status_code == 200
    assert key_client("ingest").options("/api/v1/flow-reports").status_code == 403
    assert key_client("ingest").options("/analytics/ingest").status_code == 200
    assert viewer_client.options("/analytics/ingest").status_code == 403
    assert viewer_client.head("/api/v1/flow-reports").status_code == 200
    assert viewer_client.patch("/api/v1/flow-reports", {}, format="json").status_code == 405


def test_a_tenants_key_reads_only_the_proxy_analytics_of_its_tenant(key_client):
    tenant_key = key_client("viewer", 7)
    assert tenant_key.get("/analytics/domains?from=2026-01-01&to=2026-01-31").status_code == 200
    response = tenant_key.get("/api/logs")
    assert response.status_code == 403
    assert response.json()["message"] == "This key is confined to one tenant's proxy analytics (/analytics/...)."
    assert tenant_key.get("/metrics").status_code == 403


def test_a_read_token_sees_unmasked_addresses_only_when_its_applications_owner_may(django_user_model, gdpr_on):
    from rest_framework.test import APIClient

    from vpnmonitor.models import AuditEvent

    AuditEvent.objects.create(user="root", action="logs.clear", client_address="203.0.113.77")
    seen = {}
    for owner_groups in (["viewers"], ["viewers", "unmasked-ip"]):
        owner = _user(django_user_model, "-".join(owner_groups), owner_groups)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {_oauth_token(owner, 'read')}")
        seen[owner.username] = client.get("/api/audit-log").json()["data"][0]["client_address"]
    assert seen == {"viewers": "203.0.113.0", "viewers-unmasked-ip": "203.0.113.77"}
