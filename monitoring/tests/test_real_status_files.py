"""Status files that other OpenVPN exporters keep as test data, read through add_vpn_server and poll_openvpn."""

import datetime as dt
import logging

import pytest
from django.core.management import call_command

from monitoring.models import VpnClient, VpnServer, VpnSession
from vpnmonitor.ingestion_health import ingestion_health
from vpnmonitor.testing.real import real_fixture

pytestmark = pytest.mark.django_db

REAL_FILES = ["kumina/server2.status", "kumina/server3.status", "patrickjahns/version2.status"]


def client_rows(path):
    """The file's CLIENT_LIST rows as {column title: value}, read by the HEADER line (version 2 or 3)."""
    text = path.read_text()
    separator = "\t" if text.startswith("TITLE\t") else ","
    rows, columns = [], None
    for line in text.splitlines():
        fields = line.split(separator)
        if fields[:2] == ["HEADER", "CLIENT_LIST"]:
            columns = fields[2:]
        elif fields[0] == "CLIENT_LIST":
            rows.append(dict(zip(columns, fields[1:], strict=True)))
    return rows


def add_and_poll(name, path):
    call_command("add_vpn_server", name, "--status-file", str(path))
    call_command("poll_openvpn", "--server", name)
    return VpnServer.objects.get(name=name)


@pytest.mark.parametrize("relative", REAL_FILES)
def test_it_stores_every_client_of_a_real_status_file_with_the_files_counters_and_times(relative):
    path = real_fixture(f"openvpn/{relative}")
    server = add_and_poll("real", path)

    rows = {(row["Common Name"], row["Real Address"], row["Connected Since (time_t)"]): row
            for row in client_rows(path)}
    sessions = VpnSession.objects.filter(server=server, status="ACTIVE")
    assert sessions.count() == len(rows)
    for session in sessions:
        row = rows[(session.common_name, session.real_address, str(int(session.started_at.timestamp())))]
        assert session.bytes_received == int(row["Bytes Received"])
        assert session.bytes_sent == int(row["Bytes Sent"])
        assert session.started_at == dt.datetime.fromtimestamp(int(row["Connected Since (time_t)"]), dt.UTC)
        client = VpnClient.objects.get(server=server, common_name=session.common_name)
        assert (client.total_bytes_received, client.total_bytes_sent) == (session.bytes_received, session.bytes_sent)
    server.refresh_from_db()
    assert server.last_error == ""


def test_it_keeps_a_byte_counter_above_two_to_the_32_exactly():
    server = add_and_poll("kumina3", real_fixture("openvpn/kumina/server3.status"))

    client = VpnClient.objects.get(server=server, common_name="redacted4")
    assert (client.total_bytes_received, client.total_bytes_sent) == (24_289_622_392, 70_914_674_697)
    session = VpnSession.objects.get(server=server, common_name="redacted4")
    # The time_t 1489745789 wins over the text "Fri Mar 17 11:16:29 2017", which is the server's local time (CET).
    assert session.started_at == dt.datetime(2017, 3, 17, 10, 16, 29, tzinfo=dt.UTC)


def test_it_counts_a_client_list_row_written_twice_once_with_one_warning_and_stays_healthy(caplog):
    path = real_fixture("openvpn/kumina/server2.status")
    assert len(client_rows(path)) == 6  # redacted1 is listed twice

    with caplog.at_level(logging.WARNING, logger="monitoring.services"):
        server = add_and_poll("kumina2", path)

    server.refresh_from_db()
    assert (server.last_error, server.last_success_at is not None) == ("", True)
    assert VpnSession.objects.filter(server=server).count() == 5
    redacted1 = VpnClient.objects.get(server=server, common_name="redacted1")
    assert (redacted1.connections, redacted1.total_bytes_received, redacted1.total_bytes_sent) == (
        1, 693_438_277, 228_390_856)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["status of kumina2 lists 1 CLIENT_LIST row(s) twice; counted once"]
    health = {s.name: s for s in ingestion_health().servers}["kumina2"]
    assert (health.failing, health.stale, health.up) == (False, False, True)
