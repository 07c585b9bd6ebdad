"""Decoder tests with hand-built NetFlow v5, v9 and IPFIX packets and hand-checked values."""

import socket
import struct
from datetime import UTC, datetime

import pytest

from flowreports.collector.decode import FlowDecoder, FlowRecord, micros

EXPORT_SECS = 1_700_000_000  # 2023-11-14T22:13:20Z
EXPORTER = "192.0.2.10"


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def ip4(text):
    return socket.inet_aton(text)


def ip6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def flowset(set_id, body):
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def template_record(template_id, fields):
    """fields: (ie, length) or (ie, length, enterprise_number)."""
    out = struct.pack("!HH", template_id, len(fields))
    for field in fields:
        if len(field) == 3:
            out += struct.pack("!HHI", field[0] | 0x8000, field[1], field[2])
        else:
            out += struct.pack("!HH", *field)
    return out


def v9_packet(*sets, source_id=7, sys_uptime=3_600_000, unix_secs=EXPORT_SECS, sequence=1):
    return struct.pack("!HHIIII", 9, len(sets), sys_uptime, unix_secs, sequence, source_id) + b"".join(sets)


def ipfix_packet(*sets, domain=42, export_time=EXPORT_SECS, sequence=1):
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_time, sequence, domain) + body


V9_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4), (89, 1)]
V9_RECORD = struct.Struct("!4s4sHHBIIIIB")


def v9_data(*rows):
    return b"".join(V9_RECORD.pack(ip4(r[0]), ip4(r[1]), *r[2:]) for r in rows)


V9_ROW_ALLOW = ("10.1.1.1", "10.2.2.2", 1000, 53, 17, 3, 210, 3_500_000, 3_590_000, 0x40)
V9_ROW_DROP = ("10.1.1.3", "10.2.2.4", 40000, 80, 6, 5, 400, 3_599_000, 3_599_500, 0x82)


# NetFlow v5


def v5_packet(records, count=None, sys_uptime=100_000, unix_secs=EXPORT_SECS, unix_nsecs=500_000_000):
    header = struct.pack(
        "!HHIIIIBBH", 5, len(records) if count is None else count, sys_uptime, unix_secs, unix_nsecs, 9, 1, 2, 0
    )
    body = b""
    for source, destination, packets, octets, first, last, sport, dport, protocol in records:
        body += struct.pack(
            "!4s4s4sHHIIIIHHBBBBHHBBH",
            ip4(source),
            ip4(destination),
            ip4("0.0.0.0"),
            1,
            2,
            packets,
            octets,
            first,
            last,
            sport,
            dport,
            0,
            0x1B,
            protocol,
            0,
            0,
            0,
            24,
            24,
            0,
        )
    return header + body


def test_v5_records_and_absolute_times():
    packet = v5_packet(
        [
            ("10.0.0.1", "192.168.1.2", 10, 1500, 40_000, 90_000, 12345, 443, 6),
            ("10.0.0.2", "192.168.1.3", 1, 76, 99_000, 99_000, 5353, 5353, 17),
        ]
    )
    assert len(packet) == 24 + 2 * 48
    decoder = FlowDecoder()
    records = decoder.decode(packet, EXPORTER)
    assert records == [
        FlowRecord(
            exporter=EXPORTER,
            observation_domain=(1 << 8) | 2,
            source_ip="10.0.0.1",
            destination_ip="192.168.1.2",
            source_port=12345,
            destination_port=443,
            protocol=6,
            packets=10,
            bytes=1500,
            # export time 22:13:20.5 minus (100 s - 40 s) uptime difference
            start_us=micros(utc(2023, 11, 14, 22, 12, 20, 500_000)),
            end_us=micros(utc(2023, 11, 14, 22, 13, 10, 500_000)),
            action="allow",
            version=5,
        ),
        FlowRecord(
            EXPORTER,
            258,
            "10.0.0.2",
            "192.168.1.3",
            5353,
            5353,
            17,
            1,
            76,
            micros(utc(2023, 11, 14, 22, 13, 19, 500_000)),
            micros(utc(2023, 11, 14, 22, 13, 19, 500_000)),
            "allow",
            5,
        ),
    ]
    assert decoder.malformed_packets == 0
    assert decoder.flows_decoded == 2


def test_v5_uptime_wraparound():
    # The exporter's uptime wrapped past 2**32 ms between flow start and export.
    packet = v5_packet([("10.0.0.1", "10.0.0.2", 1, 60, 0xFFFFFF00, 0x10, 1, 2, 6)], sys_uptime=0x100)
    (record,) = FlowDecoder().decode(packet, EXPORTER)
    assert record.start == utc(2023, 11, 14, 22, 13, 19, 988_000)  # 512 ms across the wrap
    assert record.end == utc(2023, 11, 14, 22, 13, 20, 260_000)


def test_v5_truncated_is_counted_not_raised():
    packet = v5_packet([("10.0.0.1", "10.0.0.2", 1, 60, 1, 2, 1, 2, 6)], count=2)
    decoder = FlowDecoder()
    assert decoder.decode(packet, EXPORTER) == []
    assert decoder.decode(packet[:10], EXPORTER) == []
    assert decoder.malformed_packets == 2
    assert decoder.flows_decoded == 0


# NetFlow v9


