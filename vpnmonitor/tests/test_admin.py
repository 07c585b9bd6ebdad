"""Every admin page an operator opens renders on seeded data (changelists, change and add forms)."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_data(client, django_user_model):
    call_command("seed_demo", "--clients", "3", "--days", "1", "--flows", "50", "--log-lines", "50")
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    return client


def test_every_admin_changelist_and_first_change_form_renders(admin_client_with_data):
    client = admin_client_with_data
    checked = 0
    for model, model_admin in admin.site._registry.items():
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        response = client.get(reverse(f"admin:{info}_changelist"))
        assert response.status_code == 200, info
        # A page without a table (ingestion health) has a changelist and nothing else.
        first = model._default_manager.order_by("pk").first() if model._meta.managed else None
        if first is not None:
            response = client.get(reverse(f"admin:{info}_change", args=[first.pk]))
            assert response.status_code == 200, info
        if model_admin.has_add_permission(response.wsgi_request):
            assert client.get(reverse(f"admin:{info}_add")).status_code == 200, info
        checked += 1
    assert checked >= 20


def test_audit_events_cannot_be_edited_or_deleted_in_admin(admin_client_with_data):
    from vpnmonitor.models import AuditEvent

    event = AuditEvent.objects.first()
    response = admin_client_with_data.post(reverse("admin:vpnmonitor_auditevent_delete", args=[event.pk]),
                                           {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_creating_an_api_key_in_admin_shows_the_key_once(admin_client_with_data):
    from vpnmonitor.models import ApiKey

    response = admin_client_with_data.post(reverse("admin:vpnmonitor_apikey_add"),
                                           {"name": "worker-7", "role": "ingest", "tenant_user_id": "3"}, follow=True)
    shown = [str(m) for m in response.context["messages"] if "worker-7" in str(m)][0]
    plaintext = shown.rsplit(": ", 1)[1]
    key = ApiKey.objects.get(name="worker-7")
    assert (key.role, key.tenant_user_id) == ("ingest", 3)
    assert ApiKey.authenticate(plaintext) == key
