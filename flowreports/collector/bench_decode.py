"""Micro-benchmark: decoded flows per second for generated NetFlow v5, v9 and IPFIX packets."""

import argparse
import socket
import struct
import time

from flowreports.collector.decode import FlowDecoder

EXPORT_SECS = 1_700_000_000
EXPORTER = "192.0.2.1"


def _addresses(index):
    return socket.inet_aton(f"10.{index % 250}.{index % 200}.1"), socket.inet_aton(f"172.16.{index % 250}.2")


def v5_packets(count):
    record = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")
    packets = []
    for packet_index in range(count):
        header = struct.pack("!HHIIIIBBH", 5, 30, 3_600_000, EXPORT_SECS, 0, packet_index * 30, 0, 0, 0)
        body = b"".join(
            record.pack(
                *_addresses(i),
                b"\0" * 4,
                1,
                2,
                10,
                1500,
                3_500_000,
                3_590_000,
                40000 + i,
                443,
                0,
                0x1B,
                6,
                0,
                0,
                0,
                24,
                24,
                0,
            )
            for i in range(30)
        )
        packets.append(header + body)
    return packets, 30


def _set(set_id, body):
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def _template(template_id, fields):
    return struct.pack("!HH", template_id, len(fields)) + b"".join(struct.pack("!HH", *field) for field in fields)


V9_FIELDS = [(8, 4), (12, 4), (22, 4), (21, 4), (1, 4), (2, 4), (10, 4), (14, 4), (61, 1), (7, 2), (11, 2), (4, 1)]
V9_RECORD = struct.Struct("!4s4sIIIIIIBHHB")
IPFIX_FIELDS = [(8, 4), (12, 4), (152, 8), (153, 8), (1, 8), (2, 8), (7, 2), (11, 2), (4, 1), (89, 1)]
IPFIX_RECORD = struct.Struct("!4s4sQQQQHHBB")


def v9_packets(count, per_packet=30):
    template = _set(0, _template(256, V9_FIELDS))
    packets = [struct.pack("!HHIIII", 9, 1, 3_600_000, EXPORT_SECS, 0, 1) + template]
    for packet_index in range(count):
        rows = b"".join(
            V9_RECORD.pack(*_addresses(i), 3_500_000, 3_590_000, 1500, 10, 1, 2, 0, 40000 + i, 443, 6)
            for i in range(per_packet)
        )
        packets.append(struct.pack("!HHIIII", 9, per_packet, 3_600_000, EXPORT_SECS, packet_index, 1) + _set(256, rows))
    return packets, per_packet


def ipfix_packets(count, per_packet=30):
    def message(body, sequence):
        return struct.pack("!HHIII", 10, 16 + len(body), EXPORT_SECS, sequence, 1) + body

    packets = [message(_set(2, _template(300, IPFIX_FIELDS)), 0)]
    for packet_index in range(count):
        rows = b"".join(
            IPFIX_RECORD.pack(*_addresses(i), 1_699_999_990_000, 1_699_999_999_000, 1500, 10, 40000 + i, 443, 6, 0x40)
            for i in range(per_packet)
        )
        packets.append(message(_set(300, rows), packet_index))
    return packets, per_packet


def ipfix_variable_length_packets(count, per_packet=30):
    """Templates with a variable-length field take the per-field path instead of one struct per record."""
    fields = [(8, 4), (12, 4), (152, 8), (153, 8), (1, 8), (2, 8), (7, 2), (11, 2), (4, 1), (82, 65535)]

    def message(body, sequence):
        return struct.pack("!HHIII", 10, 16 + len(body), EXPORT_SECS, sequence, 1) + body

    packets = [message(_set(2, _template(301, fields)), 0)]
    row = struct.Struct("!4s4sQQQQHHB")
    for packet_index in range(count):
        rows = b"".join(
            row.pack(*_addresses(i), 1_699_999_990_000, 1_699_999_999_000, 1500, 10, 40000 + i, 443, 6) + b"\x04eth0"
            for i in range(per_packet)
        )
        packets.append(message(_set(301, rows), packet_index))
    return packets, per_packet


def bench(name, packets, per_packet, repeat):
    decoder = FlowDecoder()
    decode = decoder.decode
    decode(packets[0], EXPORTER)  # templates
    body = packets[1:] if name != "v5" else packets
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for packet in body:
            decode(packet, EXPORTER, 0.0)
        elapsed = time.perf_counter() - started
        best = max(best, len(body) * per_packet / elapsed)
    assert decoder.malformed_packets == 0
    print(f"{name:12s} {best:12,.0f} flows/s  ({len(body)} packets x {per_packet} flows, best of {repeat})")
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench("v5", *v5_packets(args.packets), args.repeat)
    bench("v9", *v9_packets(args.packets), args.repeat)
    bench("ipfix", *ipfix_packets(args.packets), args.repeat)
    bench("ipfix-varlen", *ipfix_variable_length_packets(args.packets), args.repeat)


if __name__ == "__main__":
    main()
