"""Rollups: hourly from raw, 6-hour and daily from hourly; re-running gives identical numbers."""

import datetime as dt

import pytest

from monitoring import services
from monitoring.models import Stats6h, StatsDaily, StatsHourly, UsageSample, VpnClient, VpnServer

UTC = dt.UTC
pytestmark = pytest.mark.django_db


def sample(client, when, rx, tx):
    return UsageSample(server=client.server, client=client, timestamp=when, bytes_received=rx, bytes_sent=tx,
                       interval_seconds=10)


@pytest.fixture
def clients():
    server = VpnServer.objects.create(name="vpn1", status_file="/nonexistent")
    return [VpnClient.objects.create(server=server, common_name=name) for name in ("alice", "bob")]


def table(model):
    return sorted(model.objects.values_list("client__common_name", "bucket", "bytes_received", "bytes_sent",
                                            "samples"))


def test_rollups_sum_each_period_and_rerunning_changes_nothing(clients):
    alice, bob = clients
    day = dt.datetime(2026, 3, 1, tzinfo=UTC)
    UsageSample.objects.bulk_create([
        sample(alice, day + dt.timedelta(minutes=5), 100, 10),
        sample(alice, day + dt.timedelta(minutes=59, seconds=59), 200, 20),
        sample(alice, day + dt.timedelta(hours=1), 400, 40),
        sample(alice, day + dt.timedelta(hours=7, minutes=30), 800, 80),
        sample(bob, day + dt.timedelta(hours=23, minutes=59), 5, 1),
        sample(bob, day + dt.timedelta(days=1, minutes=1), 7, 2),
    ])
    now = day + dt.timedelta(days=1, hours=2)
    services.rollup_all(now=now)
    hourly = table(StatsHourly)
    assert hourly == [
        ("alice", day, 300, 30, 2),
        ("alice", day + dt.timedelta(hours=1), 400, 40, 1),
        ("alice", day + dt.timedelta(hours=7), 800, 80, 1),
        ("bob", day + dt.timedelta(hours=23), 5, 1, 1),
        ("bob", day + dt.timedelta(days=1), 7, 2, 1),
    ]
    assert table(Stats6h) == [
        ("alice", day, 700, 70, 3),
        ("alice", day + dt.timedelta(hours=6), 800, 80, 1),
        ("bob", day + dt.timedelta(hours=18), 5, 1, 1),
        ("bob", day + dt.timedelta(days=1), 7, 2, 1),
    ]
    assert table(StatsDaily) == [("alice", day, 1500, 150, 4), ("bob", day, 5, 1, 1),
                                 ("bob", day + dt.timedelta(days=1), 7, 2, 1)]

    before = (table(StatsHourly), table(Stats6h), table(StatsDaily))
    services.rollup_all(now=now)
    services.rollup_all(now=now + dt.timedelta(minutes=3))
    assert (table(StatsHourly), table(Stats6h), table(StatsDaily)) == before


def test_an_incremental_rollup_completes_the_partial_current_hour(clients):
    alice, _ = clients
    hour = dt.datetime(2026, 3, 2, 10, tzinfo=UTC)
    UsageSample.objects.create(server=alice.server, client=alice, timestamp=hour + dt.timedelta(minutes=10),
                               bytes_received=100, bytes_sent=1, interval_seconds=10)
    services.rollup("stats_hourly", now=hour + dt.timedelta(minutes=11))
    UsageSample.objects.create(server=alice.server, client=alice, timestamp=hour + dt.timedelta(minutes=50),
                               bytes_received=50, bytes_sent=1, interval_seconds=10)
    services.rollup("stats_hourly", now=hour + dt.timedelta(minutes=51))
    assert table(StatsHourly) == [("alice", hour, 150, 2, 2)]
