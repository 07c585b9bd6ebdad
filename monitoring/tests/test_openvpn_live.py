"""Against a real OpenVPN server (Debian's openvpn, two clients on loopback): poll, see both, see one leave."""

import shutil

import pytest
from django.core.management import call_command

from monitoring.models import Certificate, UsageSample, VpnClient, VpnServer, VpnSession
from monitoring.tests import openvpn_harness

openvpn_lab_fixture = openvpn_harness.openvpn_lab_fixture

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_polling_a_real_server_sees_both_clients_then_one_disconnect(openvpn_lab_fixture, viewer_client, tmp_path):
    lab = openvpn_lab_fixture
    # An easy-rsa layout for the certificate scan.
    issued = tmp_path / "pki" / "issued"
    issued.mkdir(parents=True)
    for name in ("user-alice", "user-bob"):
        shutil.copy(lab.pki_dir / f"{name}.crt", issued / f"{name}.crt")
    call_command("add_vpn_server", "lab", "--management", f"{lab.management_host}:{lab.management_port}",
                 "--pki-dir", str(tmp_path / "pki"))
    call_command("add_vpn_server", "lab-file", "--status-file", str(lab.status_path))

    call_command("poll_openvpn", "--server", "lab")
    clients = viewer_client.get("/api/v1/clients?server=lab").json()["data"]
    assert clients == [{"common_name": "user-alice", "status": "Active"},
                       {"common_name": "user-bob", "status": "Active"}]
    assert VpnSession.objects.filter(server__name="lab", status="ACTIVE").count() == 2
    alice = VpnClient.objects.get(server__name="lab", common_name="user-alice")
    assert alice.virtual_address.startswith("10.213.")

    # Real traffic through alice's tunnel shows up as bytes the server received from her.
    before = alice.total_bytes_received
    first_read = VpnServer.objects.get(name="lab").last_status_time
    lab.send_traffic("user-alice", 60_000)
    # TIME has one-second resolution and a read no newer than the last is skipped, so wait for a newer one.
    lab.wait_for_status(lambda s: s.time > first_read and any(
        c.common_name == "user-alice" and c.bytes_received > before + 50_000 for c in s.clients))
    call_command("poll_openvpn", "--server", "lab")
    alice.refresh_from_db()
    assert alice.total_bytes_received > before + 50_000
    assert UsageSample.objects.filter(client=alice).count() == 2

    lab.stop_client("user-bob")
    lab.wait_for_status(lambda s: [c.common_name for c in s.clients] == ["user-alice"], timeout=20)
    call_command("poll_openvpn", "--server", "lab")
    clients = viewer_client.get("/api/v1/clients?server=lab").json()["data"]
    assert clients == [{"common_name": "user-alice", "status": "Active"},
                       {"common_name": "user-bob", "status": "Disconnected"}]
    bob_session = VpnSession.objects.get(server__name="lab", common_name="user-bob")
    assert bob_session.status == "COMPLETED" and bob_session.ended_at is not None
    system = viewer_client.get("/api/v1/stats/system?server=lab").json()["data"]
    assert (system["total_clients"], system["active_clients"]) == (2, 1)

    # The status file the same server writes is read the same way.
    lab.wait_for_status_file(lambda s: [c.common_name for c in s.clients] == ["user-alice"], timeout=20)
    call_command("poll_openvpn", "--server", "lab-file")
    assert VpnClient.objects.get(server__name="lab-file", common_name="user-alice").status == "Active"

    call_command("scan_certificates")
    assert set(Certificate.objects.values_list("common_name", flat=True)) == {"user-alice", "user-bob"}
    assert VpnServer.objects.get(name="lab").last_error == ""
