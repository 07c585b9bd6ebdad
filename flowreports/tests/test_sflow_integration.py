"""pmacct's sfprobe samples a generated pcap and exports sFlow v5 to collect_flows and to nfdump's sfcapd.

Each datagram pmacctd sends goes, through a relay in this test, to both collectors, so they see the same
samples; the relay also keeps them for the decoder checks. Both collectors store one flow per sample with
packets = sampling rate and bytes = frame length × sampling rate, so their sums must be equal.
"""

import json
import os
import pathlib
import socket
import struct
import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest
from django.db.models import Count, Sum

from flowreports.collector.sflow import SFlowDecoder
from flowreports.models import CollectorStatus, FlowReport, SubscriberPrefix
from flowreports.tests.test_collect_flows import RunningCommand
from flowreports.tests.test_collector_integration import (
    PCAP_START,
    Traffic,
    _binary,
    _free_udp_port,
    _ipv4,
    _ipv6,
    _stop,
    _tcp,
    _udp,
    _wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REQUIRED_BINARIES = ("pmacctd", "sfcapd", "nfdump")
SAMPLING_RATE = 8
SUB_AGENT_ID = 7


@pytest.fixture(autouse=True)
def _require_binaries():
    missing = [name for name in REQUIRED_BINARIES if _binary(name) is None]
    if missing:
        message = f"sFlow tools not installed: {', '.join(missing)} (Debian: pmacct, nfdump-sflow, nfdump)"
        if os.environ.get("VPNMONITOR_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)


class SampledTraffic:
    """Frames for a pcap, and the lengths an sFlow agent reports for each connection's frames."""

    def __init__(self):
        self.pcap_builder = Traffic()
        self.frame_lengths = defaultdict(set)  # (source, destination, source port, destination port, protocol)

    def add(self, at, frame, key, zero_macs=False):
        if zero_macs:
            # pmacct takes an all-zero MAC header for a capture without link layer: it sends the IP packet
            # alone (header protocol IPv4/IPv6), its length counting a 4-octet FCS as for any frame.
            frame = b"\0" * 12 + frame[12:]
            self.frame_lengths[key].add(len(frame) - 14 + 4)
        else:
            # frame_length counts the 4-octet FCS that the capture does not hold (sFlow v5, sampled_header).
            self.frame_lengths[key].add(len(frame) + 4)
        self.pcap_builder.frames.append((at, frame))

    def pcap(self):
        return self.pcap_builder.pcap()


def build_traffic():
    traffic = SampledTraffic()
    t = PCAP_START
    client, server = ("10.0.0.1", 40000), ("198.51.100.7", 443)
    for index in range(300):
        at = t + index * 0.001
        traffic.add(at, _ipv4(server[0], client[0], 6, _tcp(server[1], client[1], 0x18, 1400)),
                    (server[0], client[0], server[1], client[1], 6))
        if index % 2:
            traffic.add(at + 0.0005, _ipv4(client[0], server[0], 6, _tcp(client[1], server[1], 0x10, 0)),
                        (client[0], server[0], client[1], server[1], 6))
    for index in range(80):
        at = t + 0.5 + index * 0.002
        traffic.add(at, _ipv4("10.0.0.3", "192.0.2.53", 17, _udp(5353, 53, 40)), ("10.0.0.3", "192.0.2.53", 5353, 53, 17))
        traffic.add(at + 0.001, _ipv4("192.0.2.53", "10.0.0.3", 17, _udp(53, 5353, 120)),
                    ("192.0.2.53", "10.0.0.3", 53, 5353, 17))
    for index in range(80):
        traffic.add(t + 1 + index * 0.002, _ipv6("2001:db8::1", "2001:db8:ffff::2", 17, _udp(5000, 53, 64)),
                    ("2001:db8::1", "2001:db8:ffff::2", 5000, 53, 17))
    for index in range(60):
        traffic.add(t + 1.2 + index * 0.002, _ipv6("2001:db8::10", "2001:db8:ffff::20", 6, _tcp(41000, 443, 0x18, 500)),
                    ("2001:db8::10", "2001:db8:ffff::20", 41000, 443, 6))
    for index in range(80):
        frame = _ipv4("10.0.0.5", "203.0.113.9", 6, _tcp(50000, 22, 0x18, 100))
        tagged = frame[:12] + struct.pack("!HH", 0x8100, 42) + frame[12:]  # 802.1Q, VLAN 42
        traffic.add(t + 1.4 + index * 0.002, tagged, ("10.0.0.5", "203.0.113.9", 50000, 22, 6))
    for index in range(60):
        echo = struct.pack("!BBHHH", 8, 0, 0, 1, index) + b"p" * 56
        traffic.add(t + 1.6 + index * 0.002, _ipv4("10.0.0.7", "203.0.113.1", 1, echo),
                    ("10.0.0.7", "203.0.113.1", 0, 8 << 8, 1))
    for index in range(60):
        traffic.add(t + 1.8 + index * 0.002, _ipv4("10.0.0.8", "203.0.113.2", 17, _udp(6000, 7000, 300)),
                    ("10.0.0.8", "203.0.113.2", 6000, 7000, 17), zero_macs=True)
    return traffic


class Relay(threading.Thread):
    """Receives the exporter's datagrams on loopback, keeps them and sends each on to every destination."""

    def __init__(self, destinations):
        super().__init__(daemon=True)
        self.destinations = destinations
        self.datagrams = []
        self.last_arrival = time.monotonic()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.05)
        self.stopping = threading.Event()

    @property
    def port(self):
        return self.socket.getsockname()[1]

    def run(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while not self.stopping.is_set():
                try:
                    datagram = self.socket.recv(65535)
                except TimeoutError:
                    continue
                self.datagrams.append(datagram)
                self.last_arrival = time.monotonic()
                for destination in self.destinations:
                    sender.sendto(datagram, destination)

    def stop(self):
        self.stopping.set()
        self.join(5)
        self.socket.close()


def _run_pmacctd(pcap_path, port, workdir):
    config = pathlib.Path(workdir) / "pmacctd.conf"
    config.write_text(
        "daemonize: false\n"
        f"pcap_savefile: {pcap_path}\n"
        "plugins: sfprobe\n"
        f"sfprobe_receiver: 127.0.0.1:{port}\n"
        "sfprobe_agentip: 127.0.0.1\n"
        f"sfprobe_agentsubid: {SUB_AGENT_ID}\n"
        f"sampling_rate: {SAMPLING_RATE}\n"
    )
    # pmacctd sleeps 2 s before it reads a savefile, exports as it reads and exits at its end.
    result = subprocess.run([_binary("pmacctd"), "-f", str(config)], capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode(errors="replace")
    # pmacctd 1.7.7's exit status at the end of a savefile is 0 or 1 depending on which process ends first.
    assert "ERROR" not in output and "sfprobe ): Shutting down" in output, output
    assert f"Sampling at: 1/{SAMPLING_RATE}" in output, output


def _sfcapd_flows(directory):
    output = subprocess.run(
        [_binary("nfdump"), "-R", directory, "-o", "json"], capture_output=True, check=True, timeout=15,
    ).stdout.decode()
    flows = Counter()
    for record in json.loads(output or "[]"):
        # Every record sfcapd writes is a sample; nfdump 1.7.1 prints its IPv6 ones with "type": "EVENT".
        if "in_packets" not in record:
            continue
        source = record.get("src4_addr") or record.get("src6_addr")
        destination = record.get("dst4_addr") or record.get("dst6_addr")
        flows[_key(source, destination, record.get("src_port"), record.get("dst_port"), record["proto"],
                   record["in_packets"], record["in_bytes"])] += 1
    return flows


def _key(source, destination, source_port, destination_port, protocol, packets, octets):
    # nfdump 1.7.1 shows the echo requests sampled here as ICMP type 0 code 0 (they are type 8), so ICMP is
    # compared without them; the decoded datagrams' checks below hold type 8 << 8 as the destination port.
    if protocol in (1, 58):
        source_port = destination_port = None
    return source, destination, source_port, destination_port, protocol, packets, octets


def test_pmacct_sflow_export_is_stored_as_sfcapd_stores_it(tmp_path, viewer_client):
    SubscriberPrefix.objects.create(cidr="10.0.0.0/24", subscriber_id="lan")
    SubscriberPrefix.objects.create(cidr="2001:db8::/64", subscriber_id="lan-v6")
    traffic = build_traffic()
    pcap = tmp_path / "traffic.pcap"
    pcap.write_bytes(traffic.pcap())

    capture_dir = tmp_path / "sfcapd"
    capture_dir.mkdir()
    sfcapd_port = _free_udp_port()
    log_path = tmp_path / "sfcapd.log"
    with open(log_path, "wb") as log:
        sfcapd = subprocess.Popen(
            [_binary("sfcapd"), "-w", str(capture_dir), "-b", "127.0.0.1", "-p", str(sfcapd_port), "-t", "3600"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    relay = None
    try:
        assert _wait_for(lambda: b"Startup" in log_path.read_bytes(), 10), log_path.read_bytes()
        with RunningCommand(seconds=10, status_interval=0.2) as command:
            relay = Relay([("127.0.0.1", sfcapd_port), ("127.0.0.1", command.port)])
            relay.start()
            _run_pmacctd(str(pcap), relay.port, str(tmp_path))
            assert _wait_for(lambda: time.monotonic() - relay.last_arrival > 0.5, 10)
            relay.stop()
            real = relay.datagrams
            # Cut copies of a real datagram, to the collector only: counted as malformed, nothing stored.
            command.send(*(real[0][:cut] for cut in (3, 20, 40, len(real[0]) // 2, len(real[0]) - 1)))
        time.sleep(0.3)  # sfcapd writes its file when told to stop
    finally:
        if relay is not None and relay.is_alive():
            relay.stop()
        _stop(sfcapd)
    sfcapd_flows = _sfcapd_flows(str(capture_dir))

    # The real datagrams, decoded: one flow per sample, each frame's length as built, at the configured rate.
    decoded = SFlowDecoder()
    samples = [flow for datagram in real for flow in decoded.decode(datagram, "127.0.0.1")]
    assert decoded.malformed_packets == 0 and decoded.samples_without_flow == 0
    assert len(samples) >= 60  # about 1 in 8 of 960 frames
    for flow in samples:
        assert (flow.packets, flow.sampling_rate, flow.observation_domain) == (SAMPLING_RATE, SAMPLING_RATE, 7)
        key = (flow.source_ip, flow.destination_ip, flow.source_port, flow.destination_port, flow.protocol)
        assert flow.bytes // SAMPLING_RATE in traffic.frame_lengths[key], key
    # Every kind of frame was sampled: Ethernet, 802.1Q, IPv6, ICMP and pmacct's header protocol IPv4.
    assert {(f.source_ip, f.protocol) for f in samples} >= {
        ("198.51.100.7", 6), ("2001:db8::1", 17), ("10.0.0.5", 6), ("10.0.0.7", 1), ("10.0.0.8", 17)}

    stored = FlowReport.objects.aggregate(samples=Count("id"), packets=Sum("packets"), bytes=Sum("bytes"))
    sfcapd_totals = {
        "samples": sfcapd_flows.total(),
        "packets": sum(key[5] * count for key, count in sfcapd_flows.items()),
        "bytes": sum(key[6] * count for key, count in sfcapd_flows.items()),
    }
    assert stored == sfcapd_totals
    assert stored == {"samples": len(samples), "packets": len(samples) * SAMPLING_RATE,
                      "bytes": sum(f.bytes for f in samples)}
    ours = Counter(
        _key(*row) for row in FlowReport.objects.values_list(
            "source_ip", "destination_ip", "source_port", "destination_port", "protocol", "packets", "bytes")
    )
    assert ours == sfcapd_flows
    # Every stored sample carries its rate: packets and bytes are already scaled by it.
    assert list(FlowReport.objects.order_by().values_list("sampling_rate", "packets").distinct()) == [
        (SAMPLING_RATE, SAMPLING_RATE)]
    listed = viewer_client.get("/api/v1/flow-reports").json()["result"]
    assert listed["total_count"] == len(samples)
    assert {item["sampling_rate"] for item in listed["items"]} == {SAMPLING_RATE}

    # Attributed like NetFlow: the subscriber's own address is the source (uplink) or destination (downlink).
    directions = set(FlowReport.objects.values_list("source_ip", "subscriber_id", "direction"))
    assert ("198.51.100.7", "lan", "downlink") in directions
    assert ("10.0.0.5", "lan", "uplink") in directions
    assert ("2001:db8::1", "lan-v6", "uplink") in directions
    assert set(FlowReport.objects.values_list("exporter", flat=True)) == {"udp:127.0.0.1/obs 7"}

    # The collector's counters, as /metrics reports them.
    status = CollectorStatus.objects.get()
    assert (status.packets_received, status.malformed_packets) == (len(real) + 5, 5)
    assert (status.flows_received, status.flows_stored, status.flows_dropped) == (len(samples),) * 2 + (0,)
    metrics = viewer_client.get("/metrics").content.decode()
    assert f'vpnmonitor_flow_collector_malformed_packets_total{{collector="{status.hostname}/{status.listen}"}} 5.0' \
        in metrics
    assert f"sFlow: {len(real)} datagrams, {len(samples)} flow samples" in command.out.getvalue()
