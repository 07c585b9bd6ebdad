"""GDPR mode: no endpoint of the proxy-logs API shows a client address unmasked, aggregates included."""

import pytest

from proxylogs.tests import logs_dataset

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    "/api/logs?limit=1000", "/api/logs/stats", "/api/logs/timeline", "/api/security/score",
    "/api/dashboard/summary", "/api/traffic/statistics", "/api/clients/statistics?limit=100",
    "/api/domains/statistics?limit=100", "/api/analytics/shadow-it", "/api/analytics/user-agents",
    "/api/analytics/file-extensions", "/api/analytics/top-domains", "/api/waf/stats", "/api/waf/categories",
    "/api/audit-log",
]


@pytest.fixture
def dataset(operator_client):
    logs_dataset.build()
    # An audit event carrying the caller's address (127.0.0.1 from the test client).
    operator_client.post("/api/logs/clear-old")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_endpoint_shows_a_client_address_in_gdpr_mode(viewer_client, dataset, gdpr_on, path):
    response = viewer_client.get(path)
    assert response.status_code == 200
    text = response.content.decode()
    for address in logs_dataset.CLIENTS + ["127.0.0.1"]:
        assert f'"{address}"' not in text, (path, address)


def test_logs_mask_ipv4_to_24_and_ipv6_to_48(viewer_client, dataset, gdpr_on):
    rows = viewer_client.get("/api/logs?sort=source_ip&order=asc").json()["data"]
    assert [row["client_ip"] for row in rows] == ["10.0.0.0"] * 6 + ["192.168.1.0", "2001:db8:1::"]


def test_client_statistics_group_by_masked_network(viewer_client, dataset, gdpr_on):
    stats = viewer_client.get("/api/clients/statistics").json()["data"]
    # 10.0.0.5, .6 and .7 are one /24: one row, their requests summed, not three rows that look alike.
    assert stats["clients"][0] == {"client_ip": "10.0.0.0", "ip_address": "10.0.0.0", "requests": 6, "bytes": 7350,
                                   "blocked": 2, "last_seen": stats["clients"][0]["last_seen"], "status": "Active"}
    assert [row["client_ip"] for row in stats["clients"]] == ["10.0.0.0", "192.168.1.0", "2001:db8:1::"]


def test_dashboard_masks_top_clients_and_recent_blocks(viewer_client, dataset, gdpr_on):
    summary = viewer_client.get("/api/dashboard/summary").json()["data"]
    assert summary["top_clients"][0]["client_ip"] == "10.0.0.0"
    assert {row["client_ip"] for row in summary["recent_blocks"]} == {"10.0.0.0", "2001:db8:1::"}


def test_audit_log_masks_the_callers_address(viewer_client, dataset, gdpr_on):
    assert viewer_client.get("/api/audit-log").json()["data"][0]["client_address"] == "127.0.0.0"


def test_audit_log_masks_addresses_in_targets_and_details(viewer_client, gdpr_on):
    from vpnmonitor.models import AuditEvent

    AuditEvent.objects.create(user="root", action="subscriberprefix.update", target="2001:db8:77:1::/64",
                              details={"changes": {"cidr": {"before": "100.64.0.7/32", "after": "2001:db8:77:1::/64"}},
                                       "peer": "192.0.2.141:5000", "server": "vpn-eu-1"})
    row = viewer_client.get("/api/audit-log").json()["data"][0]
    assert row["target"] == "2001:db8:77::/64"
    assert row["detail_fields"] == {"changes": {"cidr": {"before": "100.64.0.0/32", "after": "2001:db8:77::/64"}},
                                    "peer": "192.0.2.0:5000", "server": "vpn-eu-1"}
    assert "100.64.0.7" not in row["details"] and "192.0.2.141" not in row["details"]
    assert "peer=192.0.2.0:5000" in row["details"] and "server=vpn-eu-1" in row["details"]


def test_without_gdpr_mode_addresses_are_shown(viewer_client, dataset):
    assert viewer_client.get("/api/clients/statistics").json()["data"]["clients"][0]["client_ip"] == "10.0.0.5"
