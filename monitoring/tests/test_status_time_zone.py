"""Status times without a time_t are the server's local time: TIME_ZONE, or the server's own zone."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from monitoring import services
from monitoring.models import UsageSample, VpnServer, VpnSession

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def status1(updated, connected_since, received):
    """status-version 1 as OpenVPN writes it: local ctime texts, no time_t."""
    return "\n".join([
        "OpenVPN CLIENT LIST",
        f"Updated,{updated}",
        "Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since",
        f"alice,198.51.100.7:50000,{received},2000,{connected_since}",
        "ROUTING TABLE",
        "Virtual Address,Common Name,Real Address,Last Ref",
        f"10.8.0.6,alice,198.51.100.7:50000,{updated}",
        "GLOBAL STATS",
        "Max bcast/mcast queue length,0",
        "END",
    ]) + "\n"


def poll_twice(server, path, first, second):
    path.write_text(first)
    assert services.poll_server(server).ok
    path.write_text(second)
    assert services.poll_server(server).ok
    return VpnSession.objects.get(server=server)


def test_status_version_1_is_read_in_time_zone_on_both_sides_of_the_spring_dst_change(settings, tmp_path):
    settings.TIME_ZONE = "Europe/Berlin"
    path = tmp_path / "server.status"
    server = VpnServer.objects.create(name="berlin", status_file=str(path))

    # Berlin moved from CET (+1) to CEST (+2) at 2026-03-29 02:00 local: 01:30 and 03:30 are one hour apart.
    session = poll_twice(server, path, status1("Sun Mar 29 01:30:00 2026", "Sun Mar 29 01:10:00 2026", 1000),
                         status1("Sun Mar 29 03:30:00 2026", "Sun Mar 29 01:10:00 2026", 4600))

    assert session.started_at == dt.datetime(2026, 3, 29, 0, 10, tzinfo=UTC)
    assert session.last_status_time == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    server.refresh_from_db()
    assert server.last_status_time == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    second = UsageSample.objects.order_by("timestamp").last()
    assert (second.timestamp, second.bytes_received, second.interval_seconds) == (
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC), 3600, 3600)
    assert VpnSession.objects.get().client.recv_rate_bps == 1.0  # 3,600 bytes over the real hour, not two


def test_a_servers_own_zone_wins_over_time_zone_across_the_autumn_dst_change(settings, tmp_path):
    settings.TIME_ZONE = "Europe/Berlin"
    path = tmp_path / "server.status"
    call_command("add_vpn_server", "nyc", "--status-file", str(path), "--time-zone", "America/New_York")
    server = VpnServer.objects.get(name="nyc")

    # New York left EDT (-4) for EST (-5) at 2026-11-01 02:00 local: 00:30 EDT and 02:30 EST are three hours apart.
    session = poll_twice(server, path, status1("Sun Nov  1 00:30:00 2026", "Sat Oct 31 23:00:00 2026", 0),
                         status1("Sun Nov  1 02:30:00 2026", "Sat Oct 31 23:00:00 2026", 10800))

    assert session.started_at == dt.datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert session.last_status_time == dt.datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    assert UsageSample.objects.order_by("timestamp").last().interval_seconds == 3 * 3600


def test_add_vpn_server_refuses_an_unknown_time_zone(tmp_path):
    with pytest.raises(CommandError, match="not an IANA time zone"):
        call_command("add_vpn_server", "x", "--status-file", str(tmp_path / "s"), "--time-zone", "Mars/Olympus")
    assert not VpnServer.objects.exists()


def test_the_admin_form_sets_a_servers_time_zone_and_refuses_an_unknown_one(admin_client):
    form = {"name": "vpn", "enabled": "on", "status_file": "/run/openvpn/server.status", "time_zone": "Mars/Olympus"}
    response = admin_client.post("/admin/monitoring/vpnserver/add/", form)
    assert response.status_code == 200 and "not an IANA time zone name" in response.content.decode()

    response = admin_client.post("/admin/monitoring/vpnserver/add/", {**form, "time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    assert VpnServer.objects.get().time_zone == "Asia/Tokyo"
