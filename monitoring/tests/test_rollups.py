"""Usage rollups: hourly, 6-hour and daily, added when samples are stored, repaired from the samples since the
watermark (re-running gives identical numbers), and kept when the samples are pruned."""

import datetime as dt
import random

import pytest
from django.db.models import F

from monitoring import services
from monitoring.models import Stats6h, StatsDaily, StatsHourly, UsageSample, VpnClient, VpnServer
from vpnmonitor import retention

UTC = dt.UTC
pytestmark = pytest.mark.django_db


def sample(client, when, rx, tx):
    return UsageSample(server=client.server, client=client, timestamp=when, bytes_received=rx, bytes_sent=tx,
                       interval_seconds=10)


@pytest.fixture
def clients():
    server = VpnServer.objects.create(name="vpn1", status_file="/nonexistent")
    return [VpnClient.objects.create(server=server, common_name=name) for name in ("alice", "bob")]


def table(model, **filters):
    return sorted(model.objects.filter(**filters).values_list("client__common_name", "bucket", "bytes_received", "bytes_sent",
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


# ---- the rollups are kept when samples are stored, and outlive the samples ---------------------

STEPS = {StatsHourly: dt.timedelta(hours=1), Stats6h: dt.timedelta(hours=6), StatsDaily: dt.timedelta(days=1)}


def expected_from(samples, step):
    """Each (client, bucket) of the samples summed in Python, buckets counted from the epoch."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    out = {}
    for name, when, rx, tx in samples:
        bucket = epoch + (when - epoch) // step * step
        row = out.setdefault((name, bucket), [0, 0, 0])
        row[0] += rx
        row[1] += tx
        row[2] += 1
    return sorted((name, bucket, rx, tx, n) for (name, bucket), (rx, tx, n) in out.items())


def raw_samples(**filters):
    return list(UsageSample.objects.filter(**filters).values_list("client__common_name", "timestamp", "bytes_received", "bytes_sent"))


def test_polls_keep_the_hourly_6_hour_and_daily_rollups_equal_to_their_raw_samples():
    from monitoring.sources.status import parse_status
    from monitoring.tests.factories import status2

    rng = random.Random(7)
    servers = [VpnServer.objects.create(name=name, management_address="127.0.0.1:7505") for name in ("vpn1", "vpn2")]
    since = dt.datetime(2026, 3, 1, 21, 3, tzinfo=UTC)
    counters = {}
    moment = since
    # Reads every 37 minutes for 40 hours: across hours, 6-hour buckets and two midnights.
    while moment < since + dt.timedelta(hours=40):
        moment += dt.timedelta(minutes=37, seconds=rng.randint(0, 30))
        for index, server in enumerate(servers):
            clients = []
            for number, name in enumerate((f"alice-{server.name}", f"bob-{server.name}", "carol")):
                key = (server.pk, name)
                if rng.random() < 0.2:
                    counters.pop(key, None)  # disconnected at this read; the next read is a new connection
                    continue
                connected, received, sent = counters.get(key, (moment - dt.timedelta(seconds=5), 0, 0))
                counters[key] = (connected, received + rng.randint(0, 10**7), sent + rng.randint(0, 10**6))
                clients.append((name, index * 10 + number, *counters[key], f"10.8.{index}.{number + 2}"))
            services.record_poll(server, parse_status(status2(moment, clients)))

    samples = raw_samples()
    assert len(samples) > 150
    assert VpnClient.objects.filter(common_name="carol").count() == 2  # one carol per server
    for model, step in STEPS.items():
        for server in servers:
            # Each server's rows hold its own clients' samples (the two carols are two clients).
            assert table(model, server=server) == expected_from(raw_samples(server=server), step)
        assert not model.objects.exclude(server=F("client__server")).exists()
    assert sum(StatsDaily.objects.values_list("samples", flat=True)) == len(samples)


def test_pruning_samples_keeps_the_rollups_and_the_repair_does_not_recount_pruned_buckets(clients):
    alice, bob = clients
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    rng = random.Random(11)
    stored = [
        sample(rng.choice(clients), start + dt.timedelta(minutes=23 * i), rng.randint(1, 10**6), rng.randint(1, 10**5))
        for i in range(10 * 24 * 60 // 23)  # ten days, every 23 minutes
    ]
    services.store_samples(stored)
    before = {model: table(model) for model in STEPS}
    assert before[StatsHourly] == expected_from(raw_samples(), dt.timedelta(hours=1))

    # Seven days of samples are kept by default: the cutoff falls inside an hour, a 6-hour bucket and a day.
    now = start + dt.timedelta(days=9, hours=14, minutes=30)
    deleted = retention.prune("vpn_raw", now=now)
    cutoff = now - dt.timedelta(days=7)
    assert deleted == sum(1 for s in stored if s.timestamp < cutoff) > 0
    assert not UsageSample.objects.filter(timestamp__lt=cutoff).exists()
    assert {model: table(model) for model in STEPS} == before

    services.rollup_all(now=now)
    services.rollup_all(now=now + dt.timedelta(hours=2))
    assert {model: table(model) for model in STEPS} == before
