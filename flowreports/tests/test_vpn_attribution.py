"""Flows from or to a connected VPN client's tunnel address are that client's (common name as subscriber)."""

import datetime as dt

import pytest

from flowreports.models import FlowReport, SubscriberPrefix
from flowreports.services import store_flows
from monitoring import services as monitoring_services
from monitoring.models import VpnServer
from monitoring.sources.status import parse_status
from monitoring.tests.factories import at, status2

pytestmark = pytest.mark.django_db


def flow(source, destination):
    start = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
    return {"source_ip": source, "destination_ip": destination, "source_port": 40000, "destination_port": 443,
            "protocol": 6, "packets": 10, "bytes": 1500, "start_time": start, "end_time": start, "action": "allow"}


def test_tunnel_addresses_of_connected_vpn_clients_name_the_subscriber():
    server = VpnServer.objects.create(name="vpn1", status_file="/nonexistent")
    monitoring_services.record_poll(server, parse_status(status2(at(0), [("user-alice", 1, at(-5), 1, 1, "10.8.0.2"),
                                                                         ("user-bob", 2, at(-5), 1, 1, "10.8.0.3")])))
    SubscriberPrefix.objects.create(cidr="192.0.2.0/24", subscriber_id="001019756139935")
    result = store_flows([flow("10.8.0.2", "8.8.8.8"), flow("1.1.1.1", "10.8.0.3"), flow("192.0.2.7", "9.9.9.9"),
                          flow("198.51.100.1", "203.0.113.1")], exporter="http")
    assert (result.stored, result.unattributed) == (4, 1)
    assert list(FlowReport.objects.order_by("id").values_list("subscriber_id", "direction")) == [
        ("user-alice", "uplink"), ("user-bob", "downlink"), ("001019756139935", "uplink"), ("", "")]

    # Once bob disconnects, his old tunnel address no longer names him.
    monitoring_services.record_poll(server, parse_status(status2(at(10), [("user-alice", 1, at(-5), 2, 2,
                                                                           "10.8.0.2")])))
    store_flows([flow("1.1.1.1", "10.8.0.3")], exporter="http")
    assert FlowReport.objects.order_by("-id").values_list("subscriber_id", flat=True)[0] == ""
