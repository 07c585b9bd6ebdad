"""sFlow v5 decoder tests on datagrams built here field by field from the sFlow Version 5 specification."""

import random
import socket
import struct

import pytest

from flowreports.collector.datagrams import DatagramDecoder
from flowreports.collector.server import Collector
from flowreports.collector.sflow import SFLOW_VERSION, SFlowDecoder
from flowreports.tests.test_collector_decode import v5_packet
from flowreports.tests.test_collector_integration import _ethernet, _ipv4, _ipv6, _tcp, _udp
from flowreports.tests.test_collector_server import ListSink, wait_for

EXPORTER = "192.0.2.10"
NOW = 1_740_220_200.25  # 2025-02-22T10:30:00.25Z


def decoder():
    return SFlowDecoder(clock=lambda: NOW)


def xdr_opaque(data):
    return struct.pack("!I", len(data)) + data + b"\0" * (-len(data) % 4)


def record(data_format, body):
    """A sample or flow record: data format, length, body."""
    return struct.pack("!II", data_format, len(body)) + body


def header_record(frame, protocol=1, frame_length=None, stripped=4):
    """sampled_header: an Ethernet frame's length on the wire counts its 4-octet FCS, which is stripped."""
    length = len(frame) + 4 if frame_length is None else frame_length
    return record(1, struct.pack("!III", protocol, length, stripped) + xdr_opaque(frame))


def sampled_ipv4_record(length, protocol, source, destination, source_port, destination_port):
    return record(3, struct.pack("!II4s4sIIII", length, protocol, socket.inet_aton(source),
                                 socket.inet_aton(destination), source_port, destination_port, 0, 0))


def flow_sample(rate, *records, output=2, sequence=1):
    """flow_sample: sequence, source id, rate, sample pool, drops, input, output, records."""
    body = struct.pack("!8I", sequence, 5, rate, rate * sequence, 0, 1, output, len(records))
    return record(1, body + b"".join(records))


def expanded_flow_sample(rate, *records, output_format=0, output=2):
    """flow_sample_expanded: the source id and the interfaces as (format, value) pairs."""
    body = struct.pack("!11I", 1, 0, 5, rate, rate, 0, 0, 1, output_format, output, len(records))
    return record(3, body + b"".join(records))


def counters_sample():
    """counters_sample with one generic interface counters record (88 octets of counters)."""
    return record(2, struct.pack("!III", 1, 5, 1) + record(1, b"\0" * 88))


def datagram(*samples, sub_agent=3, agent=b"\xc0\x00\x02\x01"):
    address = struct.pack("!I", 1 if len(agent) == 4 else 2) + agent
    return (struct.pack("!I", 5) + address + struct.pack("!IIII", sub_agent, 17, 360_000, len(samples))
            + b"".join(samples))


def tagged(frame, vlan, ethertype=0x8100):
    """frame with an 802.1Q (or 802.1ad) tag inserted after the MAC addresses."""
    return frame[:12] + struct.pack("!HH", ethertype, vlan) + frame[12:]


TCP_FRAME = _ipv4("10.0.0.1", "198.51.100.7", 6, _tcp(40000, 443, 0x18, 1200))  # 1,254 octets
UDP6_FRAME = _ipv6("2001:db8::1", "2001:db8::53", 17, _udp(5000, 53, 64))
ICMP_FRAME = _ipv4("10.0.0.1", "10.0.0.2", 1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"p" * 56)
ARP_FRAME = _ethernet(0x0806, b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20)


