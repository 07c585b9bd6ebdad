"""manage.py collect_flows end to end: real UDP export packets in, FlowReport rows and API numbers out."""

import io
import re
import socket
import struct
import threading
import time
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from flowreports.models import FlowReport, SubscriberPrefix

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
URL = "/api/v1/flow-reports"
EXPORT_TIME = 1_740_220_200  # 2025-02-22T10:30:00Z


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningCommand:
    """collect_flows in a thread, stopped by --run-seconds; its output is kept for assertions."""

    def __init__(self, seconds, **options):
        self.port = free_udp_port()
        self.out = io.StringIO()
        self.error = None
        self.options = {"listen": f"127.0.0.1:{self.port}", "run_seconds": seconds, "stats_interval": 0.5,
                        "flush_interval": 0.1, **options}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            call_command("collect_flows", stdout=self.out, **self.options)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
        finally:
            from django.db import connection

            connection.close()

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while "Collecting flows on" not in self.out.getvalue():
            assert time.monotonic() < deadline and self.error is None, (self.error, self.out.getvalue())
            time.sleep(0.02)
        return self

    def send(self, *packets):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for packet in packets:
                sender.sendto(packet, ("127.0.0.1", self.port))

    def wait(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "collect_flows did not stop"
        assert self.error is None, self.error

    def __exit__(self, *exc_info):
        self.wait()


IPFIX_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8), (89, 1)]
IPFIX_RECORD = struct.Struct("!4s4sHHBQQQQB")


def ipfix_packet(records, domain=1):
    template = struct.pack("!HH", 256, len(IPFIX_FIELDS)) + b"".join(struct.pack("!HH", *f) for f in IPFIX_FIELDS)
    template_set = struct.pack("!HH", 2, 4 + len(template)) + template
    data = b"".join(
        IPFIX_RECORD.pack(socket.inet_aton(src), socket.inet_aton(dst), sport, dport, proto, packets, octets,
                          start_ms, end_ms, status)
        for src, dst, sport, dport, proto, packets, octets, start_ms, end_ms, status in records
    )
    data_set = struct.pack("!HH", 256, 4 + len(data)) + data
    body = template_set + data_set
    return struct.pack("!HHIII", 10, 16 + len(body), EXPORT_TIME, 1, domain) + body


def v5_packet(records, sys_uptime=600_000):
    header = struct.pack("!HHIIIIBBH", 5, len(records), sys_uptime, EXPORT_TIME, 0, 1, 0, 0, 0)
    body = b"".join(
        struct.pack("!4s4s8xIIIIHH2xB9x", socket.inet_aton(src), socket.inet_aton(dst), packets, octets, first,
                    last, sport, dport, proto)
        for src, dst, sport, dport, proto, packets, octets, first, last in records
    )
    return header + body