def test_v9_template_then_data_in_one_packet():
    data = v9_data(V9_ROW_ALLOW, V9_ROW_DROP) + b"\0\0"  # padding shorter than a record
    packet = v9_packet(flowset(0, template_record(256, V9_FIELDS)), flowset(256, data))
    decoder = FlowDecoder()
    allow, drop = decoder.decode(packet, EXPORTER)
    assert allow == FlowRecord(
        EXPORTER,
        7,
        "10.1.1.1",
        "10.2.2.2",
        1000,
        53,
        17,
        3,
        210,
        # export 22:13:20 minus (3600 s - 3500 s) and minus (3600 s - 3590 s)
        micros(utc(2023, 11, 14, 22, 11, 40)),
        micros(utc(2023, 11, 14, 22, 13, 10)),
        "allow",
        9,
    )
    assert drop.action == "drop"
    assert (drop.source_ip, drop.destination_port, drop.protocol, drop.packets, drop.bytes) == (
        "10.1.1.3",
        80,
        6,
        5,
        400,
    )
    assert drop.start == utc(2023, 11, 14, 22, 13, 19)
    assert drop.end == utc(2023, 11, 14, 22, 13, 19, 500_000)
    assert decoder.malformed_packets == 0


def test_v9_template_flowset_padding_is_ignored():
    body = template_record(256, V9_FIELDS) + b"\0\0\0\0"
    decoder = FlowDecoder()
    decoder.decode(v9_packet(flowset(0, body)), EXPORTER)
    records = decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW))), EXPORTER)
    assert len(records) == 1
    assert decoder.malformed_packets == 0


def test_v9_ipv6_with_total_counters_and_millisecond_times():
    fields = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (86, 8), (85, 8), (152, 8), (153, 8)]
    row = struct.pack(
        "!16s16sHHBQQQQ",
        ip6("2001:db8::1"),
        ip6("2001:db8:0:1::53"),
        53000,
        53,
        17,
        2,
        5_000_000_000,  # more than 32 bits
        1_700_000_000_250,
        1_700_000_001_750,
    )
    packet = v9_packet(flowset(0, template_record(257, fields)), flowset(257, row))
    (record,) = FlowDecoder().decode(packet, EXPORTER)
    assert record.source_ip == "2001:db8::1"
    assert record.destination_ip == "2001:db8:0:1::53"
    assert (record.source_port, record.destination_port, record.protocol) == (53000, 53, 17)
    assert (record.packets, record.bytes) == (2, 5_000_000_000)
    assert record.start == utc(2023, 11, 14, 22, 13, 20, 250_000)
    assert record.end == utc(2023, 11, 14, 22, 13, 21, 750_000)


def test_v9_data_before_template_is_held_then_decoded():
    decoder = FlowDecoder()
    data_packet = v9_packet(flowset(256, v9_data(V9_ROW_ALLOW, V9_ROW_DROP)), sys_uptime=3_600_000)
    assert decoder.decode(data_packet, EXPORTER, now=100.0) == []
    assert decoder.stats()["sets_pending"] == 1
    # The template arrives 5 s later in a packet with a later header; held data keeps its own header times.
    template_packet = v9_packet(
        flowset(0, template_record(256, V9_FIELDS)), sys_uptime=3_605_000, unix_secs=EXPORT_SECS + 5
    )
    records = decoder.decode(template_packet, EXPORTER, now=105.0)
    assert [r.source_ip for r in records] == ["10.1.1.1", "10.1.1.3"]
    assert records[0].start == utc(2023, 11, 14, 22, 11, 40)
    assert decoder.stats()["sets_pending"] == 0
    assert decoder.sets_dropped_no_template == 0


def test_v9_held_data_expires_and_is_counted():
    decoder = FlowDecoder(hold_seconds=30)
    decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW))), EXPORTER, now=100.0)
    decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW))), EXPORTER, now=125.0)
    assert decoder.expire(now=131.0) == 1
    records = decoder.decode(v9_packet(flowset(0, template_record(256, V9_FIELDS))), EXPORTER, now=132.0)
    assert len(records) == 1
    assert decoder.sets_dropped_no_template == 1


def test_held_data_is_bounded_per_template():
    decoder = FlowDecoder(max_held_per_template=3)
    for _ in range(5):
        decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW))), EXPORTER, now=1.0)
    assert decoder.stats()["sets_pending"] == 3
    assert decoder.sets_dropped_no_template == 2
    records = decoder.decode(v9_packet(flowset(0, template_record(256, V9_FIELDS))), EXPORTER, now=2.0)
    assert len(records) == 3


def test_templates_are_isolated_per_exporter_and_source_id():
    other_fields = [(12, 4), (8, 4), (2, 4), (1, 4)]  # same id 256, different layout
    decoder = FlowDecoder()
    decoder.decode(v9_packet(flowset(0, template_record(256, V9_FIELDS))), "192.0.2.1")
    decoder.decode(v9_packet(flowset(0, template_record(256, other_fields))), "192.0.2.2")
    first = decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW))), "192.0.2.1")
    second = decoder.decode(
        v9_packet(flowset(256, struct.pack("!4s4sII", ip4("10.9.9.9"), ip4("10.8.8.8"), 7, 700))), "192.0.2.2"
    )
    assert (first[0].exporter, first[0].source_ip, first[0].bytes) == ("192.0.2.1", "10.1.1.1", 210)
    assert (second[0].exporter, second[0].source_ip, second[0].destination_ip) == ("192.0.2.2", "10.8.8.8", "10.9.9.9")
    assert (second[0].packets, second[0].bytes, second[0].source_port) == (7, 700, 0)
    # Same exporter, other source id: no template there, so the data is held rather than misdecoded.
    assert decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW)), source_id=8), "192.0.2.1") == []
    assert decoder.stats()["sets_pending"] == 1