def test_it_scales_a_sampled_ethernet_frame_by_its_sampling_rate():
    sflow = decoder()
    # The agent copies the first 128 octets of the frame and reports its whole length.
    sample = flow_sample(1000, header_record(TCP_FRAME[:128], frame_length=len(TCP_FRAME) + 4))
    (flow,) = sflow.decode(datagram(sample), EXPORTER)
    assert (flow.source_ip, flow.destination_ip) == ("10.0.0.1", "198.51.100.7")
    assert (flow.source_port, flow.destination_port, flow.protocol) == (40000, 443, 6)
    # One sampled packet stands for 1,000, each as long on the wire as the frame and its FCS.
    assert flow.packets == 1000
    assert flow.bytes == (len(TCP_FRAME) + 4) * 1000 == 1_258_000
    assert flow.sampling_rate == 1000
    assert (flow.exporter, flow.observation_domain, flow.version) == (EXPORTER, 3, SFLOW_VERSION)
    assert flow.start_us == flow.end_us == 1_740_220_200_250_000
    assert flow.action == "allow"
    assert sflow.stats() == {
        "decoded_packets": 1, "malformed_packets": 0, "flows_decoded": 1, "flow_samples": 1,
        "counter_samples": 0, "other_samples": 0, "samples_without_flow": 0,
    }


def test_it_reads_an_802_1q_tagged_ipv6_frame_in_an_expanded_sample():
    frame = tagged(UDP6_FRAME, 42)
    (flow,) = decoder().decode(datagram(expanded_flow_sample(256, header_record(frame))), EXPORTER)
    assert (flow.source_ip, flow.destination_ip) == ("2001:db8::1", "2001:db8::53")
    assert (flow.source_port, flow.destination_port, flow.protocol) == (5000, 53, 17)
    assert (flow.packets, flow.bytes, flow.sampling_rate) == (256, (len(frame) + 4) * 256, 256)


def test_it_steps_over_802_1ad_and_mpls_labels():
    qinq = tagged(tagged(TCP_FRAME, 7), 100, ethertype=0x88A8)
    labels = struct.pack("!II", 0x0001_2000, 0x0001_3100 | 0x100)  # two labels, the second bottom of stack
    mpls = TCP_FRAME[:12] + b"\x88\x47" + labels + TCP_FRAME[14:]
    flows = decoder().decode(datagram(flow_sample(10, header_record(qinq)), flow_sample(10, header_record(mpls))),
                             EXPORTER)
    assert [(f.source_ip, f.destination_ip, f.source_port, f.destination_port) for f in flows] == [
        ("10.0.0.1", "198.51.100.7", 40000, 443)
    ] * 2
    assert [f.bytes for f in flows] == [(len(qinq) + 4) * 10, (len(mpls) + 4) * 10]


def test_it_reads_icmp_type_and_code_as_the_destination_port():
    (flow,) = decoder().decode(datagram(flow_sample(1, header_record(ICMP_FRAME))), EXPORTER)
    assert (flow.protocol, flow.source_port, flow.destination_port) == (1, 0, 8 << 8)
    assert (flow.packets, flow.bytes) == (1, len(ICMP_FRAME) + 4)


def test_it_reads_ipv4_and_ipv6_header_protocols_without_ethernet():
    ipv4_packet, ipv6_packet = TCP_FRAME[14:], UDP6_FRAME[14:]
    flows = decoder().decode(datagram(
        flow_sample(100, header_record(ipv4_packet, protocol=11, frame_length=len(ipv4_packet), stripped=0)),
        flow_sample(100, header_record(ipv6_packet, protocol=12, frame_length=len(ipv6_packet), stripped=0)),
    ), EXPORTER)
    assert [(f.source_ip, f.destination_port, f.protocol, f.bytes, f.sampling_rate) for f in flows] == [
        ("10.0.0.1", 443, 6, 1240 * 100, 100),
        ("2001:db8::1", 53, 17, len(ipv6_packet) * 100, 100),
    ]


def test_it_reads_the_ports_of_the_first_fragment_of_an_ipv6_packet():
    fragment_header = struct.pack("!BBHI", 6, 0, 1, 0x1234)  # next header TCP, offset 0, more fragments
    first = _ipv6("2001:db8::1", "2001:db8::2", 44, fragment_header + _tcp(40000, 443, 0x18, 1200)[:20])
    later = _ipv6("2001:db8::1", "2001:db8::2", 44, struct.pack("!BBHI", 6, 0, 185 << 3, 0x1234) + b"\0" * 64)
    flows = decoder().decode(datagram(flow_sample(4, header_record(first)), flow_sample(4, header_record(later))),
                             EXPORTER)
    assert [(f.protocol, f.source_port, f.destination_port, f.sampling_rate) for f in flows] == [
        (6, 40000, 443, 4), (6, 0, 0, 4)]


