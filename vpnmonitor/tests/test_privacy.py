import pytest

from vpnmonitor.privacy import mask_ip


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("192.0.2.123", "192.0.2.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("2001:db8:abcd:12:34::1", "2001:db8:abcd::"),
        ("2001:0db8:0001:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::"),
        ("::1", "::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:198.51.100.77", "::ffff:198.51.100.0"),
        (" 192.0.2.9 ", "192.0.2.0"),
        ("not-an-ip", "not-an-ip"),
        ("192.0.2.300", "192.0.2.300"),
        ("example.com:443", "example.com:443"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_ip_keeps_the_network_part_and_returns_anything_else_unchanged(value, masked):
    assert mask_ip(value) == masked


@pytest.mark.urls("vpnmonitor.tests.urls")
def test_masked_field_masks_only_in_gdpr_mode_and_not_for_permitted_users(
    api_client, viewer_user, django_user_model
):
    from django.contrib.auth.models import Group

    from vpnmonitor.models import AuditEvent, PrivacySettings

    AuditEvent.objects.create(user="x", action="a", client_address="203.0.113.77")
    api_client.force_authenticate(viewer_user)
    assert api_client.get("/t/logs").json()["data"][0]["client_address"] == "203.0.113.77"

    PrivacySettings(gdpr_mode=True).save()
    assert api_client.get("/t/logs").json()["data"][0]["client_address"] == "203.0.113.0"

    privileged = django_user_model.objects.create_user("dpo", password="x")
    privileged.groups.add(*Group.objects.filter(name__in=["viewers", "unmasked-ip"]))
    api_client.force_authenticate(privileged)
    assert api_client.get("/t/logs").json()["data"][0]["client_address"] == "203.0.113.77"
