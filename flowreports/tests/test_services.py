"""Subscriber attribution and store_flows: longest prefix, IPv4/IPv6, VPN addresses, bulk insert, counts."""

import datetime as dt
from collections import Counter

import pytest
from django.db import connection

from flowreports import services, subscribers
from flowreports.collector import FlowRecord
from flowreports.collector.decode import micros
from flowreports.models import FlowReport, SubscriberPrefix
from flowreports.subscribers import SubscriberTable

T0 = dt.datetime(2025, 2, 22, 10, 30, tzinfo=dt.UTC)


def record(source, destination, *, action="allow", exporter="192.0.2.1", domain=0, start=T0, end=None, **extra):
    values = dict(exporter=exporter, observation_domain=domain, source_ip=source, destination_ip=destination,
                  source_port=40000, destination_port=443, protocol=6, packets=10, bytes=1500,
                  start_us=micros(start), end_us=micros(end or start + dt.timedelta(seconds=2)), action=action,
                  version=10)
    values.update(extra)
    return FlowRecord(**values)


@pytest.mark.parametrize(("address", "subscriber"), [
    ("10.8.0.1", "office"),
    ("10.8.1.7", "branch"),        # /24 inside the /16: the longer prefix wins
    ("10.8.1.9", "host-9"),        # a /32 beats both
    ("10.9.0.1", None),
    ("::ffff:10.8.1.9", "host-9"),  # IPv4-mapped IPv6 is the IPv4 address
    ("2001:db8:1::42", "v6-site"),
    ("2001:db8:1:2::42", "v6-lan"),
    ("2001:db8:2::1", None),
    ("0.0.0.1", None),
    ("not an ip", None),
    ("", None),
    (None, None),
])
def test_longest_prefix_match(address, subscriber):
    table = SubscriberTable([
        ("10.8.0.0/16", "office"), ("10.8.1.0/24", "branch"), ("10.8.1.9/32", "host-9"),
        ("2001:db8:1::/48", "v6-site"), ("2001:db8:1:2::/64", "v6-lan"),
    ])
    assert table.lookup(address) == subscriber


def test_a_default_route_prefix_matches_everything():
    assert SubscriberTable([("0.0.0.0/0", "all")]).lookup("203.0.113.1") == "all"


@pytest.mark.parametrize(("source", "destination", "expected"), [
    ("10.8.0.5", "8.8.8.8", ("office", "uplink")),
    ("8.8.8.8", "10.8.0.5", ("office", "downlink")),
    ("10.8.0.5", "10.8.1.9", ("office", "uplink")),  # subscriber to subscriber: the source's, uplink
    ("8.8.8.8", "1.1.1.1", ("", "")),
    (None, "10.8.0.5", ("office", "downlink")),
])
def test_direction_follows_the_inside_address(source, destination, expected):
    table = SubscriberTable([("10.8.0.0/16", "office"), ("10.8.1.9/32", "host-9")])
    assert table.attribute(source, destination) == expected


@pytest.mark.django_db
def test_vpn_tunnel_addresses_name_the_common_name_and_configured_hosts_win_ties(monkeypatch):
    SubscriberPrefix.objects.create(cidr="10.8.0.0/24", subscriber_id="vpn-pool")
    SubscriberPrefix.objects.create(cidr="10.8.0.7/32", subscriber_id="pinned")
    monkeypatch.setattr(subscribers, "vpn_addresses", lambda: {
        "10.8.0.6": "alice", "10.8.0.7": "bob", "fd00:8::1000": "carol", "garbage": "x",
    })
    table = SubscriberTable.load()
    assert [table.lookup(a) for a in ("10.8.0.6", "10.8.0.7", "10.8.0.99", "fd00:8::1000")] == [
        "alice", "pinned", "vpn-pool", "carol",
    ]


@pytest.mark.django_db
def test_without_the_monitoring_selector_only_prefixes_are_used():
    # monitoring.selectors.vpn_subscriber_addresses is optional; its absence is not an error.
    assert isinstance(subscribers.vpn_addresses(), dict)
    SubscriberPrefix.objects.create(cidr="192.168.0.0/16", subscriber_id="lan")
    assert SubscriberTable.load().lookup("192.168.3.4") == "lan"


@pytest.mark.django_db
def test_a_failing_monitoring_selector_does_not_stop_storage(monkeypatch):
    import sys
    import types

    module = types.ModuleType("monitoring.selectors")

    def broken():
        raise RuntimeError("monitoring is down")

    module.vpn_subscriber_addresses = broken
    monkeypatch.setitem(sys.modules, "monitoring.selectors", module)
    assert subscribers.vpn_addresses() == {}