def test_v9_options_template_and_data_produce_no_flows():
    # Options template 300: scope System (type 1, 4 bytes); options SAMPLING_INTERVAL (34, 4), ALGORITHM (35, 1).
    options_template = struct.pack("!HHH", 300, 4, 8) + struct.pack("!HHHHHH", 1, 4, 34, 4, 35, 1) + b"\0\0"
    options_data = struct.pack("!IIB", 0, 100, 2) + b"\0\0\0"
    packet = v9_packet(
        flowset(1, options_template),
        flowset(300, options_data),
        flowset(0, template_record(256, V9_FIELDS)),
        flowset(256, v9_data(V9_ROW_ALLOW)),
    )
    decoder = FlowDecoder()
    records = decoder.decode(packet, EXPORTER)
    assert len(records) == 1
    assert decoder.options_records == 1
    assert decoder.malformed_packets == 0


def test_template_redefinition_replaces_layout():
    decoder = FlowDecoder()
    decoder.decode(v9_packet(flowset(0, template_record(256, V9_FIELDS))), EXPORTER)
    decoder.decode(v9_packet(flowset(0, template_record(256, [(8, 4), (12, 4), (2, 4), (1, 4)]))), EXPORTER)
    (record,) = decoder.decode(
        v9_packet(flowset(256, struct.pack("!4s4sII", ip4("1.1.1.1"), ip4("2.2.2.2"), 4, 44))), EXPORTER
    )
    assert (record.source_ip, record.packets, record.bytes) == ("1.1.1.1", 4, 44)


# IPFIX

IPFIX_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8), (89, 1)]
IPFIX_RECORD = struct.Struct("!4s4sHHBQQQQB")


def test_ipfix_milliseconds_and_forwarding_status():
    rows = IPFIX_RECORD.pack(
        ip4("172.16.0.1"), ip4("172.16.0.2"), 22, 51000, 6, 12, 3456, 1_700_000_000_001, 1_700_000_002_999, 0x42
    ) + IPFIX_RECORD.pack(ip4("172.16.0.3"), ip4("8.8.8.8"), 5000, 53, 17, 1, 60, 0, 0, 0x80)
    packet = ipfix_packet(flowset(2, template_record(300, IPFIX_FIELDS)), flowset(300, rows))
    decoder = FlowDecoder()
    first, second = decoder.decode(packet, EXPORTER)
    assert first == FlowRecord(
        EXPORTER,
        42,
        "172.16.0.1",
        "172.16.0.2",
        22,
        51000,
        6,
        12,
        3456,
        micros(utc(2023, 11, 14, 22, 13, 20, 1000)),
        micros(utc(2023, 11, 14, 22, 13, 22, 999_000)),
        "allow",
        10,
    )
    assert second.action == "drop"
    assert second.start == utc(1970, 1, 1)


def test_ipfix_variable_length_and_enterprise_fields_are_skipped():
    fields = [
        (8, 4),
        (82, 65535),  # interfaceName, variable length
        (100, 4, 9),  # enterprise-specific (PEN 9): must be skipped including its enterprise number
        (12, 4),
        (96, 65535),  # applicationName, variable length, long form
        (2, 4),
        (1, 4),
        (150, 4),
        (151, 4),
    ]
    long_name = b"x" * 300
    row1 = (
        ip4("10.0.0.1")
        + b"\x04eth0"
        + b"\xde\xad\xbe\xef"
        + ip4("10.0.0.2")
        + b"\xff"
        + struct.pack("!H", len(long_name))
        + long_name
        + struct.pack("!IIII", 9, 900, EXPORT_SECS - 10, EXPORT_SECS - 1)
    )
    row2 = (
        ip4("10.0.0.3")
        + b"\x00"
        + b"\0\0\0\0"
        + ip4("10.0.0.4")
        + b"\x03abc"
        + struct.pack("!IIII", 1, 40, EXPORT_SECS, EXPORT_SECS)
    )
    packet = ipfix_packet(flowset(2, template_record(310, fields)), flowset(310, row1 + row2 + b"\0\0"))
    decoder = FlowDecoder()
    first, second = decoder.decode(packet, EXPORTER)
    assert (first.source_ip, first.destination_ip, first.packets, first.bytes) == ("10.0.0.1", "10.0.0.2", 9, 900)
    assert first.start == utc(2023, 11, 14, 22, 13, 10)
    assert first.end == utc(2023, 11, 14, 22, 13, 19)
    assert (second.source_ip, second.destination_ip, second.packets, second.bytes) == ("10.0.0.3", "10.0.0.4", 1, 40)
    assert decoder.malformed_packets == 0


def test_ipfix_fixed_template_with_enterprise_field():
    fields = [(8, 4), (5000, 2, 29305), (12, 4), (2, 4), (1, 4)]
    row = ip4("10.0.0.1") + b"\x01\x02" + ip4("10.0.0.2") + struct.pack("!II", 3, 333)
    packet = ipfix_packet(flowset(2, template_record(311, fields)), flowset(311, row))
    (record,) = FlowDecoder().decode(packet, EXPORTER)
    assert (record.source_ip, record.destination_ip, record.packets, record.bytes) == ("10.0.0.1", "10.0.0.2", 3, 333)
    # No time fields: the export time stands in for both.
    assert record.start == record.end == utc(2023, 11, 14, 22, 13, 20)


def test_ipfix_reduced_size_counters():
    fields = [(8, 4), (12, 4), (2, 3), (1, 6), (4, 1)]
    row = ip4("10.0.0.1") + ip4("10.0.0.2") + (70000).to_bytes(3, "big") + (2**40 + 5).to_bytes(6, "big") + b"\x11"
    packet = ipfix_packet(flowset(2, template_record(312, fields)), flowset(312, row * 2))
    records = FlowDecoder().decode(packet, EXPORTER)
    assert [(r.packets, r.bytes, r.protocol) for r in records] == [(70000, 2**40 + 5, 17)] * 2


