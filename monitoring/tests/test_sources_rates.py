"""Tests for per-client deltas and rates between status snapshots (hand-checked numbers)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitoring.sources.rates import client_rates, to_mbps
from monitoring.sources.status import ClientRecord, StatusSnapshot, parse_status

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime.fromtimestamp(1795335384, UTC)


def client(common_name, received, sent, *, connected, client_id=0, real_address="192.0.2.1:1194"):
    return ClientRecord(
        common_name=common_name,
        real_address=real_address,
        real_ip=real_address.rpartition(":")[0],
        real_port=int(real_address.rpartition(":")[2]),
        protocol=None,
        virtual_address="10.8.0.2",
        virtual_ipv6=None,
        bytes_received=received,
        bytes_sent=sent,
        connected_since=connected,
        username=None,
        client_id=client_id,
        peer_id=client_id,
        cipher="AES-256-GCM",
    )


def snapshot(at, *clients):
    return StatusSnapshot(time=at, title="test", version=2, clients=list(clients), routes=[], global_stats={})


def rates_by_name(previous, current):
    return {rate.common_name: rate for rate in client_rates(previous, current)}


def test_irregular_poll_interval_and_counter_reset():
    connected = T0 - timedelta(seconds=100)
    poll0 = snapshot(T0, client("alice", 1_000, 2_000, connected=connected, client_id=3))
    poll1 = snapshot(T0 + timedelta(seconds=7), client("alice", 8_000, 2_700, connected=connected, client_id=3))
    reconnected = T0 + timedelta(seconds=15)
    poll2 = snapshot(T0 + timedelta(seconds=20), client("alice", 1_300, 650, connected=reconnected, client_id=5))

    first = rates_by_name(poll0, poll1)["alice"]
    # 7000 B and 700 B over the real 7 s between the TIME lines.
    assert (first.new_session, first.seconds) == (False, 7.0)
    assert (first.bytes_received, first.bytes_sent) == (7_000, 700)
    assert first.bytes_received_per_second == pytest.approx(1_000.0)
    assert first.bytes_sent_per_second == pytest.approx(100.0)
    assert first.received_mbps == pytest.approx(0.008)
    assert first.sent_mbps == pytest.approx(0.0008)

    second = rates_by_name(poll1, poll2)["alice"]
    # New session 5 s old at a 13 s poll: its whole counters over the 5 s it has existed.
    assert (second.new_session, second.seconds, second.client_id) == (True, 5.0, 5)
    assert (second.bytes_received, second.bytes_sent) == (1_300, 650)
    assert second.bytes_received_per_second == pytest.approx(260.0)
    assert second.bytes_sent_per_second == pytest.approx(130.0)
    assert second.received_mbps == pytest.approx(0.00208)


def test_counter_going_down_in_same_session_key_is_a_new_session():
    connected = T0 - timedelta(seconds=4)
    before = snapshot(T0, client("bob", 9_000, 9_000, connected=connected))
    after = snapshot(T0 + timedelta(seconds=13), client("bob", 500, 9_100, connected=connected))
    rate = rates_by_name(before, after)["bob"]
    # Session age at the new TIME is 17 s, longer than the 13 s poll, so the poll interval bounds it.
    assert (rate.new_session, rate.seconds) == (True, 13.0)
    assert (rate.bytes_received, rate.bytes_sent) == (500, 9_100)
    assert rate.bytes_received_per_second == pytest.approx(500 / 13)


def test_same_common_name_sessions_are_tracked_separately():
    connected = T0 - timedelta(seconds=60)
    before = snapshot(
        T0,
        client("shared", 100, 100, connected=connected, client_id=1, real_address="192.0.2.1:1000"),
        client("shared", 5_000, 5_000, connected=connected, client_id=2, real_address="192.0.2.2:2000"),
    )
    after = snapshot(
        T0 + timedelta(seconds=10),
        client("shared", 5_100, 100, connected=connected, client_id=2, real_address="192.0.2.2:2000"),
        client("shared", 1_100, 200, connected=connected, client_id=1, real_address="192.0.2.1:1000"),
    )
    by_id = {rate.client_id: rate for rate in client_rates(before, after)}
    assert (by_id[1].bytes_received, by_id[1].bytes_sent, by_id[1].new_session) == (1_000, 100, False)
    # Client 2's sent counter dropped from 5000 to 100: treated as a restarted session.
    assert (by_id[2].bytes_received, by_id[2].bytes_sent, by_id[2].new_session) == (5_100, 100, True)
    assert [rate.client_id for rate in client_rates(before, after)] == [2, 1]


def test_first_snapshot_uses_session_age():
    current = snapshot(T0, client("carol", 4_000, 8_000, connected=T0 - timedelta(seconds=40)))
    (rate,) = client_rates(None, current)
    assert (rate.new_session, rate.seconds) == (True, 40.0)
    assert rate.bytes_received_per_second == pytest.approx(100.0)
    assert rate.bytes_sent_per_second == pytest.approx(200.0)


def test_same_second_snapshots_give_deltas_without_rates():
    connected = T0 - timedelta(seconds=40)
    before = snapshot(T0, client("carol", 4_000, 8_000, connected=connected))
    after = snapshot(T0, client("carol", 4_100, 8_000, connected=connected))
    (rate,) = client_rates(before, after)
    assert (rate.seconds, rate.bytes_received) == (0.0, 100)
    assert rate.bytes_received_per_second is None and rate.received_mbps is None


def test_session_connected_in_the_snapshot_second_has_no_rate():
    (rate,) = client_rates(None, snapshot(T0, client("dave", 300, 300, connected=T0)))
    assert (rate.seconds, rate.bytes_received, rate.bytes_received_per_second) == (0.0, 300, None)


def test_snapshots_out_of_order_are_rejected():
    connected = T0 - timedelta(seconds=40)
    earlier = snapshot(T0, client("carol", 1, 1, connected=connected))
    later = snapshot(T0 + timedelta(seconds=5), client("carol", 2, 2, connected=connected))
    with pytest.raises(ValueError, match="out of order"):
        client_rates(later, earlier)


def test_departed_clients_are_not_reported():
    connected = T0 - timedelta(seconds=40)
    before = snapshot(T0, client("gone", 1, 1, connected=connected, client_id=9))
    assert client_rates(before, snapshot(T0 + timedelta(seconds=5))) == []


def test_rates_between_real_captures():
    status_file = parse_status((FIXTURES / "status-file-v2.log").read_text())
    status_2 = parse_status((FIXTURES / "management-status-2.txt").read_text())
    status_3 = parse_status((FIXTURES / "management-status-3.txt").read_text())

    over_two_seconds = rates_by_name(status_file, status_2)
    assert over_two_seconds["user-bob"].seconds == 2.0
    assert (over_two_seconds["user-bob"].bytes_received, over_two_seconds["user-bob"].bytes_sent) == (0, 40)
    assert over_two_seconds["user-bob"].bytes_sent_per_second == pytest.approx(20.0)

    over_one_second = rates_by_name(status_2, status_3)
    assert over_one_second["user-bob"].bytes_received == 3514 - 3474
    assert over_one_second["user-alice"].bytes_received_per_second == pytest.approx(40.0)
    assert over_one_second["user-carol"].bytes_received == 0
    assert not any(rate.new_session for rate in over_one_second.values())


def test_rates_between_v1_snapshots_key_sessions_without_client_id():
    v1 = parse_status((FIXTURES / "management-status-1.txt").read_text())
    later_text = (FIXTURES / "management-status-1.txt").read_text()
    later_text = later_text.replace("08:16:24", "08:16:34").replace(
        "user-bob,127.0.0.1:41249,3474", "user-bob,127.0.0.1:41249,4474"
    )
    rates = rates_by_name(v1, parse_status(later_text))
    assert (rates["user-bob"].bytes_received, rates["user-bob"].seconds, rates["user-bob"].new_session) == (
        1000,
        10.0,
        False,
    )
    assert rates["user-bob"].bytes_received_per_second == pytest.approx(100.0)


def test_to_mbps():
    assert to_mbps(125_000) == pytest.approx(1.0)
    assert to_mbps(None) is None