def test_it_takes_a_sampled_ipv4_record_when_there_is_no_packet_header():
    sample = flow_sample(512, sampled_ipv4_record(1500, 17, "192.0.2.7", "203.0.113.9", 4500, 4500))
    (flow,) = decoder().decode(datagram(sample), EXPORTER)
    assert (flow.source_ip, flow.destination_ip, flow.protocol, flow.source_port) == (
        "192.0.2.7", "203.0.113.9", 17, 4500)
    assert (flow.packets, flow.bytes, flow.sampling_rate) == (512, 1500 * 512, 512)


def test_it_stores_samples_of_discarded_packets_as_drops():
    compact = flow_sample(1, header_record(TCP_FRAME), output=(1 << 30) | 258)  # format 1: discarded, reason 258
    expanded = expanded_flow_sample(1, header_record(TCP_FRAME), output_format=1, output=258)
    forwarded = flow_sample(1, header_record(TCP_FRAME), output=3)
    flows = decoder().decode(datagram(compact, expanded, forwarded), EXPORTER)
    assert [f.action for f in flows] == ["drop", "drop", "allow"]


def test_it_counts_and_skips_counter_samples_other_samples_and_samples_without_an_ip_packet():
    enterprise_sample = record((4413 << 12) | 1, b"\0" * 12)
    sflow = decoder()
    flows = sflow.decode(datagram(
        counters_sample(), flow_sample(8, header_record(ARP_FRAME)), enterprise_sample,
        flow_sample(8, record(1001, b"\0" * 16), header_record(TCP_FRAME)),  # an extended switch record first
        counters_sample(),
    ), EXPORTER)
    assert [(f.source_ip, f.packets) for f in flows] == [("10.0.0.1", 8)]
    stats = sflow.stats()
    assert (stats["counter_samples"], stats["flow_samples"], stats["samples_without_flow"]) == (2, 2, 1)
    assert (stats["other_samples"], stats["malformed_packets"], stats["flows_decoded"]) == (1, 0, 1)


def test_it_reads_an_ipv6_agent_address():
    packet = datagram(flow_sample(2, header_record(TCP_FRAME)), agent=socket.inet_pton(socket.AF_INET6, "2001:db8::9"))
    assert [f.packets for f in decoder().decode(packet, EXPORTER)] == [2]


GOOD = datagram(
    flow_sample(100, header_record(TCP_FRAME[:128], frame_length=len(TCP_FRAME) + 4)),
    counters_sample(),
    expanded_flow_sample(100, header_record(tagged(UDP6_FRAME, 9))),
    flow_sample(100, header_record(ICMP_FRAME)),
)


def test_every_truncation_of_a_datagram_is_counted_and_yields_nothing():
    sflow = decoder()
    assert len(sflow.decode(GOOD, EXPORTER)) == 3
    for length in range(len(GOOD)):
        assert sflow.decode(GOOD[:length], EXPORTER) == [], length
    stats = sflow.stats()
    assert stats["malformed_packets"] == len(GOOD)
    # Only the whole datagram counted its samples: those before a cut are not half decoded.
    assert (stats["flows_decoded"], stats["flow_samples"], stats["counter_samples"]) == (3, 3, 1)


SAMPLE_AT = 28 + 8  # past the datagram header (IPv4 agent) and the first sample's format and length


