"""softflowd exports a generated pcap to our Collector and to nfcapd; both must see the same flows."""

import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from flowreports.collector.server import Collector

pytestmark = pytest.mark.integration

REQUIRED_BINARIES = ("softflowd", "nfcapd", "nfdump")
PCAP_START = 1_700_000_000
TCP_FLAGS = {"syn": 0x02, "ack": 0x10, "psh_ack": 0x18, "fin_ack": 0x11, "syn_ack": 0x12}


def _binary(name):
    # softflowd is installed in /usr/sbin, which ordinary users often lack on PATH.
    search_path = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search_path)


def _missing_binaries():
    return [name for name in REQUIRED_BINARIES if _binary(name) is None]


@pytest.fixture(autouse=True)
def _require_binaries():
    missing = _missing_binaries()
    if missing:
        message = f"flow exporter tools not installed: {', '.join(missing)} (Debian: softflowd, nfdump)"
        if os.environ.get("VPNMONITOR_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)


# pcap building


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ethernet(ethertype, payload):
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + struct.pack("!H", ethertype) + payload


def _ipv4(source, destination, protocol, payload):
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        protocol,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return _ethernet(0x0800, header + payload)


def _ipv6(source, destination, protocol, payload):
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(payload),
        protocol,
        64,
        socket.inet_pton(socket.AF_INET6, source),
        socket.inet_pton(socket.AF_INET6, destination),
    )
    return _ethernet(0x86DD, header + payload)


def _tcp(source_port, destination_port, flags, payload_size):
    return struct.pack("!HHIIBBHHH", source_port, destination_port, 1, 1, 5 << 4, flags, 65535, 0, 0) + (
        b"t" * payload_size
    )


def _udp(source_port, destination_port, payload_size):
    return struct.pack("!HHHH", source_port, destination_port, 8 + payload_size, 0) + b"u" * payload_size


class Traffic:
    """Packets for a pcap plus the per-direction flow totals they should produce."""

    def __init__(self):
        self.frames = []
        self.expected = Counter()  # (source, destination, source port, destination port, protocol) -> packets
        self.expected_bytes = Counter()
        self.conversation_times = {}

    @staticmethod
    def _conversation(key):
        source, destination, source_port, destination_port, protocol = key
        return frozenset({(source, source_port), (destination, destination_port)}), protocol

    def times(self, key):
        """softflowd tracks both directions as one flow, so each direction reports the conversation's span."""
        first, last = self.conversation_times[self._conversation(key)]
        return datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC)

    def add(self, at, family, source, destination, protocol, source_port, destination_port, transport):
        build = _ipv4 if family == 4 else _ipv6
        frame = build(source, destination, protocol, transport)
        self.frames.append((at, frame))
        key = (source, destination, source_port, destination_port, protocol)
        conversation = self._conversation(key)
        first, last = self.conversation_times.get(conversation, (at, at))
        self.conversation_times[conversation] = (min(first, at), max(last, at))
        self.expected[key] += 1
        self.expected_bytes[key] += len(frame) - 14  # exporters count IP bytes, not Ethernet

    def tcp(self, at, family, source, destination, source_port, destination_port, flags, payload_size):
        transport = _tcp(source_port, destination_port, TCP_FLAGS[flags], payload_size)
        self.add(at, family, source, destination, 6, source_port, destination_port, transport)

    def udp(self, at, family, source, destination, source_port, destination_port, payload_size):
        transport = _udp(source_port, destination_port, payload_size)
        self.add(at, family, source, destination, 17, source_port, destination_port, transport)

    def pcap(self):
        out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        for at, frame in sorted(self.frames, key=lambda item: item[0]):
            seconds = int(at)
            micros = round((at - seconds) * 1_000_000)
            out += struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame
        return out

    def flows(self):
        return {key: (packets, self.expected_bytes[key]) for key, packets in self.expected.items()}