def test_ipfix_sysuptime_with_options_system_init_time():
    # Options template 400: scope observationDomainId (149); option systemInitTimeMilliseconds (160).
    options_template = struct.pack("!HHH", 400, 2, 1) + struct.pack("!HHHH", 149, 4, 160, 8)
    options_data = struct.pack("!IQ", 42, 1_699_990_000_000)
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4)]
    row = struct.pack("!4s4sHHBIIII", ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 6, 3, 180, 5000, 9500)
    packet = ipfix_packet(
        flowset(3, options_template),
        flowset(400, options_data),
        flowset(2, template_record(320, fields)),
        flowset(320, row),
    )
    decoder = FlowDecoder()
    (record,) = decoder.decode(packet, EXPORTER)
    assert record.start == utc(2023, 11, 14, 19, 26, 45)  # 1_699_990_005 s
    assert record.end == utc(2023, 11, 14, 19, 26, 49, 500_000)
    assert decoder.options_records == 1


def test_ipfix_sysuptime_with_system_init_in_record():
    fields = [(8, 4), (12, 4), (160, 8), (22, 4), (21, 4)]
    row = struct.pack("!4s4sQII", ip4("10.0.0.1"), ip4("10.0.0.2"), 1_699_990_000_000, 1000, 2000)
    (record,) = FlowDecoder().decode(
        ipfix_packet(flowset(2, template_record(321, fields)), flowset(321, row)), EXPORTER
    )
    assert record.start == utc(2023, 11, 14, 19, 26, 41)
    assert record.end == utc(2023, 11, 14, 19, 26, 42)


def test_ipfix_delta_microseconds():
    fields = [(8, 4), (12, 4), (158, 4), (159, 4)]
    row = struct.pack("!4s4sII", ip4("10.0.0.1"), ip4("10.0.0.2"), 2_500_000, 250)
    (record,) = FlowDecoder().decode(
        ipfix_packet(flowset(2, template_record(322, fields)), flowset(322, row)), EXPORTER
    )
    assert record.start == utc(2023, 11, 14, 22, 13, 17, 500_000)
    assert record.end == utc(2023, 11, 14, 22, 13, 19, 999_750)


def test_ipfix_ntp_microsecond_times():
    fields = [(8, 4), (12, 4), (154, 8), (155, 8)]
    ntp_start = ((EXPORT_SECS + 2208988800) << 32) | (1 << 31)  # .5 s
    ntp_end = (EXPORT_SECS + 1 + 2208988800) << 32
    row = struct.pack("!4s4sQQ", ip4("10.0.0.1"), ip4("10.0.0.2"), ntp_start, ntp_end)
    (record,) = FlowDecoder().decode(
        ipfix_packet(flowset(2, template_record(323, fields)), flowset(323, row)), EXPORTER
    )
    assert record.start == utc(2023, 11, 14, 22, 13, 20, 500_000)
    assert record.end == utc(2023, 11, 14, 22, 13, 21)


def test_ipfix_template_withdrawal():
    row = IPFIX_RECORD.pack(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 6, 1, 40, 0, 0, 0)
    decoder = FlowDecoder()
    decoder.decode(ipfix_packet(flowset(2, template_record(300, IPFIX_FIELDS))), EXPORTER)
    assert len(decoder.decode(ipfix_packet(flowset(300, row)), EXPORTER)) == 1
    decoder.decode(ipfix_packet(flowset(2, struct.pack("!HH", 300, 0))), EXPORTER)
    assert decoder.decode(ipfix_packet(flowset(300, row)), EXPORTER) == []
    assert decoder.stats()["sets_pending"] == 1
    # Learn again, then withdraw all data templates of the domain at once.
    decoder.decode(ipfix_packet(flowset(2, template_record(300, IPFIX_FIELDS))), EXPORTER)
    decoder.decode(ipfix_packet(flowset(2, template_record(301, IPFIX_FIELDS))), EXPORTER)
    decoder.decode(ipfix_packet(flowset(2, struct.pack("!HH", 2, 0))), EXPORTER)
    assert decoder.stats()["templates"] == 0
    assert decoder.malformed_packets == 0


def test_ipfix_templates_are_per_observation_domain():
    row = IPFIX_RECORD.pack(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 6, 1, 40, 0, 0, 0)
    decoder = FlowDecoder()
    decoder.decode(ipfix_packet(flowset(2, template_record(300, IPFIX_FIELDS)), domain=1), EXPORTER)
    assert decoder.decode(ipfix_packet(flowset(300, row), domain=2), EXPORTER) == []
    (record,) = decoder.decode(ipfix_packet(flowset(300, row), domain=1), EXPORTER)
    assert record.observation_domain == 1


def test_v9_and_ipfix_templates_do_not_collide():
    decoder = FlowDecoder()
    decoder.decode(v9_packet(flowset(0, template_record(300, V9_FIELDS)), source_id=42), EXPORTER)
    row = IPFIX_RECORD.pack(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 6, 1, 40, 0, 0, 0)
    assert decoder.decode(ipfix_packet(flowset(300, row), domain=42), EXPORTER) == []


# Malformed input


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00",
        struct.pack("!H", 7) + b"\0" * 30,  # unknown version
        v9_packet()[:12],  # truncated header
        v9_packet(struct.pack("!HH", 256, 0)),  # zero-length set
        v9_packet(struct.pack("!HH", 256, 2) + b"\0" * 8),  # set shorter than its header
        v9_packet(struct.pack("!HH", 256, 400) + b"\0" * 8),  # set past end of packet
        v9_packet(flowset(0, struct.pack("!HH", 256, 3) + struct.pack("!HH", 8, 4))),  # field list truncated
        v9_packet(flowset(0, struct.pack("!HHHH", 256, 1, 8, 0))),  # zero-length record
        v9_packet(flowset(0, template_record(100, V9_FIELDS))),  # template id below 256
        ipfix_packet(flowset(2, template_record(300, IPFIX_FIELDS)))[:-3],  # shorter than its length field
        ipfix_packet(struct.pack("!HH", 300, 0)),  # zero-length set
        ipfix_packet(flowset(3, struct.pack("!HHH", 400, 2, 0) + struct.pack("!HHHH", 149, 4, 160, 8))),  # no scope
    ],
)
def test_malformed_packets_are_counted(packet):
    decoder = FlowDecoder()
    assert decoder.decode(packet, EXPORTER) == []
    assert decoder.malformed_packets == 1
    assert sum(decoder.errors.values()) == 1


