"""Clients logged by host name (Squid's log_fqdn, %>A): imported as given, counted everywhere, masked in GDPR mode."""

import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum

from proxylogs import services
from proxylogs.models import ProxyLogEntry
from proxylogs.tests.test_logs_gdpr import ENDPOINTS
from vpnmonitor.privacy import mask_host

pytestmark = pytest.mark.django_db

WORKSTATION = "ws-7.office.example"
PRINTER = "printer"


def line(seconds_ago, client, code, size, url):
    return (f"{time.time() - seconds_ago:.3f}      5 {client} {code} {size} GET {url} - HIER_DIRECT/192.0.2.8 "
            "text/html")


@pytest.fixture
def mixed_log(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("\n".join([
        line(300, WORKSTATION, "TCP_MISS/200", 1000, "http://a.example/"),
        line(240, WORKSTATION, "TCP_MISS/200", 2000, "http://a.example/news"),
        line(180, WORKSTATION, "TCP_DENIED/403", 3000, "http://blocked.example/"),
        line(120, "10.0.0.5", "TCP_MISS/200", 400, "http://a.example/"),
        line(60, PRINTER, "TCP_MISS/200", 50, "http://b.example/"),
    ]) + "\n")
    result = services.import_source(services.source_for_path(log))
    assert (result.imported, result.rejected) == (5, 0)
    return log


def test_host_name_clients_are_stored_as_given_beside_addresses(mixed_log):
    hosts = ProxyLogEntry.objects.exclude(client_host=None)
    assert sorted(hosts.values_list("client_host", flat=True)) == [PRINTER, WORKSTATION, WORKSTATION, WORKSTATION]
    assert set(hosts.values_list("client_ip", flat=True)) == {None}
    assert hosts.get(client_host=PRINTER).client_network == mask_host(PRINTER)
    assert ProxyLogEntry.objects.get(client_host=None).client_ip == "10.0.0.5"


def test_host_name_clients_count_in_every_statistic(viewer_client, mixed_log):
    clients = viewer_client.get("/api/clients/statistics").json()["data"]
    assert clients["unique_clients"] == 3
    assert [(row["client_ip"], row["requests"], row["bytes"], row["blocked"]) for row in clients["clients"]] == [
        (WORKSTATION, 3, 6000, 1), ("10.0.0.5", 1, 400, 0), (PRINTER, 1, 50, 0)]
    traffic = viewer_client.get("/api/traffic/statistics").json()["data"]
    assert (traffic["requests"], traffic["unique_clients"], traffic["bytes"]) == (5, 3, 6450)
    domains = {row["domain"]: row for row in viewer_client.get("/api/domains/statistics").json()["data"]}
    assert domains["a.example"]["clients"] == 2  # the workstation and 10.0.0.5
    summary = viewer_client.get("/api/dashboard/summary").json()["data"]
    assert summary["recent_blocks"][0]["client_ip"] == WORKSTATION
    assert summary["window"]["unique_clients"] == 3
    logs = viewer_client.get("/api/logs?sort=timestamp&order=asc").json()["data"]
    assert [row["client_ip"] for row in logs] == [WORKSTATION] * 3 + ["10.0.0.5", PRINTER]


def test_gdpr_mode_shows_host_names_only_as_a_stable_keyed_hash(viewer_client, mixed_log, gdpr_on):
    for path in ENDPOINTS:
        text = viewer_client.get(path).content.decode()
        assert WORKSTATION not in text and f'"{PRINTER}"' not in text, path

    masked = mask_host(WORKSTATION)
    assert masked.startswith("host-") and masked != mask_host(PRINTER)
    logs = viewer_client.get("/api/logs?sort=timestamp&order=asc").json()["data"]
    assert [row["client_ip"] for row in logs] == [masked] * 3 + ["10.0.0.0", mask_host(PRINTER)]
    clients = viewer_client.get("/api/clients/statistics").json()["data"]["clients"]
    assert (clients[0]["client_ip"], clients[0]["requests"]) == (masked, 3)
    summary = viewer_client.get("/api/dashboard/summary").json()["data"]
    assert summary["recent_blocks"][0]["client_ip"] == masked


def test_a_host_name_clients_details_are_found_by_its_name_and_in_gdpr_mode_by_its_hash(
        viewer_client, mixed_log, settings):
    details = viewer_client.get(f"/api/clients/{WORKSTATION}/details").json()["data"]
    assert (details["ip_address"], details["total_requests"], details["blocked"]) == (WORKSTATION, 3, 1)

    from vpnmonitor.models import PrivacySettings

    PrivacySettings(gdpr_mode=True).save()
    listed = viewer_client.get("/api/clients/statistics").json()["data"]["clients"][0]["ip_address"]
    assert listed == mask_host(WORKSTATION)
    details = viewer_client.get(f"/api/clients/{listed}/details").json()["data"]
    assert (details["ip_address"], details["total_requests"], details["blocked"]) == (listed, 3, 1)
    assert WORKSTATION not in viewer_client.get(f"/api/clients/{WORKSTATION}/details").content.decode()
    PrivacySettings(gdpr_mode=False).save()


def test_the_hash_of_a_host_name_depends_on_the_secret_key(settings):
    first = mask_host(WORKSTATION)
    assert mask_host(WORKSTATION.upper()) == first  # DNS names are case-insensitive
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789abcdef"
    assert mask_host(WORKSTATION) != first


@pytest.mark.integration
def test_a_real_squid_logging_client_names_imports_every_line(tmp_path):
    from proxylogs.tests.squid_harness import (
        BLOCKED_DOMAIN,
        SquidUnavailableError,
        find_squid,
        proxy_get,
        running_squid,
    )
    from proxylogs.tests.test_squid_integration import _unavailable

    if find_squid() is None:
        _unavailable("squid binary not found (apt-get install squid)")
    logs = Path(tempfile.mkdtemp(prefix="vpnmonitor-fqdn-"))
    if os.geteuid() == 0:
        shutil.chown(logs, user="proxy")  # Squid drops root and writes as proxy
    # Squid answers client-name lookups from its hosts file: the test client 127.0.0.1 gets a name.
    (logs / "hosts").write_text(f"127.0.0.1 {WORKSTATION}\n")
    extra = (f"hosts_file {logs}/hosts\n"
             "logformat fqdn %ts.%03tu %6tr %>A %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt\n"
             f"access_log stdio:{logs}/fqdn.log fqdn\n")
    try:
        with running_squid(extra) as squid:
            statuses = [proxy_get(squid, f"{squid.origin_url}/")[0], proxy_get(squid, f"{squid.origin_url}/x.zip")[0],
                        proxy_get(squid, f"http://www.{BLOCKED_DOMAIN}/")[0]]
            fqdn_lines = squid.wait_for_lines(logs / "fqdn.log", 3)
            native_lines = squid.wait_for_lines(squid.access_log, 3)
    except SquidUnavailableError as exc:
        _unavailable(str(exc))
    try:
        assert statuses == [200, 404, 403]
        assert all(f" {WORKSTATION} " in text for text in fqdn_lines)
        out = io.StringIO()
        call_command("import_proxy_log", str(logs / "fqdn.log"), "--no-progress", stdout=out)
    finally:
        shutil.rmtree(logs, ignore_errors=True)

    assert "imported 3 lines, rejected 0" in out.getvalue()
    assert list(ProxyLogEntry.objects.values_list("client_host", "client_ip").distinct()) == [(WORKSTATION, None)]
    # The same requests in Squid's native log (client addresses): the byte counts agree.
    native_bytes = sum(int(text.split()[4]) for text in native_lines)
    assert ProxyLogEntry.objects.aggregate(total=Sum("bytes"))["total"] == native_bytes
    assert ProxyLogEntry.objects.filter(blocked=True).count() == 1
