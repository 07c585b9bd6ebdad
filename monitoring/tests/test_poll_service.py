"""record_poll: sessions, client state, true rates and raw samples from real and hand-written status reads."""

from pathlib import Path

import pytest

from monitoring import services
from monitoring.models import PollQuarter, PollRecord, UsageSample, VpnClient, VpnServer, VpnSession
from monitoring.sources.status import parse_status
from monitoring.tests.factories import at, status2

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    return VpnServer.objects.create(name="vpn1", management_address="127.0.0.1:7505")


def poll(server, text):
    return services.record_poll(server, parse_status(text))


def test_two_real_status_reads_give_sessions_samples_and_rates(server):
    first = poll(server, (FIXTURES / "management-status-2.txt").read_text())
    assert (first.connections, first.opened, first.closed) == (3, 3, 0)
    bob = VpnClient.objects.get(common_name="user-bob")
    assert (bob.status, bob.virtual_address, bob.total_bytes_received) == ("Active", "10.88.0.3", 3474)
    first_sample = UsageSample.objects.get(client=bob)
    # The first read covers the connection's age: TIME 1795335384 - Connected Since 1795335325.
    assert (first_sample.bytes_received, first_sample.bytes_sent, first_sample.interval_seconds) == (3474, 3522, 59)

    second = poll(server, (FIXTURES / "management-status-3.txt").read_text())
    assert (second.connections, second.opened, second.closed) == (3, 0, 0)
    bob.refresh_from_db()
    assert bob.total_bytes_received == 3514
    assert bob.recv_rate_bps == 40.0  # 40 bytes over the 1 s between the two TIME lines
    assert bob.sent_rate_bps == 0.0
    latest = UsageSample.objects.filter(client=bob).latest("timestamp")
    assert (latest.bytes_received, latest.interval_seconds) == (40, 1)
    assert VpnSession.objects.filter(status="ACTIVE").count() == 3
    assert list(PollRecord.objects.order_by("timestamp").values_list("active_connections", "bytes_received")) == [
        (3, 3475 + 3474 + 3475), (3, 80)
    ]
    # Both reads (08:16:24 and 08:16:25) fold into the 08:15 quarter that the analytics charts read.
    quarter = PollQuarter.objects.get()
    assert (quarter.bucket.isoformat(), quarter.bytes_received, quarter.polls, quarter.max_connections) == (
        "2026-11-22T08:15:00+00:00", 3475 + 3474 + 3475 + 80, 2, 3)


def test_a_status_file_that_did_not_change_records_nothing(server):
    text = (FIXTURES / "status-file-v2.log").read_text()
    poll(server, text)
    again = poll(server, text)
    assert again.skipped == "status not updated since the last read"
    assert UsageSample.objects.count() == 3
    assert PollRecord.objects.count() == 1


def test_rates_use_the_real_elapsed_time_across_an_irregular_interval_and_a_counter_reset(server):
    since = at(0)
    poll(server, status2(at(10), [("alice", 5, since, 1000, 2000, "10.8.0.2")]))
    poll(server, status2(at(17), [("alice", 5, since, 1700, 2070, "10.8.0.2")]))  # 7 s later
    alice = VpnClient.objects.get()
    assert (alice.recv_rate_bps, alice.sent_rate_bps) == (100.0, 10.0)
    poll(server, status2(at(30), [("alice", 5, since, 3000, 2070, "10.8.0.2")]))  # 13 s later
    alice.refresh_from_db()
    assert alice.recv_rate_bps == 100.0

    # The server restarted: same name, new Connected Since, counters from zero.
    poll(server, status2(at(40), [("alice", 0, at(36), 400, 80, "10.8.0.2")]))
    alice.refresh_from_db()
    assert alice.recv_rate_bps == 100.0  # 400 bytes over the 4 s since it connected
    assert alice.sent_rate_bps == 20.0
    assert alice.total_bytes_received == 3000 + 400
    sessions = list(VpnSession.objects.order_by("started_at").values_list("status", "ended_at", "bytes_received"))
    assert sessions == [("COMPLETED", at(40), 3000), ("ACTIVE", None, 400)]
    deltas = list(UsageSample.objects.order_by("timestamp").values_list("bytes_received", "interval_seconds"))
    assert deltas == [(1000, 10), (700, 7), (1300, 13), (400, 10)]


def test_two_connections_with_the_same_common_name_are_separate_sessions_summed_for_the_client(server):
    poll(server, status2(at(0), [("shared", 1, at(-60), 100, 100, "10.8.0.5"),
                                 ("shared", 2, at(-30), 50, 50, "10.8.0.6")]))
    poll(server, status2(at(10), [("shared", 1, at(-60), 600, 100, "10.8.0.5"),
                                  ("shared", 2, at(-30), 350, 50, "10.8.0.6")]))
    client = VpnClient.objects.get()
    assert client.connections == 2
    assert client.recv_rate_bps == 80.0  # (500 + 300) bytes / 10 s
    assert VpnSession.objects.filter(status="ACTIVE").count() == 2

    poll(server, status2(at(20), [("shared", 2, at(-30), 450, 50, "10.8.0.6")]))
    client.refresh_from_db()
    assert (client.connections, client.status, client.recv_rate_bps) == (1, "Active", 10.0)
    closed = VpnSession.objects.get(status="COMPLETED")
    assert (closed.openvpn_client_id, closed.ended_at) == (1, at(20))


def test_a_client_that_vanishes_is_disconnected_and_its_session_completed(server):
    poll(server, status2(at(0), [("bob", 3, at(-5), 10, 10, "10.8.0.3")]))
    result = poll(server, status2(at(10), []))
    assert result.closed == 1
    bob = VpnClient.objects.get()
    assert (bob.status, bob.connections, bob.recv_rate_bps) == ("Disconnected", 0, 0)
    session = VpnSession.objects.get()
    assert (session.status, session.ended_at, session.disconnect_reason) == ("COMPLETED", at(10), "connection closed")


def test_poll_server_records_a_failure_on_the_server_and_does_not_raise(server):
    server.management_address = "127.0.0.1:1"
    server.save()
    result = services.poll_server(server)
    assert not result.ok
    server.refresh_from_db()
    assert server.last_error.startswith("ManagementError")
    assert server.last_polled_at is not None and server.last_success_at is None


def test_poll_server_skips_a_half_written_status_file(server, tmp_path):
    path = tmp_path / "status.log"
    path.write_text(status2(at(0), [("bob", 3, at(-5), 10, 10, "10.8.0.3")]).replace("END\n", ""))
    server.management_address, server.status_file = "", str(path)
    server.save()
    result = services.poll_server(server)
    assert result.ok and result.skipped.startswith("half-written status skipped")
    assert UsageSample.objects.count() == 0