@pytest.mark.django_db
def test_store_flows_attributes_counts_and_labels_collector_records():
    SubscriberPrefix.objects.create(cidr="100.64.0.0/10", subscriber_id="cgnat")
    SubscriberPrefix.objects.create(cidr="2001:db8:a::/48", subscriber_id="v6")
    result = services.store_flows([
        record("100.64.0.10", "1.1.1.1"),
        record("1.1.1.1", "100.64.0.10", action="drop", domain=7),
        record("2001:DB8:A::1", "2001:4860::8888", exporter="2001:db8::99"),
        record("192.0.2.1", "192.0.2.2"),
        record(None, None, protocol=1, source_port=0, destination_port=0),
    ], exporter=services.collector_exporter)
    assert result == services.StoreResult(stored=5, unattributed=2)
    rows = list(FlowReport.objects.order_by("id").values_list(
        "subscriber_id", "direction", "action", "exporter", "source_ip", "destination_ip"))
    assert rows == [
        ("cgnat", "uplink", "allow", "udp:192.0.2.1/obs 0", "100.64.0.10", "1.1.1.1"),
        ("cgnat", "downlink", "drop", "udp:192.0.2.1/obs 7", "1.1.1.1", "100.64.0.10"),
        ("v6", "uplink", "allow", "udp:2001:db8::99/obs 0", "2001:db8:a::1", "2001:4860::8888"),
        ("", "", "allow", "udp:192.0.2.1/obs 0", "192.0.2.1", "192.0.2.2"),
        ("", "", "allow", "udp:192.0.2.1/obs 0", None, None),
    ]
    first = FlowReport.objects.order_by("id").first()
    assert (first.start_time, first.end_time) == (T0, T0 + dt.timedelta(seconds=2))
    assert (first.source_port, first.destination_port, first.protocol, first.packets, first.bytes) == (
        40000, 443, 6, 10, 1500)


@pytest.mark.django_db
def test_store_flows_accepts_mappings_and_keeps_given_subscribers():
    result = services.store_flows([
        {"source_ip": "10.0.0.1", "destination_ip": "10.0.0.2", "protocol": 17, "packets": 1, "bytes": 60,
         "start_time": dt.datetime(2025, 1, 1, 12, 0, 0, 123456), "end_time": dt.datetime(2025, 1, 1, 12, 0, 1),
         "subscriber_id": "given", "direction": "downlink", "action": "drop", "source_port": None},
    ], exporter="http")
    assert result == services.StoreResult(1, 0)
    row = FlowReport.objects.get()
    assert (row.subscriber_id, row.direction, row.action, row.exporter, row.source_port) == (
        "given", "downlink", "drop", "http", None)
    # Naive times are UTC, and microseconds survive (COPY on PostgreSQL, bulk_create elsewhere).
    assert row.start_time == dt.datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_store_flows_loads_the_prefix_table_once_per_batch(django_assert_num_queries):
    SubscriberPrefix.objects.create(cidr="10.0.0.0/8", subscriber_id="ten")
    batch = [record(f"10.0.{i // 250}.{i % 250}", "8.8.8.8") for i in range(3000)]
    # One read of the prefixes and one of the VPN tunnel addresses; then one COPY on PostgreSQL
    # (Django does not log it) or two bulk INSERTs; one upsert per rollup (hourly, sources, destinations),
    # one read of which of the batch's hours are sealed (on PostgreSQL after locking the flow table: one
    # statement more), and the savepoint (and its release) of the transaction they share.
    from django.db import connection

    from vpnmonitor import partitions

    # The day's partition exists (made ahead, or by an earlier batch of that day): nothing to make here.
    partitions.ensure(FlowReport, {partitions.day_number(T0)})
    expected = (2 + 2 if connection.vendor == "postgresql" else 2 + 2 + 1) + 3 + 2
    with django_assert_num_queries(expected):
        assert services.store_flows(batch, exporter="x") == services.StoreResult(3000, 0)
    assert FlowReport.objects.filter(subscriber_id="ten", direction="uplink").count() == 3000


@pytest.mark.django_db
def test_empty_batch_stores_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert services.store_flows([], exporter="x") == services.StoreResult(0, 0)


@pytest.mark.django_db
def test_subscriber_prefix_is_validated_and_normalised():
    from django.core.exceptions import ValidationError

    prefix = SubscriberPrefix(cidr="10.0.0.1/24", subscriber_id="x")
    with pytest.raises(ValidationError):
        prefix.full_clean()
    saved = SubscriberPrefix.objects.create(cidr="2001:DB8::/32", subscriber_id="x")
    assert saved.cidr == "2001:db8::/32"


