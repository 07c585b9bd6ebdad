"""Demo flow reports: subscribers with prefixes and a few days of flows to browse, filter and group."""

import datetime as dt
import random as _random

from flowreports.models import FlowReport, SubscriberPrefix
from flowreports.services import store_flows

DEMO_EXPORTER = "demo"
SUBSCRIBERS = [(f"00101975613{9935 + i:04d}", f"100.64.{i}.0/24") for i in range(8)] + [
    ("001019756149999", "2001:db8:100::/48"),
]
DESTINATIONS = [
    ("8.8.8.8", 17, 53), ("1.1.1.1", 17, 53), ("1.1.1.1", 6, 443), ("142.250.74.110", 6, 443),
    ("151.101.1.140", 6, 443), ("17.253.144.10", 6, 443), ("192.0.2.80", 6, 80), ("203.0.113.25", 6, 25),
    ("198.51.100.123", 17, 123), ("2001:4860:4860::8888", 17, 53), ("2606:4700::6810:84e5", 6, 443),
]


def has_data():
    return FlowReport.objects.filter(exporter=DEMO_EXPORTER).exists()


def _flows(count, days, now, random):
    for _ in range(count):
        subscriber, cidr = random.choice(SUBSCRIBERS)
        ipv6 = ":" in cidr
        candidates = [d for d in DESTINATIONS if (":" in d[0]) == ipv6]
        remote, protocol, service_port = random.choice(candidates)
        inside = (f"2001:db8:100::{random.randint(1, 0xffff):x}" if ipv6
                  else cidr.rsplit(".", 1)[0] + f".{random.randint(2, 254)}")
        start = now - dt.timedelta(seconds=random.uniform(0, days * 86400))
        duration = dt.timedelta(milliseconds=random.randint(1, 120_000))
        packets = random.randint(1, 2000)
        size = random.randint(60, 1400)
        uplink = random.random() < 0.5
        client_port = random.randint(1024, 65535)
        yield {
            "source_ip": inside if uplink else remote,
            "destination_ip": remote if uplink else inside,
            "source_port": client_port if uplink else service_port,
            "destination_port": service_port if uplink else client_port,
            "protocol": protocol, "packets": packets, "bytes": packets * size,
            "start_time": start, "end_time": start + duration,
            "action": "drop" if random.random() < 0.03 else "allow",
        }
    # A little traffic no prefix matches, as collectors see it (kept, with subscriber_id "").
    for index in range(max(1, count // 100)):
        start = now - dt.timedelta(hours=index % (days * 24) + 1)
        yield {
            "source_ip": "198.18.0.7", "destination_ip": "198.18.5.9", "source_port": 40000 + index,
            "destination_port": 443, "protocol": 6, "packets": 3, "bytes": 180,
            "start_time": start, "end_time": start, "action": "allow",
        }


def seed(*, now, options):
    random = _random.Random(options.get("seed", 42))
    for subscriber, cidr in SUBSCRIBERS:
        SubscriberPrefix.objects.get_or_create(
            cidr=cidr, defaults={"subscriber_id": subscriber, "description": "demo subscriber"}
        )
    stored = unattributed = 0
    batch = []
    for flow in _flows(options.get("flows", 20000), max(1, options.get("days", 7)), now, random):
        batch.append(flow)
        if len(batch) == 5000:
            result = store_flows(batch, exporter=DEMO_EXPORTER, now=now)
            stored, unattributed, batch = stored + result.stored, unattributed + result.unattributed, []
    if batch:
        result = store_flows(batch, exporter=DEMO_EXPORTER, now=now)
        stored, unattributed = stored + result.stored, unattributed + result.unattributed
    return f"{len(SUBSCRIBERS)} subscriber prefixes, {stored} flow reports ({unattributed} without subscriber)"