def test_out_of_range_timestamp_is_counted_as_malformed():
    row = IPFIX_RECORD.pack(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 6, 1, 40, 2**64 - 1, 2**64 - 1, 0)
    decoder = FlowDecoder()
    assert (
        decoder.decode(ipfix_packet(flowset(2, template_record(300, IPFIX_FIELDS)), flowset(300, row)), EXPORTER) == []
    )
    assert decoder.malformed_packets == 1
    assert decoder.errors == {"flow time out of range": 1}
    # The last millisecond a datetime holds (9999-12-31 23:59:59.999 UTC) is still a flow.
    last = 253_402_300_799_999
    row = IPFIX_RECORD.pack(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 6, 1, 40, last, last, 0)
    [record] = decoder.decode(ipfix_packet(flowset(300, row)), EXPORTER)
    assert record.end == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert decoder.malformed_packets == 1


def test_it_returns_nothing_of_a_packet_whose_variable_length_field_overruns_but_keeps_its_template():
    fields = [(8, 4), (82, 65535), (2, 4)]
    good = ip4("10.0.0.1") + b"\x02ab" + struct.pack("!I", 5)
    bad = ip4("10.0.0.2") + b"\x40" + b"ab" * 4  # claims 64 bytes, has 8
    decoder = FlowDecoder()
    records = decoder.decode(ipfix_packet(flowset(2, template_record(330, fields)), flowset(330, good + bad)), EXPORTER)
    assert records == []
    assert decoder.malformed_packets == 1
    [record] = decoder.decode(ipfix_packet(flowset(330, good)), EXPORTER)
    assert (record.source_ip, record.packets) == ("10.0.0.1", 5)


def test_decoder_keeps_working_after_malformed_packets():
    decoder = FlowDecoder()
    decoder.decode(b"\x00\x09garbage", EXPORTER)
    decoder.decode(v9_packet(struct.pack("!HH", 256, 0)), EXPORTER)
    packet = v9_packet(flowset(0, template_record(256, V9_FIELDS)), flowset(256, v9_data(V9_ROW_ALLOW)))
    assert len(decoder.decode(packet, EXPORTER)) == 1
    assert decoder.malformed_packets == 2
    assert decoder.packets == 3


# Sampling, dual-stack templates, packet-sampling records, biflows, observation times, drops


DUAL_FIELDS = [(8, 4), (12, 4), (27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8)]


def dual_row(source4, destination4, source6, destination6, packets, octets):
    start = EXPORT_SECS * 1000 - 5000
    return (ip4(source4) + ip4(destination4) + ip6(source6) + ip6(destination6)
            + struct.pack("!HHBQQQQ", 4000, 443, 6, packets, octets, start, start + 1000))


def test_it_reads_each_record_of_a_dual_stack_template_in_its_own_address_family():
    body = (dual_row("10.0.0.1", "10.0.0.2", "::", "::", 2, 120)
            + dual_row("0.0.0.0", "0.0.0.0", "2001:db8::1", "2001:db8::2", 3, 300))
    packet = ipfix_packet(flowset(2, template_record(400, DUAL_FIELDS)), flowset(400, body))
    v4, v6 = FlowDecoder().decode(packet, EXPORTER)
    assert (v4.source_ip, v4.destination_ip, v4.packets) == ("10.0.0.1", "10.0.0.2", 2)
    assert (v6.source_ip, v6.destination_ip, v6.packets, v6.bytes) == ("2001:db8::1", "2001:db8::2", 3, 300)


def test_a_template_with_an_ipv4_source_and_an_ipv6_destination_reads_what_each_record_holds():
    fields = [(8, 4), (28, 16), (2, 4)]
    rows = ip4("10.0.0.1") + ip6("::") + struct.pack("!I", 1) + ip4("0.0.0.0") + ip6("2001:db8::9") + struct.pack(
        "!I", 2)
    first, second = FlowDecoder().decode(
        ipfix_packet(flowset(2, template_record(405, fields)), flowset(405, rows)), EXPORTER)
    assert (first.source_ip, first.destination_ip) == ("10.0.0.1", "::")
    assert (second.source_ip, second.destination_ip) == ("0.0.0.0", "2001:db8::9")


def ethernet(ethertype, payload, tags=()):
    header = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02"
    for tag_type, vlan in tags:
        header += struct.pack("!HH", tag_type, vlan)
    return header + struct.pack("!H", ethertype) + payload


def ipv4_header(source, destination, protocol, payload):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, protocol, 0, ip4(source),
                       ip4(destination)) + payload


def ipv6_header(source, destination, protocol, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), protocol, 64, ip6(source), ip6(destination)) + payload