def collector_batch():
    """Collector records covering what the sink's encoder distinguishes: families, attribution, drops, times."""
    later = T0 + dt.timedelta(hours=1, microseconds=654321)
    return [
        record("100.64.0.10", "1.1.1.1"),
        record("1.1.1.1", "100.64.0.10", action="drop", domain=7),
        record("2001:DB8:A::1", "2001:4860::8888", exporter="2001:db8::99", protocol=17),
        record("192.0.2.1", "192.0.2.2", start=later, end=later + dt.timedelta(milliseconds=1)),
        record(None, None, protocol=1, source_port=0, destination_port=0),
        record("::ffff:100.64.0.11", "8.8.8.8", packets=2**40, bytes=2**62, start=dt.datetime(1999, 12, 31, 23,
               59, 59, 999999, tzinfo=dt.UTC)),
        record("100.64.0.10", "1.1.1.1", destination_port=65535, source_port=65535),
    ]


COMPARED = ("subscriber_id", "direction", "action", "exporter", "source_ip", "destination_ip", "source_port",
            "destination_port", "protocol", "packets", "bytes", "start_time", "end_time")


@pytest.mark.django_db(transaction=True)
def test_the_collector_sink_stores_what_store_flows_stores_and_keeps_the_rollups_exact():
    from flowreports import rollups
    from flowreports.models import FlowReportHourly

    SubscriberPrefix.objects.create(cidr="100.64.0.0/10", subscriber_id="cgnat")
    SubscriberPrefix.objects.create(cidr="2001:db8:a::/48", subscriber_id="v6")
    assert services.store_flows(collector_batch(), exporter=services.collector_exporter).unattributed == 2
    expected = list(FlowReport.objects.order_by("id").values_list(*COMPARED))
    services.delete_flows(FlowReport.objects.all())

    sink = services.FlowSink()
    try:
        # Twice: the second batch reuses what the first one cached per address pair.
        assert sink(collector_batch()) == services.StoreResult(7, 2)
        assert sink(collector_batch()) == services.StoreResult(7, 2)
    finally:
        sink.close()
    stored = list(FlowReport.objects.order_by("id").values_list(*COMPARED))
    # The same rows, each twice; the sink inserts a batch in order of destination address (PostgreSQL's
    # index pages), so only the order of the ids differs.
    assert Counter(stored) == Counter(expected + expected)
    if connection.vendor == "postgresql":
        destinations = [row[5] for row in stored[:7]]
        assert destinations == sorted(destinations, key=lambda address: address or "")
    assert ("v6", "uplink", "allow", "udp:2001:db8::99/obs 0", "2001:db8:a::1", "2001:4860::8888") in [
        row[:6] for row in stored]
    assert [row[11] for row in stored].count(T0 + dt.timedelta(hours=1, microseconds=654321)) == 2
    assert sink.totals() == {"stored": 14, "unattributed": 4}

    def rollup_rows():
        return (sorted(FlowReportHourly.objects.values_list("hour", "protocol", "direction", "action", "flows")),
                [sorted(endpoint.model.objects.values_list(*endpoint.key, "flows")) for endpoint in rollups.ENDPOINTS])

    kept = rollup_rows()
    rollups.rebuild()
    assert rollup_rows() == kept
    assert sum(row[-1] for row in kept[0]) == 14


@pytest.mark.django_db(transaction=True)
def test_two_writers_add_to_the_same_rollup_rows_at_once_without_deadlock_or_lost_counts():
    """The collector's two writers on PostgreSQL: concurrent batches upsert the same rollup rows."""
    import threading

    from flowreports import rollups
    from flowreports.models import FlowReportHourly

    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes one writer at a time (FlowSink.writers is 1 there)")
    SubscriberPrefix.objects.create(cidr="100.64.0.0/10", subscriber_id="cgnat")
    sink = services.FlowSink()
    assert sink.writers == 2
    # The same subscribers, remotes, ports and hours in every batch, the second writer's in reverse order:
    # both add to the same thousands of rollup rows at the same time, and no count may be lost.
    flows = [
        record(f"100.64.{s // 250}.{s % 250 + 1}", f"198.51.100.{r}", destination_port=443 + r % 3,
               start=T0 + dt.timedelta(hours=h))
        for s in range(500) for r in range(1, 4) for h in range(2)
    ]
    rounds = 6
    start_together = threading.Barrier(2, timeout=30)
    failures = []

    def write(batch):
        try:
            for _ in range(rounds):
                start_together.wait()
                sink(batch)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)
            start_together.abort()

    threads = [threading.Thread(target=write, args=(batch,)) for batch in (flows, flows[::-1])]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        sink.close()
    assert failures == []
    total = 2 * rounds * len(flows)
    assert sink.totals() == {"stored": total, "unattributed": 0}
    assert FlowReport.objects.count() == total

    def rollup_rows():
        return (sorted(FlowReportHourly.objects.values_list("hour", "protocol", "direction", "action", "flows")),
                [sorted(endpoint.model.objects.values_list(*endpoint.key, "flows")) for endpoint in rollups.ENDPOINTS])

    kept = rollup_rows()
    assert [row[-1] for row in kept[0]] == [total // 2] * 2  # two hours, uplink TCP allowed
    rollups.rebuild()
    assert rollup_rows() == kept
