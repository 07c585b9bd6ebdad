"""Fixtures shared by every app's tests: API clients for each role, API keys, a clean cache."""

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_cache(request):
    if "django_db_setup" not in request.fixturenames and not request.node.get_closest_marker("django_db"):
        yield
        return
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # In CI an integration test must really run: a skip there (missing program) is a failure.
    if (
        report.skipped
        and os.environ.get("VPNMONITOR_REQUIRE_INTEGRATION") == "1"
        and item.get_closest_marker("integration")
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped but VPNMONITOR_REQUIRE_INTEGRATION=1: {report.longrepr}"


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


def _user(django_user_model, username, groups=(), **extra):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username=username, password="pw-" + username, **extra)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def viewer_user(db, django_user_model):
    return _user(django_user_model, "viewer", ["viewers"])


@pytest.fixture
def operator_user(db, django_user_model):
    return _user(django_user_model, "operator", ["operators"])


@pytest.fixture
def viewer_client(viewer_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(viewer_user)
    return client


@pytest.fixture
def operator_client(operator_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(operator_user)
    return client


@pytest.fixture
def make_api_key(db):
    """make_api_key(role, tenant=None) -> plaintext key."""
    from vpnmonitor.models import ApiKey

    counter = {"n": 0}

    def make(role="viewer", tenant=None):
        counter["n"] += 1
        _, plaintext = ApiKey.issue(f"test-{role}-{counter['n']}", role, tenant)
        return plaintext

    return make


@pytest.fixture
def key_client(make_api_key):
    """key_client(role, tenant=None) -> an APIClient sending X-API-Key for a new key of that role."""
    from rest_framework.test import APIClient

    def make(role="viewer", tenant=None):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=make_api_key(role, tenant))
        return client

    return make


@pytest.fixture
def gdpr_on(db):
    from vpnmonitor.models import PrivacySettings

    PrivacySettings(gdpr_mode=True).save()
    yield
    PrivacySettings(gdpr_mode=False).save()
