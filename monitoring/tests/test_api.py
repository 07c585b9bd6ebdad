"""The /api/v1 monitor endpoints against a hand-computed dataset."""

import datetime as dt
import itertools

import pytest
import time_machine

from monitoring import services
from monitoring.models import PollRecord, StatsHourly, UsageSample, VpnClient, VpnServer

UTC = dt.UTC
NOW = dt.datetime(2026, 1, 9, 12, 7, 30, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def dataset():
    vpn1 = VpnServer.objects.create(name="vpn1", management_address="127.0.0.1:7505")
    vpn2 = VpnServer.objects.create(name="vpn2", management_address="127.0.0.1:7506")
    alice = VpnClient.objects.create(
        server=vpn1, common_name="alice", status="Active", connections=1, virtual_address="10.8.0.2",
        recv_rate_bps=125_000, sent_rate_bps=12_500, total_bytes_received=500 * 1024 * 1024,
        total_bytes_sent=120 * 1024 * 1024,
    )
    bob = VpnClient.objects.create(server=vpn1, common_name="bob", status="Disconnected",
                                   total_bytes_received=1024 * 1024, total_bytes_sent=0)
    carol = VpnClient.objects.create(server=vpn2, common_name="carol", status="Active", recv_rate_bps=1000,
                                     total_bytes_received=2 * 1024**3, total_bytes_sent=1024**3)
    day_before = dt.datetime(2026, 1, 8, tzinfo=UTC)
    polls = PollRecord.objects.bulk_create([
        # Third 15-minute bucket of the 24h chart (2026-01-08 12:45): two vpn1 reads and one vpn2 read.
        PollRecord(server=vpn1, timestamp=day_before.replace(hour=12, minute=46), active_connections=3,
                   active_clients=2, bytes_received=1000, bytes_sent=100),
        PollRecord(server=vpn1, timestamp=day_before.replace(hour=12, minute=50), active_connections=1,
                   active_clients=1, bytes_received=500, bytes_sent=50),
        PollRecord(server=vpn2, timestamp=day_before.replace(hour=12, minute=59, second=59), active_connections=4,
                   active_clients=4, bytes_received=10, bytes_sent=1),
        # The 96th bucket (12:00 today).
        PollRecord(server=vpn1, timestamp=NOW - dt.timedelta(minutes=2), active_connections=5, active_clients=1,
                   bytes_received=7, bytes_sent=3),
        # Just outside the window.
        PollRecord(server=vpn1, timestamp=day_before.replace(hour=12, minute=14, second=59), active_connections=50,
                   active_clients=50, bytes_received=99999, bytes_sent=99999),
    ])
    for poll in polls:  # as record_poll does for every read
        services._add_to_quarter(poll.server, poll.timestamp, poll.bytes_received, poll.bytes_sent,
                                 poll.active_clients, poll.active_connections)
    UsageSample.objects.bulk_create([
        UsageSample(server=vpn1, client=alice, timestamp=NOW.replace(minute=30, second=10) - dt.timedelta(hours=1),
                    bytes_received=3000, bytes_sent=300, interval_seconds=10),
        UsageSample(server=vpn1, client=alice, timestamp=NOW.replace(minute=30, second=20) - dt.timedelta(hours=1),
                    bytes_received=3000, bytes_sent=300, interval_seconds=10),
        UsageSample(server=vpn1, client=alice, timestamp=NOW - dt.timedelta(hours=3), bytes_received=9,
                    bytes_sent=9, interval_seconds=10),
    ])
    StatsHourly.objects.bulk_create([
        StatsHourly(server=vpn1, client=alice, bucket=NOW.replace(hour=11, minute=0, second=0),
                    bytes_received=5000, bytes_sent=500, samples=360),
        StatsHourly(server=vpn1, client=bob, bucket=NOW.replace(hour=10, minute=0, second=0),
                    bytes_received=100, bytes_sent=10, samples=360),
        StatsHourly(server=vpn2, client=carol, bucket=NOW.replace(hour=9, minute=0, second=0),
                    bytes_received=2000, bytes_sent=2000, samples=360),
        StatsHourly(server=vpn1, client=bob, bucket=NOW - dt.timedelta(days=40),
                    bytes_received=10**9, bytes_sent=0, samples=1),
    ])


def test_analytics_24h_has_96_points_with_the_third_bucket_summed_and_gaps_zero(viewer_client, dataset):
    body = viewer_client.get("/api/v1/analytics").json()
    assert body["success"] is True
    assert (body["range"], body["timestamp"]) == ("24h", "2026-01-09 12:07:30")
    history = body["data"]["global_history_24h"]
    assert len(history) == 96
    assert history[0]["timestamp"] == "2026-01-08 12:15:00"
    assert history[2] == {"timestamp": "2026-01-08 12:45:00", "total_rx": 1510, "total_tx": 151, "active_count": 6}
    assert history[3] == {"timestamp": "2026-01-08 13:00:00", "total_rx": 0, "total_tx": 0, "active_count": 0}
    assert all(point["total_rx"] == 0 for point in history[3:95])
    assert history[95] == {"timestamp": "2026-01-09 12:00:00", "total_rx": 7, "total_tx": 3, "active_count": 1}
    assert body["data"]["max_concurrent_24h"] == 7  # vpn1's 3 + vpn2's 4 in the third bucket
    assert body["data"]["traffic_distribution"] == {"rx": 1517, "tx": 154}
    assert body["data"]["top_clients_24h"] == [
        {"common_name": "alice", "bytes_received": 5000, "bytes_sent": 500, "total_bytes": 5500},
        {"common_name": "carol", "bytes_received": 2000, "bytes_sent": 2000, "total_bytes": 4000},
        {"common_name": "bob", "bytes_received": 100, "bytes_sent": 10, "total_bytes": 110},
    ]


def test_analytics_narrowed_to_one_server(viewer_client, dataset):
    data = viewer_client.get("/api/v1/analytics?server=vpn1").json()["data"]
    assert data["global_history_24h"][2]["total_rx"] == 1500
    assert data["global_history_24h"][2]["active_count"] == 2
    assert data["max_concurrent_24h"] == 5
    assert [c["common_name"] for c in data["top_clients_24h"]] == ["alice", "bob"]


@pytest.mark.parametrize(("range_name", "step_minutes", "peak"), [("7d", 105, 50), ("30d", 450, 54)])
def test_analytics_longer_ranges_keep_96_points_at_their_step(viewer_client, dataset, range_name, step_minutes, peak):
    data = viewer_client.get(f"/api/v1/analytics?range={range_name}").json()["data"]
    history = data[f"global_history_{range_name}"]
    assert len(history) == 96
    first, second = (dt.datetime.fromisoformat(p["timestamp"]) for p in history[:2])
    assert second - first == dt.timedelta(minutes=step_minutes)
    # The read at 12:14:59 yesterday is outside the 24h chart but inside these windows.
    assert sum(p["total_rx"] for p in history) == 1517 + 99999
    assert data["traffic_distribution"]["rx"] == 1517 + 99999
    # 7d: that read has a 105-minute bucket of its own (50); 30d: one 450-minute bucket holds
    # all of yesterday's reads, vpn1's peak 50 plus vpn2's 4.
    assert data[f"max_concurrent_{range_name}"] == peak


@pytest.mark.parametrize(
    ("range_name", "points", "step", "total"),
    # The 9-byte sample at 09:07:30 is just before the 3h chart's first point (09:08:00).
    [("1h", 120, 30, 6000), ("3h", 180, 60, 6000), ("6h", 180, 120, 6009), ("12h", 144, 300, 6009),
     ("24h", 96, 900, 6009)],
)
def test_client_history_short_ranges_are_zero_filled_at_the_spec_resolution(
    viewer_client, dataset, range_name, points, step, total
):
    data = viewer_client.get(f"/api/v1/stats/alice?range={range_name}").json()["data"]
    with_data = 1 if total == 6000 else 2
    assert data["meta"] == {"resolution_used": "usage_history", "record_count": with_data, "range": range_name,
                            "step_seconds": step}
    history = data["history"]
    assert len(history) == points
    assert history[-1]["timestamp"] <= "2026-01-09 12:07:30"
    assert sum(p["bytes_received"] for p in history) == total
    assert sum(1 for p in history if p["bytes_received"] == 0) == points - with_data


def test_client_history_1h_bucket_holds_both_samples_and_its_average_rate(viewer_client, dataset):
    data = viewer_client.get("/api/v1/stats/alice?range=1h").json()["data"]
    bucket = next(p for p in data["history"] if p["timestamp"] == "2026-01-09 11:30:00")
    assert bucket == {"timestamp": "2026-01-09 11:30:00", "bytes_received": 6000, "bytes_sent": 600,
                      "bytes_received_rate_mbps": 0.0016, "bytes_sent_rate_mbps": 0.00016}
    assert data["history"][0]["timestamp"] == "2026-01-09 11:08:00"
    assert data["history"][-1]["timestamp"] == "2026-01-09 12:07:30"
    assert data["status"] == "Active"
    assert data["current_rates"] == {"recv_mbps": 1.0, "sent_mbps": 0.1}
    assert data["totals"] == {"received_mb": 500.0, "sent_mb": 120.0}


def test_client_history_7d_reads_the_hourly_table(viewer_client, dataset):
    data = viewer_client.get("/api/v1/stats/alice?range=7d").json()["data"]
    assert data["meta"] == {"resolution_used": "stats_hourly", "record_count": 1, "range": "7d", "step_seconds": 3600}
    history = data["history"]
    assert (len(history), history[0]["timestamp"], history[-1]["timestamp"]) == (
        168, "2026-01-02 13:00:00", "2026-01-09 12:00:00")
    assert history[-2] == {"timestamp": "2026-01-09 11:00:00", "bytes_received": 5000, "bytes_sent": 500,
                           "bytes_received_rate_mbps": round(5000 * 8 / 3600 / 1e6, 6),
                           "bytes_sent_rate_mbps": round(500 * 8 / 3600 / 1e6, 6)}
    assert all(p["bytes_received"] == p["bytes_sent"] == 0 for p in history[:-2] + history[-1:])


# Points of every range × resolution: range / step for bucketed resolutions (at least one), the samples for raw,
# a 400 where a forced resolution cannot cover the range.
POINTS = {
    #        auto  raw  5min  hourly  6h    daily
    "1h": (120, 2, 12, 1, 1, 1),
    "3h": (180, 2, 36, 3, 1, 1),
    "6h": (180, 3, 72, 6, 1, 1),
    "12h": (144, 3, 144, 12, 2, 1),
    "24h": (96, 3, 288, 24, 4, 1),
    "7d": (168, None, 2016, 168, 28, 7),
    "30d": (120, None, None, 720, 120, 30),
    "1y": (365, None, None, None, 1460, 365),
}
STEPS = {"5min": 300, "hourly": 3600, "6h": 6 * 3600, "daily": 86400}
AUTO_STEPS = {"1h": 30, "3h": 60, "6h": 120, "12h": 300, "24h": 900, "7d": 3600, "30d": 6 * 3600, "1y": 86400}


@pytest.mark.parametrize("resolution", ["auto", "raw", *STEPS])
@pytest.mark.parametrize("range_name", list(POINTS))
def test_every_range_and_resolution_gives_its_point_count_zero_filled_and_aligned(
    viewer_client, dataset, range_name, resolution
):
    from monitoring.models import Stats6h, StatsDaily

    alice = VpnClient.objects.get(common_name="alice")
    Stats6h.objects.bulk_create([
        Stats6h(server=alice.server, client=alice, bucket=dt.datetime(2026, 1, 9, 6, tzinfo=UTC),
                bytes_received=700, bytes_sent=70, samples=2160),
        Stats6h(server=alice.server, client=alice, bucket=dt.datetime(2025, 12, 20, 18, tzinfo=UTC),
                bytes_received=800, bytes_sent=80, samples=2160),
    ])
    StatsDaily.objects.bulk_create([
        StatsDaily(server=alice.server, client=alice, bucket=dt.datetime(2026, 1, 9, tzinfo=UTC),
                   bytes_received=900, bytes_sent=90, samples=8640),
        StatsDaily(server=alice.server, client=alice, bucket=dt.datetime(2025, 6, 1, tzinfo=UTC),
                   bytes_received=1000, bytes_sent=100, samples=8640),
    ])
    expected = POINTS[range_name][["auto", "raw", *STEPS].index(resolution)]

    response = viewer_client.get(f"/api/v1/stats/alice?range={range_name}&resolution={resolution}")

    if expected is None:
        assert response.status_code == 400
        assert response.json()["error"].startswith("Invalid value for 'resolution'")
        return
    data = response.json()["data"]
    history = data["history"]
    assert len(history) == expected
    with_data = [p for p in history if p["bytes_received"]]
    assert data["meta"]["record_count"] == len(with_data)  # every stored row of the dataset has bytes
    if resolution == "raw":
        return
    step = STEPS.get(resolution) or AUTO_STEPS[range_name]
    times = [dt.datetime.fromisoformat(p["timestamp"]).replace(tzinfo=UTC) for p in history]
    assert all(later - earlier == dt.timedelta(seconds=step) for earlier, later in itertools.pairwise(times))
    assert all(t.timestamp() % step == 0 for t in times)
    assert times[-1] <= NOW < times[-1] + dt.timedelta(seconds=step)  # ends with the bucket that holds now
    zeros = [p for p in history if not p["bytes_received"]]
    assert all(p["bytes_sent"] == 0 and p["bytes_received_rate_mbps"] == 0 for p in zeros)


@pytest.mark.parametrize(("range_name", "points"), [
    ("30d", {"2025-12-20 18:00:00": 800, "2026-01-09 06:00:00": 700}),
    ("1y", {"2025-06-01 00:00:00": 1000, "2026-01-09 00:00:00": 900}),
])
def test_the_long_ranges_put_each_rollup_row_in_its_own_point(viewer_client, dataset, range_name, points):
    from monitoring.models import Stats6h, StatsDaily

    alice = VpnClient.objects.get(common_name="alice")
    model = Stats6h if range_name == "30d" else StatsDaily
    model.objects.bulk_create([
        model(server=alice.server, client=alice, bucket=dt.datetime.fromisoformat(moment).replace(tzinfo=UTC),
              bytes_received=received, bytes_sent=0, samples=1)
        for moment, received in points.items()
    ])

    data = viewer_client.get(f"/api/v1/stats/alice?range={range_name}").json()["data"]

    assert {p["timestamp"]: p["bytes_received"] for p in data["history"] if p["bytes_received"]} == points
    assert data["meta"]["record_count"] == 2


@pytest.mark.parametrize(("query", "table"), [("range=30d", "stats_6h"), ("range=1y&resolution=daily", "stats_daily"),
                                               ("range=24h&resolution=5min", "usage_history"),
                                               ("range=30d&resolution=hourly", "stats_hourly")])
def test_resolution_used_names_the_table_read(viewer_client, dataset, query, table):
    assert viewer_client.get(f"/api/v1/stats/alice?{query}").json()["data"]["meta"]["resolution_used"] == table


def test_raw_resolution_returns_each_sample_with_its_own_rate(viewer_client, dataset):
    data = viewer_client.get("/api/v1/stats/alice?range=1h&resolution=raw").json()["data"]
    assert data["meta"]["record_count"] == 2
    assert data["history"][0] == {"timestamp": "2026-01-09 11:30:10", "bytes_received": 3000, "bytes_sent": 300,
                                  "bytes_received_rate_mbps": 0.0024, "bytes_sent_rate_mbps": 0.00024}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("range=2h", "Invalid value for 'range': must be one of 1h, 3h, 6h, 12h, 24h, 7d, 30d, 1y (got '2h')."),
        ("resolution=fast", "Invalid value for 'resolution': must be one of auto, raw, 5min, hourly, 6h, daily "
                            "(got 'fast')."),
        ("range=7d&resolution=raw", "Invalid value for 'resolution': resolution=raw covers ranges up to 24h "
                                    "(got 'raw')."),
        ("server=nope", "Invalid value for 'server': no VPN server has this name (got 'nope')."),
    ],
)
def test_bad_parameters_are_400_naming_them(viewer_client, dataset, query, message):
    response = viewer_client.get(f"/api/v1/stats/alice?{query}")
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": message}