def build_traffic():
    traffic = Traffic()
    t = PCAP_START
    # An HTTP-like TCP connection in both directions, closed with FIN.
    client, server = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    traffic.tcp(t + 0.00, 4, client[0], server[0], client[1], server[1], "syn", 0)
    traffic.tcp(t + 0.01, 4, server[0], client[0], server[1], client[1], "syn_ack", 0)
    traffic.tcp(t + 0.02, 4, client[0], server[0], client[1], server[1], "ack", 0)
    traffic.tcp(t + 0.03, 4, client[0], server[0], client[1], server[1], "psh_ack", 300)
    for index in range(5):
        traffic.tcp(t + 0.10 + index * 0.01, 4, server[0], client[0], server[1], client[1], "psh_ack", 1400)
    traffic.tcp(t + 0.20, 4, client[0], server[0], client[1], server[1], "ack", 0)
    traffic.tcp(t + 0.30, 4, client[0], server[0], client[1], server[1], "fin_ack", 0)
    traffic.tcp(t + 0.31, 4, server[0], client[0], server[1], client[1], "fin_ack", 0)
    traffic.tcp(t + 0.32, 4, client[0], server[0], client[1], server[1], "ack", 0)
    # A one-way TCP flow (e.g. a SYN scan answered by nothing).
    traffic.tcp(t + 0.5, 4, "10.0.0.9", "10.0.0.10", 51515, 22, "syn", 0)
    traffic.tcp(t + 1.5, 4, "10.0.0.9", "10.0.0.10", 51515, 22, "syn", 0)
    # DNS over UDP with a reply.
    for index in range(3):
        traffic.udp(t + 1 + index, 4, "10.0.0.3", "10.0.0.4", 5353, 53, 40 + index * 10)
    traffic.udp(t + 1.5, 4, "10.0.0.4", "10.0.0.3", 53, 5353, 200)
    # A bulk one-way UDP stream.
    for index in range(20):
        traffic.udp(t + 2 + index * 0.05, 4, "10.0.0.5", "192.168.7.7", 1234, 9999, 1000)
    # IPv6 UDP and TCP.
    for index in range(4):
        traffic.udp(t + 3 + index * 0.1, 6, "2001:db8::1", "2001:db8::2", 5000, 53, 64)
    traffic.tcp(t + 3.5, 6, "2001:db8::10", "2001:db8::20", 41000, 443, "syn", 0)
    traffic.tcp(t + 3.6, 6, "2001:db8::10", "2001:db8::20", 41000, 443, "psh_ack", 500)
    return traffic


