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


def test_a_large_table_list_counts_at_most_its_cap_unless_an_unfiltered_count_is_cheap(tmp_path):
    from flowreports.models import FlowReport
    from flowreports.tests.conftest import flow
    from proxylogs import services
    from proxylogs.models import ProxyLogEntry
    from vpnmonitor.admin import LargeTablePaginator

    class Paginator(LargeTablePaginator):
        CAP = 3

    for minute in range(5):
        flow(source_ip="192.0.2.1", destination_ip="10.8.0.3", protocol=6 if minute < 4 else 17,
             start=f"2025-02-22T10:0{minute}:00")
    flows = FlowReport.objects.order_by("-start_time")
    assert Paginator(flows, 2).count == 3
    assert Paginator(flows.filter(protocol=17), 2).count == 1
    assert Paginator(flows.filter(protocol=6), 2).num_pages == 2

    log = tmp_path / "access.log"
    log.write_text("".join(f"1795335350.{i:03d} 2 10.0.0.{i} TCP_MISS/200 626 GET http://a.example/ - "
                           "HIER_DIRECT/192.0.2.8 text/html\n" for i in range(5)))
    services.import_source(services.source_for_path(log))
    entries = ProxyLogEntry.objects.order_by("-timestamp", "-id")
    # The unfiltered count is a sum over the hourly rollup, so it is exact however large the table.
    assert Paginator(entries, 2).count == 5
    assert Paginator(entries.filter(client_ip="10.0.0.1"), 2).count == 1
    assert Paginator(entries.filter(http_status=200), 2).count == 3