@pytest.mark.parametrize(("frame", "expected"), [
    (ethernet(0x0800, ipv4_header("192.0.2.1", "198.51.100.2", 17, struct.pack("!HHHH", 5353, 53, 108, 0)
                                  + b"q" * 100)),
     ("192.0.2.1", "198.51.100.2", 5353, 53, 17, 128, 14)),
    # 802.1ad outer tag, 802.1Q inner tag, then IPv6 with TCP.
    (ethernet(0x86DD, ipv6_header("2001:db8::a", "2001:db8::b", 6, struct.pack("!HH", 443, 50000) + b"\0" * 16),
              tags=((0x88A8, 10), (0x8100, 20))),
     ("2001:db8::a", "2001:db8::b", 443, 50000, 6, 60, 22)),
    # Two MPLS labels, bottom of stack on the second, then IPv4 ICMP echo request (type 8, code 0).
    (ethernet(0x8847, struct.pack("!II", 100 << 12 | 64, 200 << 12 | 0x100 | 64)
              + ipv4_header("10.9.0.1", "10.9.0.2", 1, b"\x08\x00\0\0" + b"\0" * 4)),
     ("10.9.0.1", "10.9.0.2", 0, 8 << 8, 1, 28, 22)),
    # The first fragment of an IPv6 packet: its fragment header, then UDP.
    (ethernet(0x86DD, ipv6_header("2001:db8::a", "2001:db8::b", 44, struct.pack("!BBHI", 17, 0, 1, 7)
                                  + struct.pack("!HHHH", 4500, 4500, 1208, 0) + b"u" * 8)),
     ("2001:db8::a", "2001:db8::b", 4500, 4500, 17, 64, 14)),
], ids=["ipv4-udp", "qinq-ipv6-tcp", "mpls-ipv4-icmp", "ipv6-first-fragment-udp"])
def test_it_decodes_the_frame_header_of_a_packet_sampling_record(frame, expected):
    from flowreports.collector.frames import parse_frame

    assert parse_frame(frame) == expected


def datalink_packet(frame, frame_size, observed_ms=None):
    fields = [(312, 2), (315, 65535)] + ([(323, 8)] if observed_ms is not None else [])
    row = struct.pack("!H", frame_size) + bytes([len(frame)]) + frame
    if observed_ms is not None:
        row += struct.pack("!Q", observed_ms)
    return ipfix_packet(flowset(2, template_record(500, fields)), flowset(500, row))


def test_a_packet_sampling_record_is_one_packet_of_its_frames_layer_3_size_at_its_observation_time():
    frame = ethernet(0x0800, ipv4_header("192.0.2.1", "198.51.100.2", 6, struct.pack("!HH", 1234, 80) + b"\0" * 16))
    observed = EXPORT_SECS * 1000 - 1500
    [record] = FlowDecoder().decode(datalink_packet(frame, 1514, observed), EXPORTER)
    assert (record.source_ip, record.destination_ip, record.source_port, record.destination_port,
            record.protocol) == ("192.0.2.1", "198.51.100.2", 1234, 80, 6)
    # A 1514-byte frame: 1500 bytes of IP, though the section holds only its first 54 bytes.
    assert (record.packets, record.bytes) == (1, 1500)
    assert record.start == record.end == utc(2023, 11, 14, 22, 13, 18, 500_000)


def test_a_packet_sampling_record_without_an_ip_header_is_counted_and_yields_no_flow():
    decoder = FlowDecoder()
    assert decoder.decode(datalink_packet(ethernet(0x0806, b"\0" * 28), 60), EXPORTER) == []
    assert decoder.records_without_flow == 1
    assert decoder.malformed_packets == 0


V9_SAMPLER_OPTIONS = struct.pack("!HHH", 300, 4, 12) + struct.pack("!HHHHHHHH", 1, 4, 48, 2, 50, 4, 49, 1)
V9_SAMPLED_FIELDS = V9_FIELDS + [(48, 2)]


def test_it_scales_a_v9_flow_by_the_rate_of_the_sampler_it_names_and_others_by_the_default():
    options = flowset(1, V9_SAMPLER_OPTIONS) + flowset(300, struct.pack("!IHIB", 0, 5, 64, 2) + b"\0" * 3)
    rows = v9_data(V9_ROW_ALLOW) + struct.pack("!H", 5) + v9_data(V9_ROW_ALLOW) + struct.pack("!H", 9)
    packet = v9_packet(options, flowset(0, template_record(256, V9_SAMPLED_FIELDS)), flowset(256, rows))
    decoder = FlowDecoder(default_rates={(EXPORTER, None): 10})
    sampled, unknown_sampler = decoder.decode(packet, EXPORTER)
    assert (sampled.packets, sampled.bytes, sampled.sampling_rate) == (3 * 64, 210 * 64, 64)
    assert (unknown_sampler.packets, unknown_sampler.bytes, unknown_sampler.sampling_rate) == (30, 2100, 10)


def test_flows_held_for_their_exporters_sampling_options_take_the_default_rate_when_the_wait_is_over():
    decoder = FlowDecoder(sampling_wait=2.0, default_rates={(EXPORTER, 7): 4})
    packet = v9_packet(flowset(0, template_record(256, V9_FIELDS)), flowset(256, v9_data(V9_ROW_ALLOW)))
    assert decoder.decode(packet, EXPORTER, now=100.0) == []
    assert decoder.release(now=101.0) == []
    [record] = decoder.release(now=102.5)
    assert (record.packets, record.sampling_rate) == (12, 4)
    assert (decoder.flows_held_for_sampling, decoder.flows_default_rate) == (1, 1)
    # After the wait, flows of that exporter are not held again.
    [later] = decoder.decode(v9_packet(flowset(256, v9_data(V9_ROW_ALLOW))), EXPORTER, now=103.0)
    assert later.sampling_rate == 4


