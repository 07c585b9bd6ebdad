"""sFlow version 5 datagram decoding (sflow.org, "sFlow Version 5"): packet samples into FlowRecords.

Each flow sample (compact or expanded) describes one sampled packet that stands for sampling_rate packets.
It becomes one FlowRecord from its raw packet header record (Ethernet with 802.1Q/MPLS, IPv4 or IPv6 header
protocols) or, when it has none, from a sampled IPv4/IPv6 record. Its volume is scaled as the specification
means it: packets = sampling_rate, bytes = frame_length × sampling_rate, where frame_length is the "original
length of the packet before sampling", for Ethernet the octets on the wire including the MAC header and FCS
(a sampled IPv4/IPv6 record gives the IP packet's length instead). NetFlow and IPFIX count IP octets, so the
same traffic measures 18 octets a packet more through an Ethernet sFlow agent (22 with an 802.1Q tag).
sFlow carries no flow times: a sample is timed at the datagram's arrival, its start equal to its end. A sample
whose output interface has the "packet discarded" format is stored with action "drop".

Counter samples are counted and skipped; samples of other formats or enterprises are skipped by length, like
records the decoder does not use. A datagram that is truncated or inconsistent anywhere is counted as malformed
and yields nothing, not even the samples before the fault.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from flowreports.collector.decode import COUNTER_MAX, RATE_MAX, DecoderCounters, FlowRecord, MalformedPacket
from flowreports.collector.frames import parse_frame, parse_ipv4, parse_ipv6

# FlowRecord.version of sFlow records: sFlow's registered UDP port, since its own version number (5) is
# NetFlow v5's too.
SFLOW_VERSION = 6343
# The first four octets of every sFlow v5 datagram (a 32-bit version field); NetFlow and IPFIX start with a
# 16-bit version, so they never begin with two zero octets.
DATAGRAM_PREFIX = b"\x00\x00\x00\x05"

_FLOW_SAMPLE = 1
_COUNTERS_SAMPLE = 2
_FLOW_SAMPLE_EXPANDED = 3
_COUNTERS_SAMPLE_EXPANDED = 4
_SAMPLED_HEADER = 1
_SAMPLED_IPV4 = 3
_SAMPLED_IPV6 = 4
_HEADER_ETHERNET = 1
_HEADER_IPV4 = 11
_HEADER_IPV6 = 12
_INTERFACE_DISCARDED = 1  # the "format" of an output interface: the packet was dropped

_U32_PAIR = struct.Struct("!II")
_DATAGRAM_HEADER = struct.Struct("!IIII")  # sub agent id, sequence number, uptime, number of samples
# A flow sample's fields before its records, and where its sampling rate and output interface format are: the
# compact form keeps the format in the interface's top two bits, the expanded form in a field of its own.
_FLOW_SAMPLE_LAYOUTS = {
    False: (struct.Struct("!8I"), 2, 6, 30),
    True: (struct.Struct("!11I"), 3, 8, 0),
}
_SAMPLED_HEADER_FIELDS = struct.Struct("!IIII")  # header protocol, frame length, stripped, header length
_SAMPLED_IPV4_FIELDS = struct.Struct("!II4s4sII")  # length, protocol, source, destination, ports
_SAMPLED_IPV6_FIELDS = struct.Struct("!II16s16sII")
_ADDRESS_LENGTHS = {0: 0, 1: 4, 2: 16}  # unknown, IPv4, IPv6 agent address

_tuple_new = tuple.__new__
_ntoa = socket.inet_ntoa


def _ntop6(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, packed)


class SFlowDecoder(DecoderCounters):
    """Decode sFlow v5 datagrams; malformed ones are counted (malformed_packets, errors), never raised.

    clock gives the wall-clock time (seconds since the Unix epoch) at which a datagram's samples are timed.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock
        self.flow_samples = 0
        self.counter_samples = 0
        self.other_samples = 0
        self.samples_without_flow = 0

    def stats(self) -> dict[str, int]:
        return {
            **super().stats(),
            "flow_samples": self.flow_samples,
            "counter_samples": self.counter_samples,
            "other_samples": self.other_samples,
            "samples_without_flow": self.samples_without_flow,
        }

    def decode(self, packet: bytes, exporter: str, now: float | None = None) -> list[FlowRecord]:
        """The flows of one datagram from exporter (its UDP source address); [] for a malformed one.

        now (a monotonic time, as the NetFlow decoder takes it) is not needed: samples are timed by the clock.
        """
        self.packets += 1
        counts = [0, 0, 0, 0]  # flow samples, counter samples, other samples, samples without flow
        out: list[FlowRecord] = []
        try:
            self._decode_datagram(packet, exporter, out, counts)
        except (MalformedPacket, struct.error, ValueError, OSError) as error:
            self.count_malformed(error)
            return []
        self.flow_samples += counts[0]
        self.counter_samples += counts[1]
        self.other_samples += counts[2]
        self.samples_without_flow += counts[3]
        self.flows_decoded += len(out)
        return out

    def _decode_datagram(self, packet: bytes, exporter: str, out: list[FlowRecord], counts: list[int]) -> None:
        size = len(packet)
        if size < 8:
            raise MalformedPacket("sflow header truncated")
        version, address_type = _U32_PAIR.unpack_from(packet)
        if version != 5:
            raise MalformedPacket(f"sflow version {version}")
        address_length = _ADDRESS_LENGTHS.get(address_type)
        if address_length is None:
            raise MalformedPacket(f"sflow agent address type {address_type}")
        offset = 8 + address_length
        if size < offset + _DATAGRAM_HEADER.size:
            raise MalformedPacket("sflow header truncated")
        sub_agent_id, _sequence, _uptime, sample_count = _DATAGRAM_HEADER.unpack_from(packet, offset)
        offset += _DATAGRAM_HEADER.size
        if sample_count > (size - offset) // 8:
            raise MalformedPacket("sflow sample count exceeds datagram")
        moment = int(self.clock() * 1_000_000)
        for _ in range(sample_count):
            if size < offset + 8:
                raise MalformedPacket("sflow sample header truncated")
            data_format, length = _U32_PAIR.unpack_from(packet, offset)
            offset += 8
            end = offset + length
            if end > size:
                raise MalformedPacket("sflow sample extends past datagram")
            if data_format == _FLOW_SAMPLE or data_format == _FLOW_SAMPLE_EXPANDED:
                counts[0] += 1
                record = self._flow_sample(
                    packet, offset, end, data_format == _FLOW_SAMPLE_EXPANDED, exporter, sub_agent_id, moment
                )
                if record is None:
                    counts[3] += 1
                else:
                    out.append(record)
            elif data_format == _COUNTERS_SAMPLE or data_format == _COUNTERS_SAMPLE_EXPANDED:
                counts[1] += 1
            else:
                counts[2] += 1
            offset = end

    @staticmethod
    def _flow_sample(
        packet: bytes, offset: int, end: int, expanded: bool, exporter: str, sub_agent_id: int, moment: int
    ) -> FlowRecord | None:
        layout, rate_at, output_at, output_shift = _FLOW_SAMPLE_LAYOUTS[expanded]
        if end - offset < layout.size:
            raise MalformedPacket("sflow flow sample truncated")
        fields = layout.unpack_from(packet, offset)
        rate, output_format, record_count = fields[rate_at], fields[output_at] >> output_shift, fields[-1]
        offset += layout.size
        if rate == 0:
            raise MalformedPacket("sflow flow sample with sampling rate 0")
        if rate > RATE_MAX:
            # Past what the sampling_rate column holds, as NetFlow and IPFIX rates are limited.
            raise MalformedPacket("sflow sampling rate out of range")
        if record_count > (end - offset) // 8:
            raise MalformedPacket("sflow flow record count exceeds sample")
        header = sampled_ip = None
        for _ in range(record_count):
            if end < offset + 8:
                raise MalformedPacket("sflow flow record header truncated")
            data_format, length = _U32_PAIR.unpack_from(packet, offset)
            offset += 8
            record_end = offset + length
            if record_end > end:
                raise MalformedPacket("sflow flow record extends past sample")
            if data_format == _SAMPLED_HEADER:
                if length < _SAMPLED_HEADER_FIELDS.size:
                    raise MalformedPacket("sflow sampled header truncated")
                protocol, frame_length, _stripped, header_length = _SAMPLED_HEADER_FIELDS.unpack_from(packet, offset)
                start = offset + _SAMPLED_HEADER_FIELDS.size
                if header_length > record_end - start:
                    raise MalformedPacket("sflow sampled header longer than its record")
                if header is None:
                    header = (protocol, frame_length, start, start + header_length)
            elif data_format == _SAMPLED_IPV4 or data_format == _SAMPLED_IPV6:
                layout = _SAMPLED_IPV4_FIELDS if data_format == _SAMPLED_IPV4 else _SAMPLED_IPV6_FIELDS
                if length < layout.size:
                    raise MalformedPacket("sflow sampled IP record truncated")
                if sampled_ip is None:
                    sampled_ip = (data_format, layout.unpack_from(packet, offset))
            offset = record_end

        parsed = None
        if header is not None:
            protocol, frame_length, start, stop = header
            if protocol == _HEADER_ETHERNET:
                parsed = parse_frame(packet, start, stop)
            elif protocol == _HEADER_IPV4:
                parsed = parse_ipv4(packet, start, stop)
            elif protocol == _HEADER_IPV6:
                parsed = parse_ipv6(packet, start, stop)
            if parsed is not None:
                source, destination, source_port, destination_port, ip_protocol = parsed[:5]
                octets = frame_length
        if parsed is None:
            if sampled_ip is None:
                return None
            data_format, (octets, ip_protocol, source_packed, destination_packed, source_port, destination_port) = (
                sampled_ip
            )
            convert = _ntoa if data_format == _SAMPLED_IPV4 else _ntop6
            source, destination = convert(source_packed), convert(destination_packed)
            if source_port > 0xFFFF or destination_port > 0xFFFF or ip_protocol > 0xFF:
                raise MalformedPacket("sflow sampled IP record field out of range")
        octets *= rate
        # A 32-bit rate times a 32-bit length can pass the largest count the bytes column (bigint) holds.
        if octets > COUNTER_MAX:
            raise MalformedPacket("sflow sample volume exceeds a 64-bit count")
        return _tuple_new(
            FlowRecord,
            (
                exporter,
                sub_agent_id,
                source,
                destination,
                source_port,
                destination_port,
                ip_protocol,
                rate,
                octets,
                moment,
                moment,
                "drop" if output_format == _INTERFACE_DISCARDED else "allow",
                SFLOW_VERSION,
                rate,
            ),
        )
