"""A small fixed set of flows on 2025-02-21..24 (UTC) that the API and filterset tests count."""

import datetime as dt

import pytest

A, B, C = "001019756139935", "001019756139936", "001019756139937"


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def flow(**fields):
    from flowreports.models import FlowReport
    from flowreports.services import add_flows

    start = at(fields.pop("start"))
    values = {
        "subscriber_id": "", "source_port": None, "destination_port": None, "packets": 1, "bytes": 100,
        "direction": "", "action": "allow", "exporter": "test",
        "start_time": start, "end_time": start + dt.timedelta(seconds=fields.pop("seconds", 1)),
    }
    values.update(fields)
    [created] = add_flows([FlowReport(**values)])
    return created


@pytest.fixture
def flows(db):
    """Seven flows; the window 2025-02-22..2025-02-23 holds the first four and f7."""
    return {
        "f1": flow(subscriber_id=A, source_ip="192.168.1.100", source_port=10000, destination_ip="8.8.8.8",
                   destination_port=53, protocol=17, packets=100, bytes=5000, start="2025-02-22T10:30:00",
                   direction="uplink"),
        "f2": flow(subscriber_id=A, source_ip="1.1.1.1", source_port=443, destination_ip="192.168.1.100",
                   destination_port=20000, protocol=6, packets=800, bytes=40000, start="2025-02-23T08:00:00",
                   seconds=300, direction="downlink"),
        "f3": flow(subscriber_id=B, source_ip="192.168.1.101", source_port=30000, destination_ip="1.1.1.1",
                   destination_port=443, protocol=6, packets=500, bytes=25000, start="2025-02-22T12:00:00",
                   seconds=60, direction="uplink"),
        "f4": flow(subscriber_id=B, source_ip="192.168.1.101", source_port=30001, destination_ip="1.1.1.1",
                   destination_port=443, protocol=6, start="2025-02-22T23:59:59.999", direction="uplink",
                   action="drop"),
        "f5": flow(source_ip="2001:db8::1", source_port=5353, destination_ip="2001:db8::2", destination_port=53,
                   protocol=17, start="2025-02-21T23:59:59.999"),
        "f6": flow(subscriber_id=A, source_ip="192.168.1.100", source_port=10001, destination_ip="8.8.8.8",
                   destination_port=53, protocol=17, start="2025-02-24T00:00:00", direction="uplink"),
        "f7": flow(subscriber_id=C, source_ip="2001:db8:1::5", source_port=443, destination_ip="2001:4860::8888",
                   destination_port=443, protocol=6, start="2025-02-23T00:00:00", direction="uplink"),
    }


WINDOW = "start=2025-02-22&end=2025-02-23"
