"""Certificate scanning of an easy-rsa PKI (issued/*.crt + index.txt) and the /certificates endpoint."""

import datetime as dt

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitoring import services
from monitoring.models import Certificate, VpnServer

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def issue(path, common_name, serial, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(serial).not_valid_before(NOW - dt.timedelta(days=30)).not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def pki(tmp_path):
    issued = tmp_path / "pki" / "issued"
    issued.mkdir(parents=True)
    issue(issued / "user-alice.crt", "user-alice", 0x0A1B, NOW + dt.timedelta(days=360, hours=5))
    issue(issued / "user-bob.crt", "user-bob", 0x0B2C, NOW - dt.timedelta(days=3, hours=1))
    issue(issued / "user-carol.crt", "user-carol", 0x00C3D, NOW + dt.timedelta(days=10))
    (issued / "broken.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (tmp_path / "pki" / "index.txt").write_text(
        "V\t270601120000Z\t\t0A1B\tunknown\t/CN=user-alice\n"
        "R\t260601120000Z\t260520093000Z,keyCompromise\t0C3D\tunknown\t/CN=user-carol\n"
    )
    return tmp_path / "pki"


def test_scan_reads_expiry_and_revocation_and_skips_unreadable_files(pki):
    server = VpnServer.objects.create(name="vpn1", management_address="127.0.0.1:7505", pki_dir=str(pki))
    assert services.scan_certificates(server, now=NOW) == 3
    carol = Certificate.objects.get(common_name="user-carol")
    assert (carol.revoked, carol.revoked_at, carol.serial) == (True, dt.datetime(2026, 5, 20, 9, 30, tzinfo=UTC),
                                                              "C3D")
    assert not Certificate.objects.get(common_name="user-alice").revoked

    (pki / "issued" / "user-bob.crt").unlink()
    assert services.scan_certificates(server, now=NOW) == 2
    assert not Certificate.objects.filter(file="user-bob.crt").exists()


def test_certificates_endpoint_reports_days_remaining_like_the_spec(viewer_client, pki):
    server = VpnServer.objects.create(name="vpn1", management_address="127.0.0.1:7505", pki_dir=str(pki))
    services.scan_certificates(server, now=NOW)
    with time_machine.travel(NOW, tick=False):
        body = viewer_client.get("/api/v1/certificates").json()
    assert body["success"] is True and body["count"] == 3
    by_file = {row["file"]: row for row in body["data"]}
    assert by_file["user-alice.crt"]["days_remaining"] == "360 days"
    assert by_file["user-alice.crt"]["is_expired"] is False
    assert by_file["user-bob.crt"]["days_remaining"] == "-4 days"
    assert by_file["user-bob.crt"]["is_expired"] is True
    assert by_file["user-carol.crt"]["revoked"] is True
    assert [row["file"] for row in body["data"]] == ["user-bob.crt", "user-carol.crt", "user-alice.crt"]


def test_add_vpn_server_with_a_pki_dir_scans_its_certificates_right_away(pki):
    from django.core.management import call_command

    call_command("add_vpn_server", "vpn1", "--management", "127.0.0.1:7505", "--pki-dir", str(pki))

    carol = Certificate.objects.get(server__name="vpn1", common_name="user-carol")
    assert (Certificate.objects.count(), carol.revoked) == (3, True)


def test_adding_a_server_or_changing_its_pki_dir_in_admin_scans_right_away(pki, tmp_path, admin_client):
    form = {"name": "vpn1", "enabled": "on", "management_address": "127.0.0.1:7505", "pki_dir": str(pki)}
    assert admin_client.post("/admin/monitoring/vpnserver/add/", form).status_code == 302
    server = VpnServer.objects.get()
    assert sorted(Certificate.objects.values_list("common_name", flat=True)) == [
        "user-alice", "user-bob", "user-carol"]

    other = tmp_path / "other-pki"
    (other / "issued").mkdir(parents=True)
    issue(other / "issued" / "user-dave.crt", "user-dave", 0x0D4E, NOW + dt.timedelta(days=90))
    response = admin_client.post(f"/admin/monitoring/vpnserver/{server.pk}/change/", {**form, "pki_dir": str(other)},
                                 follow=True)
    assert "1 certificate(s) found" in response.content.decode()
    assert list(Certificate.objects.values_list("common_name", flat=True)) == ["user-dave"]
