"""Addresses, ports and protocol from the first bytes of a sampled packet (Ethernet, 802.1Q, MPLS, IPv4, IPv6)."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLANS = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad and the older QinQ tag
_ETHERTYPE_MPLS = frozenset({0x8847, 0x8848})
# IPv6 extension headers whose length is (second octet + 1) * 8: hop-by-hop, routing, destination options.
_IPV6_EXTENSIONS = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44
_PORT_PROTOCOLS = frozenset({6, 17, 132, 136})  # TCP, UDP, SCTP, UDP-Lite
_ICMP_PROTOCOLS = frozenset({1, 58})

# version and header length, total length, flags and fragment offset, protocol, source, destination
_IPV4_HEADER = struct.Struct("!BxH2xHxB2x4s4s")
# version (first 4 bits), payload length, next header, source, destination
_IPV6_HEADER = struct.Struct("!B3xHBx16s16s")
_PORTS = struct.Struct("!HH")

_inet_ntoa = socket.inet_ntoa
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6
_tuple_new = tuple.__new__


class PacketHeader(NamedTuple):
    """What a flow needs from one packet; ip_length is the IP header's total length (IPv6: 40 + payload),
    link_length the octets before the IP header (MAC header, tags, MPLS labels; 0 for a bare IP packet)."""

    source_ip: str
    destination_ip: str
    source_port: int
    destination_port: int
    protocol: int
    ip_length: int
    link_length: int


def parse_frame(frame: bytes, offset: int = 0, end: int | None = None) -> PacketHeader | None:
    """The Ethernet frame in frame[offset:end] as a PacketHeader; None when it holds no whole IPv4 or IPv6 header.

    802.1Q/802.1ad tags and an MPLS label stack are stepped over. ICMP carries type << 8 | code as the
    destination port, as NetFlow does. Ports of a transport header cut off by the sample, and of a fragment
    other than the first, are 0.
    """
    if end is None:
        end = len(frame)
    position = offset + 14
    if end < position:
        return None
    ethertype = (frame[position - 2] << 8) | frame[position - 1]
    while ethertype in _ETHERTYPE_VLANS:
        position += 4
        if end < position:
            return None
        ethertype = (frame[position - 2] << 8) | frame[position - 1]
    if ethertype == ETHERTYPE_IPV4:
        return parse_ipv4(frame, position, end, position - offset)
    if ethertype == ETHERTYPE_IPV6:
        return parse_ipv6(frame, position, end, position - offset)
    if ethertype in _ETHERTYPE_MPLS:
        while True:
            position += 4
            if end < position:
                return None
            if frame[position - 2] & 0x01:  # bottom of the label stack
                break
        # MPLS names no payload type: the IP version nibble tells.
        if end <= position:
            return None
        version = frame[position] >> 4
        if version == 4:
            return parse_ipv4(frame, position, end, position - offset)
        if version == 6:
            return parse_ipv6(frame, position, end, position - offset)
    return None


def parse_ipv4(packet: bytes, offset: int = 0, end: int | None = None, link_length: int = 0) -> PacketHeader | None:
    """The IPv4 header at packet[offset:end] (and what follows of its transport header) as a PacketHeader."""
    if end is None:
        end = len(packet)
    if end < offset + 20:
        return None
    version_length, total_length, fragment, protocol, source, destination = _IPV4_HEADER.unpack_from(packet, offset)
    header_length = (version_length & 0x0F) * 4
    if version_length >> 4 != 4 or header_length < 20:
        return None
    # A fragment other than the first has no transport header.
    source_port, destination_port = _ports(packet, protocol, end if fragment & 0x1FFF else offset + header_length, end)
    return _tuple_new(
        PacketHeader,
        (_inet_ntoa(source), _inet_ntoa(destination), source_port, destination_port, protocol, total_length,
         link_length),
    )


def parse_ipv6(packet: bytes, offset: int = 0, end: int | None = None, link_length: int = 0) -> PacketHeader | None:
    """The IPv6 header at packet[offset:end] (extension headers stepped over) as a PacketHeader."""
    if end is None:
        end = len(packet)
    if end < offset + 40:
        return None
    version, payload_length, protocol, source, destination = _IPV6_HEADER.unpack_from(packet, offset)
    if version >> 4 != 6:
        return None
    transport = offset + 40
    while protocol in _IPV6_EXTENSIONS or protocol == _IPV6_FRAGMENT:
        if end < transport + 8:
            # The next protocol is in an extension header the sample cut off.
            return None
        if protocol == _IPV6_FRAGMENT:
            later_fragment = ((packet[transport + 2] << 8) | packet[transport + 3]) >> 3
            protocol = packet[transport]
            if later_fragment:
                transport = end  # a later fragment has no transport header
                break
            transport += 8  # the fragment header is 8 octets, without a length field
            continue
        protocol, transport = packet[transport], transport + 8 + packet[transport + 1] * 8
    source_port, destination_port = _ports(packet, protocol, transport, end)
    return _tuple_new(
        PacketHeader,
        (_inet_ntop(_AF_INET6, source), _inet_ntop(_AF_INET6, destination), source_port, destination_port,
         protocol, 40 + payload_length, link_length),
    )


def _ports(packet: bytes, protocol: int, transport: int, end: int) -> tuple[int, int]:
    """(source port, destination port) of the transport header at packet[transport:end]; (0, 0) if cut off."""
    if end >= transport + 4:
        if protocol in _PORT_PROTOCOLS:
            return _PORTS.unpack_from(packet, transport)
        if protocol in _ICMP_PROTOCOLS:
            return 0, _PORTS.unpack_from(packet, transport)[0]
    return 0, 0