@pytest.mark.parametrize(("field", "value", "action"), [
    ((89, 1), 0x40, "allow"),  # forwarded
    ((89, 1), 0x82, "drop"),  # dropped, ACL deny
    ((89, 4), 0x87, "drop"),  # dropped, reason 7, full-size encoding
    ((89, 1), 0xC1, "allow"),  # consumed (terminated)
    ((233, 1), 3, "drop"),  # firewallEvent: flow denied
    ((233, 1), 1, "allow"),  # firewallEvent: flow created
])
def test_forwarding_status_drop_codes_and_denied_firewall_events_are_drops(field, value, action):
    fields = [(8, 4), (12, 4), (2, 4), (1, 4), field]
    row = ip4("10.0.0.1") + ip4("10.0.0.2") + struct.pack("!II", 1, 40) + value.to_bytes(field[1], "big")
    [record] = FlowDecoder().decode(ipfix_packet(flowset(2, template_record(401, fields)), flowset(401, row)),
                                    EXPORTER)
    assert record.action == action


def test_cisco_asa_denied_flows_are_drops():
    fields = [(8, 4), (12, 4), (4, 1), (40005, 1), (323, 8)]
    row = ip4("10.0.0.1") + ip4("10.0.0.2") + struct.pack("!BBQ", 6, 3, EXPORT_SECS * 1000 - 250)
    [record] = FlowDecoder().decode(v9_packet(flowset(0, template_record(260, fields)), flowset(260, row)), EXPORTER)
    assert record.action == "drop"
    assert record.start == utc(2023, 11, 14, 22, 13, 19, 750_000)


def test_observation_time_in_microseconds_is_an_ntp_timestamp():
    fields = [(8, 4), (12, 4), (324, 8)]
    ntp_seconds = EXPORT_SECS + 2_208_988_800
    row = ip4("10.0.0.1") + ip4("10.0.0.2") + struct.pack("!II", ntp_seconds, 1 << 31)
    decoder = FlowDecoder()
    [record] = decoder.decode(ipfix_packet(flowset(2, template_record(402, fields)), flowset(402, row)), EXPORTER)
    assert record.start == record.end == utc(2023, 11, 14, 22, 13, 20, 500_000)
    assert decoder.flows_timed_by_export == 0


def test_a_record_without_any_time_is_timed_by_its_export_and_counted():
    decoder = FlowDecoder()
    row = ip4("10.0.0.1") + ip4("10.0.0.2")
    [record] = decoder.decode(ipfix_packet(flowset(2, template_record(403, [(8, 4), (12, 4)])), flowset(403, row)),
                              EXPORTER)
    assert record.start == utc(2023, 11, 14, 22, 13, 20)
    assert decoder.flows_timed_by_export == 1


def test_a_counter_too_large_once_scaled_makes_the_packet_malformed():
    fields = [(8, 4), (12, 4), (2, 8), (1, 8), (34, 4)]
    row = ip4("10.0.0.1") + ip4("10.0.0.2") + struct.pack("!QQI", 1, 2**62, 4)
    decoder = FlowDecoder()
    assert decoder.decode(ipfix_packet(flowset(2, template_record(404, fields)), flowset(404, row)), EXPORTER) == []
    assert decoder.malformed_packets == 1


# Real exporters' packets, truncated and fuzzed


def real_payloads():
    from flowreports.tests.test_real_exports import FACTS, replay

    return [(case, replay(names)) for case, (names, *_rest) in FACTS.items()]


def test_truncated_real_packets_of_v5_v9_and_ipfix_are_counted_and_yield_no_half_decoded_record():
    for case, payloads in real_payloads():
        reference = FlowDecoder()
        for payload in payloads[:-1]:
            reference.decode(payload, EXPORTER, now=0.0)
        full = reference.decode(payloads[-1], EXPORTER, now=0.0)
        whole = set(full)
        for cut in range(len(payloads[-1])):
            decoder = FlowDecoder()
            for payload in payloads[:-1]:
                decoder.decode(payload, EXPORTER, now=0.0)
            records = decoder.decode(payloads[-1][:cut], EXPORTER, now=0.0)
            # Either nothing (the packet is malformed) or whole records that the full packet also gives.
            assert set(records) <= whole, (case, cut)
            assert records == [] or decoder.malformed_packets == 0, (case, cut)
            assert decoder.malformed_packets + bool(records) <= 1, (case, cut)


def test_fuzzed_real_packets_never_raise_and_every_record_fits_the_store():
    import random

    from flowreports.collector.decode import COUNTER_MAX, MAX_MICROS, MIN_MICROS, RATE_MAX

    generator = random.Random(20260212)
    for _case, payloads in real_payloads():
        decoder = FlowDecoder()
        for _round in range(300):
            packet = bytearray(generator.choice(payloads))
            for _flip in range(generator.randint(1, 8)):
                packet[generator.randrange(len(packet))] = generator.randrange(256)
            for record in decoder.decode(bytes(packet), EXPORTER) + decoder.release(everything=True):
                assert 0 <= record.packets <= COUNTER_MAX and 0 <= record.bytes <= COUNTER_MAX
                assert 1 <= record.sampling_rate <= RATE_MAX
                assert MIN_MICROS <= record.start_us <= MAX_MICROS and MIN_MICROS <= record.end_us <= MAX_MICROS
        assert decoder.packets == 300


def test_it_scales_an_ipfix_flow_by_the_rate_its_selectors_options_record_gave():
    # Options template 600: scope selectorId (302); samplingPacketInterval 1, samplingPacketSpace 127 (1 in 128).
    options_template = struct.pack("!HHH", 600, 3, 1) + struct.pack("!HHHHHH", 302, 8, 305, 4, 306, 4)
    options = flowset(3, options_template) + flowset(600, struct.pack("!QII", 77, 1, 127))
    fields = [(8, 4), (12, 4), (2, 4), (1, 4), (302, 8)]
    row = ip4("10.0.0.1") + ip4("10.0.0.2") + struct.pack("!IIQ", 2, 100, 77)
    packet = ipfix_packet(options, flowset(2, template_record(601, fields)), flowset(601, row))
    [record] = FlowDecoder().decode(packet, EXPORTER)
    assert (record.packets, record.bytes, record.sampling_rate) == (256, 12_800, 128)