def test_analytics_rejects_a_range_it_does_not_offer(viewer_client, dataset):
    response = viewer_client.get("/api/v1/analytics?range=1h")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid value for 'range': must be one of 24h, 7d, 30d (got '1h')."


def test_unknown_common_name_is_404(viewer_client, dataset):
    response = viewer_client.get("/api/v1/stats/nobody")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "No client with common name 'nobody'."}


def test_stats_system_and_clients(viewer_client, dataset):
    stats = viewer_client.get("/api/v1/stats").json()
    assert stats["count"] == 3
    alice = stats["data"][0]
    assert (alice["common_name"], alice["status"], alice["current_recv_rate_mbps"], alice["total_received_mb"]) == (
        "alice", "Active", 1.0, 500.0)
    assert stats["data"][1]["status"] == "Disconnected"
    assert stats["data"][1]["current_recv_rate_mbps"] == 0.0

    system = viewer_client.get("/api/v1/stats/system").json()["data"]
    assert system == {"total_clients": 3, "active_clients": 2, "total_received_gb": 2.489, "total_sent_gb": 1.117}
    assert viewer_client.get("/api/v1/stats/system?server=vpn2").json()["data"] == {
        "total_clients": 1, "active_clients": 1, "total_received_gb": 2.0, "total_sent_gb": 1.0}

    clients = viewer_client.get("/api/v1/clients").json()
    assert clients["data"] == [{"common_name": "alice", "status": "Active"},
                               {"common_name": "bob", "status": "Disconnected"},
                               {"common_name": "carol", "status": "Active"}]


def test_monitor_endpoints_need_credentials(api_client, dataset):
    for path in ("/api/v1/analytics", "/api/v1/stats", "/api/v1/stats/alice", "/api/v1/clients",
                 "/api/v1/certificates", "/api/v1/stats/system"):
        response = api_client.get(path)
        assert response.status_code == 401, path
        assert response.json()["success"] is False
