"""GDPR mode in admin: staff without the unmasked-ip permission see masked addresses and cannot search by them."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from vpnmonitor.privacy import mask_host

pytestmark = pytest.mark.django_db

HOST = "alice-laptop.corp.example"
RAW = ("203.0.113.77", "10.8.0.66", "198.51.100.23", "192.0.2.141", "2001:db8:aa:bb::5", "203.0.113.78",
       "10.8.0.67", HOST)


@pytest.fixture
def records():
    from flowreports.models import FlowReport
    from flowreports.services import add_flows
    from monitoring.models import VpnClient, VpnServer, VpnSession
    from proxylogs.ingest.parse import parse_squid
    from proxylogs.models import ProxyLogEntry
    from proxylogs.services import store_records
    from vpnmonitor.models import AuditEvent

    now = timezone.now()
    server = VpnServer.objects.create(name="vpn-eu", status_file="/nonexistent")
    session = VpnSession.objects.create(
        server=server, common_name="alice", connection_key="k1", started_at=now, last_status_time=now,
        real_ip="203.0.113.77", real_address="203.0.113.77:51820", virtual_address="10.8.0.66",
        virtual_ipv6="2001:db8:aa:bb::5",
    )
    [flow] = add_flows([FlowReport(
        subscriber_id="alice", source_ip="10.8.0.66", source_port=40000, destination_ip="198.51.100.23",
        destination_port=443, protocol=6, packets=1, bytes=100, start_time=now - dt.timedelta(minutes=1),
        end_time=now,
    )])
    store_records([parse_squid(f"{now.timestamp():.3f} 1 {client} TCP_MISS/200 10 GET http://example.com/ - "
                               "HIER_DIRECT/- -") for client in ("192.0.2.141", HOST)])
    entry = ProxyLogEntry.objects.get(client_ip="192.0.2.141")
    named = ProxyLogEntry.objects.get(client_host=HOST)
    assert (entry.client_network, named.client_network) == ("192.0.2.0", mask_host(HOST))
    vpn_client = VpnClient.objects.create(server=server, common_name="bob", real_address="203.0.113.78:1194",
                                          virtual_address="10.8.0.67")
    event = AuditEvent.objects.create(user="root", action="logs.clear", client_address="192.0.2.141")
    return {"vpnsession": session, "flowreport": flow, "proxylogentry": entry, "namedentry": named,
            "vpnclient": vpn_client, "auditevent": event}


def _staff(django_user_model, name, unmasked):
    user = django_user_model.objects.create_user(name, password=None, is_staff=True)
    codenames = ["view_vpnsession", "change_vpnsession", "view_vpnclient", "view_flowreport", "view_proxylogentry",
                 "view_auditevent"]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    if unmasked:
        user.groups.add(Group.objects.get(name="unmasked-ip"))
    return user


def _admin_url(obj, page):
    info = f"{obj._meta.app_label}_{obj._meta.model_name}"
    return reverse(f"admin:{info}_{page}", args=[obj.pk] if page == "change" else [])


def test_staff_without_the_permission_see_only_masked_addresses_in_lists_and_detail_pages(
        client, django_user_model, records, gdpr_on):
    client.force_login(_staff(django_user_model, "clerk", unmasked=False))
    for obj in records.values():
        for page in ("changelist", "change"):
            response = client.get(_admin_url(obj, page))
            assert response.status_code == 200, (obj._meta.model_name, page)
            html = response.content.decode()
            assert not [raw for raw in RAW if raw in html], (obj._meta.model_name, page)
    sessions = client.get(_admin_url(records["vpnsession"], "changelist")).content.decode()
    assert "203.0.113.0" in sessions and "10.8.0.0" in sessions
    detail = client.get(_admin_url(records["vpnsession"], "change")).content.decode()
    assert "203.0.113.0:51820" in detail and "2001:db8:aa::" in detail
    entries = client.get(_admin_url(records["proxylogentry"], "changelist")).content.decode()
    assert "192.0.2.0" in entries and mask_host(HOST) in entries
    assert mask_host(HOST) in client.get(_admin_url(records["namedentry"], "change")).content.decode()
    assert "10.8.0.0" in client.get(_admin_url(records["vpnclient"], "changelist")).content.decode()
    assert "203.0.113.0:1194" in client.get(_admin_url(records["vpnclient"], "change")).content.decode()
    flows = client.get(_admin_url(records["flowreport"], "changelist")).content.decode()
    assert "10.8.0.0" in flows and "198.51.100.0" in flows


def test_staff_without_the_permission_cannot_search_by_address_or_save_a_masked_record(
        client, django_user_model, records, gdpr_on):
    from monitoring.models import VpnSession

    client.force_login(_staff(django_user_model, "clerk", unmasked=False))
    listing = client.get(_admin_url(records["vpnsession"], "changelist"), {"q": "203.0.113.77"})
    assert listing.context["cl"].result_count == 0
    assert client.get(_admin_url(records["vpnsession"], "changelist"), {"q": "alice"}).context["cl"].result_count == 1

    response = client.post(_admin_url(records["vpnsession"], "change"), {"common_name": "alice"})
    assert response.status_code == 403
    assert VpnSession.objects.get().real_ip == "203.0.113.77"


def test_staff_with_the_permission_see_and_search_raw_addresses(client, django_user_model, records, gdpr_on):
    client.force_login(_staff(django_user_model, "auditor", unmasked=True))
    listing = client.get(_admin_url(records["vpnsession"], "changelist"), {"q": "203.0.113.77"})
    assert listing.context["cl"].result_count == 1
    assert "10.8.0.66" in listing.content.decode()
    assert "198.51.100.23" in client.get(_admin_url(records["flowreport"], "change")).content.decode()


def test_without_gdpr_mode_staff_see_raw_addresses(client, django_user_model, records):
    client.force_login(_staff(django_user_model, "clerk", unmasked=False))
    assert "192.0.2.141" in client.get(_admin_url(records["proxylogentry"], "changelist")).content.decode()
    listing = client.get(_admin_url(records["vpnsession"], "changelist"), {"q": "203.0.113.77"})
    assert listing.context["cl"].result_count == 1


def test_addresses_in_audit_targets_and_details_are_masked_for_staff_without_the_permission(
        client, django_user_model, gdpr_on):
    from vpnmonitor.models import AuditEvent

    event = AuditEvent.objects.create(user="root", action="subscriberprefix.create", target="100.64.0.7/32",
                                      details={"changes": {"cidr": {"after": "100.64.0.7/32"},
                                                           "subscriber_id": {"after": "alice"}},
                                               "peer": "192.0.2.141:5000"})
    client.force_login(_staff(django_user_model, "clerk", unmasked=False))
    for page in ("changelist", "change"):
        response = client.get(_admin_url(event, page))
        assert response.status_code == 200
        html = response.content.decode()
        assert "100.64.0.7" not in html and "192.0.2.141" not in html, page
        assert "100.64.0.0/32" in html, page
    assert "alice" in client.get(_admin_url(event, "change")).content.decode()  # the rest of the details stays
    listing = client.get(_admin_url(event, "changelist"), {"q": "100.64.0.7"})
    assert listing.context["cl"].result_count == 0  # the target is not searched while it is masked