# Processes


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _run_softflowd(pcap_path, destination, version, workdir):
    control = os.path.join(workdir, f"softflowd-{version}-{destination[1]}.ctl")
    command = [
        _binary("softflowd"),
        "-d",
        # Anchor flow times to the pcap's timestamps rather than to softflowd's own start time.
        "-a",
        "-r",
        pcap_path,
        "-n",
        f"{destination[0]}:{destination[1]}",
        "-v",
        str(version),
        "-p",
        os.path.join(workdir, f"softflowd-{version}-{destination[1]}.pid"),
        "-c",
        control,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            # softflowd 1.1.0 reading a pcap blocks in accept() on its control socket between reads,
            # so it only makes progress (and exits at end of file) when a control client connects.
            _poke_control_socket(control)
            time.sleep(0.05)
        if process.poll() is None:
            raise AssertionError("softflowd did not finish reading the pcap")
        stderr = process.stderr.read().decode(errors="replace")
        assert process.returncode == 0, stderr
    finally:
        _stop(process)
        process.stderr.close()


def _poke_control_socket(path):
    if not os.path.exists(path):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(1)
        try:
            client.connect(path)
            client.sendall(b"statistics\n")
            while client.recv(4096):
                pass
        except OSError:
            pass


def _nfdump_flows(directory):
    output = subprocess.run(
        [_binary("nfdump"), "-R", directory, "-o", "json"],
        capture_output=True,
        check=True,
        timeout=15,
        env={**os.environ, "TZ": "UTC"},
    ).stdout.decode()
    flows = {}
    times = {}
    for record in json.loads(output or "[]"):
        if record.get("type") != "FLOW":
            continue
        source = record.get("src4_addr") or record.get("src6_addr")
        destination = record.get("dst4_addr") or record.get("dst6_addr")
        key = (source, destination, record["src_port"], record["dst_port"], record["proto"])
        assert key not in flows, f"nfdump shows {key} twice"
        flows[key] = (record["in_packets"], record["in_bytes"])
        times[key] = (_nfdump_time(record["first"]), _nfdump_time(record["last"]))
    return flows, times


def _nfdump_time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def _collect_with_nfcapd(pcap_path, version, workdir):
    capture_dir = os.path.join(workdir, f"nfcapd-v{version}")
    os.mkdir(capture_dir)
    port = _free_udp_port()
    log_path = os.path.join(workdir, f"nfcapd-v{version}.log")
    with open(log_path, "wb") as log:
        nfcapd = subprocess.Popen(
            [_binary("nfcapd"), "-w", capture_dir, "-b", "127.0.0.1", "-p", str(port), "-t", "3600"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        log_file = pathlib.Path(log_path)
        assert _wait_for(lambda: b"Startup" in log_file.read_bytes(), 10), log_file.read_bytes()
        _run_softflowd(pcap_path, ("127.0.0.1", port), version, workdir)
        # nfcapd writes its file when it is told to stop; give the datagrams a moment to arrive first.
        time.sleep(0.3)
    finally:
        _stop(nfcapd)
    return _nfdump_flows(capture_dir)


def _collect_with_ours(pcap_path, version, workdir):
    batches = []
    collector = Collector(batches.append, listen=("127.0.0.1", 0), flush_interval=0.1)
    with collector:
        _run_softflowd(pcap_path, collector.address, version, workdir)
        _wait_for(lambda: collector.stats()["packets_received"] > 0, 5)
        time.sleep(0.3)
    stats = collector.stats()
    records = [record for batch in batches for record in batch]
    return records, stats


@pytest.fixture(scope="module")
def traffic_pcap(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("flows")
    traffic = build_traffic()
    path = workdir / "traffic.pcap"
    path.write_bytes(traffic.pcap())
    return traffic, str(path), str(workdir)


@pytest.mark.parametrize("version", [9, 10])
def test_softflowd_export_matches_nfdump(traffic_pcap, version, tmp_path):
    traffic, pcap_path, _ = traffic_pcap
    nfdump_flows, nfdump_times = _collect_with_nfcapd(pcap_path, version, str(tmp_path))
    records, stats = _collect_with_ours(pcap_path, version, str(tmp_path))

    ours = {}
    for record in records:
        key = (record.source_ip, record.destination_ip, record.source_port, record.destination_port, record.protocol)
        assert key not in ours, f"{key} stored twice"
        ours[key] = (record.packets, record.bytes)
        assert record.version == version
        assert record.exporter == "127.0.0.1"
        expected_start, expected_end = traffic.times(key)
        if version == 9:
            # The v9 header carries whole export seconds only, which shifts uptime-based times by under a second.
            assert timedelta(0) <= expected_start - record.start < timedelta(seconds=1), key
            assert expected_end - record.end == expected_start - record.start, key
        else:
            assert (record.start, record.end) == (expected_start, expected_end), key
        # nfdump 1.7.1 swaps first/last for IPFIX flowStart/EndSysUpTime, so compare the span only.
        assert (record.start, record.end) == tuple(sorted(nfdump_times[key])), key

    assert ours == nfdump_flows
    assert ours == traffic.flows()
    assert stats["flows_received"] == stats["flows_stored"] == len(traffic.flows())
    assert stats["flows_dropped"] == 0
    assert stats["malformed_packets"] == 0
    assert stats["sets_dropped_no_template"] == 0
    totals = (sum(p for p, _ in ours.values()), sum(b for _, b in ours.values()))
    assert totals == (sum(p for p, _ in nfdump_flows.values()), sum(b for _, b in nfdump_flows.values()))