def test_it_scales_netflow_v5_by_the_sampling_interval_of_its_header():
    packet = bytearray(v5_packet([("10.0.0.1", "10.0.0.2", 4, 400, 99_000, 99_500, 1000, 80, 6)]))
    packet[22:24] = struct.pack("!H", 1 << 14 | 100)  # mode 1 (deterministic), 1 in 100
    [record] = FlowDecoder().decode(bytes(packet), EXPORTER)
    assert (record.packets, record.bytes, record.sampling_rate) == (400, 40_000, 100)


# The exporter's own sampling options record (v9 options template 301: scope system, samplingInterval).
V9_EXPORTER_OPTIONS = struct.pack("!HHH", 301, 4, 4) + struct.pack("!HHHH", 1, 4, 34, 4)


def v9_exporter_rate(rate):
    return flowset(1, V9_EXPORTER_OPTIONS) + flowset(301, struct.pack("!II", 0, rate))


def v9_sampler_rate(sampler, rate):
    return flowset(1, V9_SAMPLER_OPTIONS) + flowset(300, struct.pack("!IHIB", 0, sampler, rate, 2) + b"\0" * 3)


# Data templates whose records carry no rate of their own: plain, an own samplingInterval of 0, a sampler ID
# that no options record gave a rate.
UNRATED_TEMPLATES = {
    "plain": (V9_FIELDS, v9_data(V9_ROW_ALLOW)),
    "own interval 0": (V9_FIELDS + [(34, 4)], v9_data(V9_ROW_ALLOW) + struct.pack("!I", 0)),
    "unknown sampler": (V9_FIELDS + [(48, 2)], v9_data(V9_ROW_ALLOW) + struct.pack("!H", 9)),
}


@pytest.mark.parametrize("kind", list(UNRATED_TEMPLATES))
def test_a_record_without_its_own_rate_takes_its_exporters_rate_whether_held_or_decoded_after_the_wait(kind):
    fields, row = UNRATED_TEMPLATES[kind]
    decoder = FlowDecoder(sampling_wait=2.0, default_rates={(EXPORTER, None): 7})
    template = flowset(0, template_record(256, fields))
    # Data before the exporter's sampling options: held, then scaled by the rate the options give.
    assert decoder.decode(v9_packet(template, flowset(256, row)), EXPORTER, now=100.0) == []
    [held] = decoder.decode(v9_packet(v9_exporter_rate(100)), EXPORTER, now=101.0)
    # The same record once the wait is over: decoded at once, at the same rate.
    [later] = decoder.decode(v9_packet(flowset(256, row)), EXPORTER, now=103.0)
    for record in (held, later):
        assert (record.packets, record.bytes, record.sampling_rate) == (300, 21_000, 100)
    assert (decoder.flows_held_for_sampling, decoder.flows_default_rate) == (1, 0)


@pytest.mark.parametrize("kind", list(UNRATED_TEMPLATES))
def test_the_admin_default_rate_applies_only_to_an_exporter_that_sends_no_rate(kind):
    fields, row = UNRATED_TEMPLATES[kind]
    template = flowset(0, template_record(256, fields))
    silent = FlowDecoder(default_rates={(EXPORTER, None): 7})
    [record] = silent.decode(v9_packet(template, flowset(256, row)), EXPORTER)
    assert (record.packets, record.bytes, record.sampling_rate) == (21, 1_470, 7)
    telling = FlowDecoder(default_rates={(EXPORTER, None): 7})
    [record] = telling.decode(v9_packet(v9_exporter_rate(100), template, flowset(256, row)), EXPORTER)
    assert (record.packets, record.bytes, record.sampling_rate) == (300, 21_000, 100)
    unsampled = FlowDecoder()
    [record] = unsampled.decode(v9_packet(template, flowset(256, row)), EXPORTER)
    assert (record.packets, record.bytes, record.sampling_rate) == (3, 210, 1)


def test_a_records_own_non_zero_interval_wins_over_its_samplers_and_its_exporters_rate():
    fields = V9_FIELDS + [(48, 2), (34, 4)]
    row = v9_data(V9_ROW_ALLOW) + struct.pack("!HI", 5, 10)
    decoder = FlowDecoder(sampling_wait=2.0, default_rates={(EXPORTER, None): 7})
    packet = v9_packet(
        v9_exporter_rate(100), v9_sampler_rate(5, 64), flowset(0, template_record(256, fields)), flowset(256, row)
    )
    [record] = decoder.decode(packet, EXPORTER, now=100.0)
    assert (record.packets, record.bytes, record.sampling_rate) == (30, 2_100, 10)


def test_a_samplers_rate_wins_over_its_exporters_rate():
    fields = V9_FIELDS + [(48, 2), (34, 4)]
    rows = v9_data(V9_ROW_ALLOW) + struct.pack("!HI", 5, 0) + v9_data(V9_ROW_ALLOW) + struct.pack("!HI", 9, 0)
    decoder = FlowDecoder(sampling_wait=2.0, default_rates={(EXPORTER, None): 7})
    packet = v9_packet(
        v9_exporter_rate(100), v9_sampler_rate(5, 64), flowset(0, template_record(256, fields)), flowset(256, rows)
    )
    sampled, unknown_sampler = decoder.decode(packet, EXPORTER, now=100.0)
    assert (sampled.packets, sampled.bytes, sampled.sampling_rate) == (192, 13_440, 64)
    assert (unknown_sampler.packets, unknown_sampler.bytes, unknown_sampler.sampling_rate) == (300, 21_000, 100)