def test_collect_flows_stores_ipfix_and_netflow_v5_flows_attributed_and_served_by_the_api(viewer_client):
    SubscriberPrefix.objects.create(cidr="100.64.0.0/24", subscriber_id="001019756139935")
    start_ms = EXPORT_TIME * 1000 - 60_000
    with RunningCommand(seconds=2.5) as command:
        command.send(
            ipfix_packet([
                ("100.64.0.10", "8.8.8.8", 40000, 53, 17, 2, 150, start_ms, start_ms + 500, 0x40),
                ("1.1.1.1", "100.64.0.10", 443, 40001, 6, 30, 42_000, start_ms + 1000, start_ms + 9000, 0x40),
                ("100.64.0.11", "203.0.113.5", 40002, 22, 6, 3, 180, start_ms + 2000, start_ms + 2000, 0x80),
            ]),
            # v5: first/last are uptime milliseconds; the packet's uptime 600000 is the export time.
            v5_packet([("192.0.2.1", "192.0.2.2", 1234, 80, 6, 5, 500, 590_000, 599_000)]),
            b"\x00\x0a garbage",
        )
    output = command.out.getvalue()
    writers = "2 writers" if connection.vendor == "postgresql" else "1 writer"
    assert f"Collecting flows on 127.0.0.1:{command.port} (batch size 50000, {writers})" in output
    assert ("Stopped; received 4 flows in 3 packets, stored 4 (1 without subscriber), dropped 0, "
            "packets lost in the receive buffer 0, malformed packets 1") in output

    rows = {
        (r.source_ip, r.destination_ip): r for r in FlowReport.objects.all()
    }
    assert set(rows) == {("100.64.0.10", "8.8.8.8"), ("1.1.1.1", "100.64.0.10"), ("100.64.0.11", "203.0.113.5"),
                         ("192.0.2.1", "192.0.2.2")}
    uplink = rows[("100.64.0.10", "8.8.8.8")]
    assert (uplink.subscriber_id, uplink.direction, uplink.action, uplink.exporter) == (
        "001019756139935", "uplink", "allow", "udp:127.0.0.1/obs 1")
    assert uplink.start_time == datetime.fromtimestamp((start_ms) / 1000, UTC)
    downlink = rows[("1.1.1.1", "100.64.0.10")]
    assert (downlink.direction, downlink.packets, downlink.bytes) == ("downlink", 30, 42_000)
    assert rows[("100.64.0.11", "203.0.113.5")].action == "drop"
    v5 = rows[("192.0.2.1", "192.0.2.2")]
    assert (v5.subscriber_id, v5.direction, v5.exporter) == ("", "", "udp:127.0.0.1/obs 0")
    assert v5.start_time == datetime.fromtimestamp(EXPORT_TIME - 10, UTC)

    listing = viewer_client.get(f"{URL}?start=2025-02-22&end=2025-02-22&subscriber_id=001019756139935").json()
    assert listing["result"]["total_count"] == 3
    assert [item["bytes"] for item in listing["result"]["items"]] == [180, 42_000, 150]
    stats = viewer_client.get(f"{URL}/stats?start=2025-02-22&end=2025-02-22").json()["result"]
    assert stats == {
        "protocols": [{"protocol": 6, "count": 3}, {"protocol": 17, "count": 1}],
        "top_destinations_uplink": [{"ip": "203.0.113.5", "count": 1}, {"ip": "8.8.8.8", "count": 1}],
    }
    dropped = viewer_client.get(f"{URL}?start=2025-02-22&end=2025-02-22&action=drop").json()["result"]
    assert [item["destination_ip"] for item in dropped["items"]] == ["203.0.113.5"]


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"flush_interval": 0}, "--flush-interval must be positive"),
    ({"status_interval": -1}, "--status-interval must be positive"),
    ({"writers": 0}, "--writers must be at least 1"),
    ({"listen": "127.0.0.1:65536"}, "expected HOST:PORT with a port from 0 to 65535"),
    ({"listen": "::1:2055"}, "write an IPv6 address in brackets"),
])
def test_bad_options_are_refused_before_anything_listens(options, message):
    out = io.StringIO()
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("collect_flows", stdout=out, run_seconds=0.1, **options)
    assert "Collecting flows" not in out.getvalue()


def test_several_writers_are_refused_on_sqlite_and_taken_on_postgresql():
    if connection.vendor == "sqlite":
        with pytest.raises(CommandError, match="SQLite takes one writer at a time"):
            call_command("collect_flows", stdout=io.StringIO(), run_seconds=0.1, writers=2)
        return
    with RunningCommand(seconds=1.0, writers=3) as command:
        command.send(v5_packet([("192.0.2.1", "192.0.2.2", 1234, 80, 6, 5, 500, 590_000, 599_000)] * 3))
    assert "(batch size 50000, 3 writers)" in command.out.getvalue()
    assert FlowReport.objects.count() == 3


def test_softflowd_export_of_a_pcap_lands_in_flow_reports(viewer_client, tmp_path):
    import shutil

    from flowreports.tests.test_collector_integration import _run_softflowd, build_traffic

    if shutil.which("softflowd") is None:
        pytest.skip("softflowd is not installed (Debian: softflowd)")
    SubscriberPrefix.objects.create(cidr="10.0.0.0/29", subscriber_id="lan-a")
    SubscriberPrefix.objects.create(cidr="2001:db8::/64", subscriber_id="lan-v6")
    traffic = build_traffic()
    pcap = tmp_path / "traffic.pcap"
    pcap.write_bytes(traffic.pcap())
    with RunningCommand(seconds=6) as command:
        _run_softflowd(str(pcap), ("127.0.0.1", command.port), 10, str(tmp_path))
    expected = traffic.flows()
    stored = {
        (r.source_ip, r.destination_ip, r.source_port, r.destination_port, r.protocol): (r.packets, r.bytes)
        for r in FlowReport.objects.all()
    }
    assert stored == expected
    by_subscriber = dict(FlowReport.objects.values_list("source_ip", "subscriber_id").distinct())
    assert by_subscriber["10.0.0.1"] == "lan-a"
    assert by_subscriber["10.0.0.9"] == ""
    assert by_subscriber["2001:db8::1"] == "lan-v6"

    day = datetime.fromtimestamp(min(t for t, _ in traffic.frames), UTC).date().isoformat()
    result = viewer_client.get(f"{URL}?start={day}&end={day}&per_page=100").json()["result"]
    assert result["total_count"] == len(expected)
    assert sum(item["bytes"] for item in result["items"]) == sum(b for _, b in expected.values())
    assert f"stored {len(expected)} " in command.out.getvalue()