@pytest.mark.parametrize(("fault", "changes", "reason"), [
    ("version", {0: 4}, "sflow version 4"),
    ("address type", {4: 3}, "sflow agent address type 3"),
    ("sample count", {24: 3}, "sflow sample header truncated"),
    ("sample count", {24: 1000}, "sflow sample count exceeds datagram"),
    ("record count", {SAMPLE_AT + 28: 2}, "sflow flow record header truncated"),
    ("header length", {SAMPLE_AT + 32 + 8 + 12: 65}, "sflow sampled header longer than its record"),
    ("sampling rate", {SAMPLE_AT + 8: 0}, "sflow flow sample with sampling rate 0"),
    # 1 in 2^31: more than the sampling_rate column holds (NetFlow and IPFIX rates have the same bound).
    ("sampling rate", {SAMPLE_AT + 8: 2**31}, "sflow sampling rate out of range"),
])
def test_it_counts_inconsistent_datagrams_as_malformed(fault, changes, reason):
    sample = flow_sample(100, header_record(TCP_FRAME[:64]))
    packet = bytearray(datagram(sample, sample))
    for offset, value in changes.items():
        struct.pack_into("!I", packet, offset, value)
    sflow = decoder()
    assert sflow.decode(bytes(packet), EXPORTER) == []
    assert sflow.malformed_packets == 1 and sflow.flows_decoded == 0
    assert sflow.errors == {reason: 1}


def test_fuzzed_datagrams_never_raise_and_never_half_decode():
    sflow = decoder()
    rng = random.Random(24)
    decoded = malformed = 0
    for _ in range(3000):
        packet = bytearray(GOOD)
        for _ in range(rng.randint(1, 4)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        if rng.random() < 0.2:
            packet = packet[: rng.randrange(len(packet))] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 8)))
        before = sflow.malformed_packets
        flows = sflow.decode(bytes(packet), EXPORTER)
        if sflow.malformed_packets > before:
            assert flows == []
            malformed += 1
        else:
            decoded += 1
            assert len(flows) <= 4
            for flow in flows:
                assert flow.packets == flow.sampling_rate > 0
                assert flow.bytes % flow.sampling_rate == 0
    assert decoded and malformed
    assert sflow.packets == decoded + malformed == 3000


def test_the_datagram_decoder_sends_sflow_and_netflow_to_their_decoders():
    both = DatagramDecoder(sflow=decoder())
    netflow = v5_packet([("192.0.2.1", "192.0.2.2", 3, 300, 90_000, 95_000, 1234, 80, 6)])
    sflow_flows = both.decode(GOOD, EXPORTER)
    netflow_flows = both.decode(netflow, EXPORTER)
    assert [f.version for f in sflow_flows] == [SFLOW_VERSION] * 3
    assert [(f.version, f.packets, f.bytes) for f in netflow_flows] == [(5, 3, 300)]
    both.decode(GOOD[:40], EXPORTER)
    both.decode(netflow[:30], EXPORTER)
    stats = both.stats()
    assert (stats["decoded_packets"], stats["flows_decoded"], stats["malformed_packets"]) == (4, 4, 2)
    assert (stats["sflow_decoded_packets"], stats["sflow_malformed_packets"], stats["sflow_counter_samples"]) == (
        2, 1, 1)


def test_the_collector_takes_sflow_and_netflow_on_one_socket():
    sink = ListSink()
    netflow = v5_packet([("192.0.2.1", "192.0.2.2", 3, 300, 90_000, 95_000, 1234, 80, 6)])
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05) as collector, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for packet in (GOOD, netflow, GOOD[:100], b"\0\0\0\x05"):
            sender.sendto(packet, collector.address)
        assert wait_for(lambda: collector.stats()["packets_received"] == 4 and len(sink.records) == 4)
    stats = collector.stats()
    assert (stats["flows_received"], stats["flows_stored"], stats["malformed_packets"]) == (4, 4, 2)
    assert sorted((f.packets, f.sampling_rate) for f in sink.records) == [(3, 1), (100, 100), (100, 100), (100, 100)]
    assert sum(f.bytes for f in sink.records if f.version == SFLOW_VERSION) == 100 * (
        len(TCP_FRAME) + 4 + len(tagged(UDP6_FRAME, 9)) + 4 + len(ICMP_FRAME) + 4)
