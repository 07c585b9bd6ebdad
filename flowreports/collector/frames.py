"""Addresses, ports and protocol from the first bytes of a sampled packet (Ethernet, 802.1Q, MPLS, IPv4, IPv6)."""

from __future__ import annotations

import socket
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

_inet_ntoa = socket.inet_ntoa
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6


class PacketHeader(NamedTuple):
    """What a flow needs from one packet; ip_length is the IP header's total length (IPv6: 40 + payload)."""

    source_ip: str
    destination_ip: str
    source_port: int
    destination_port: int
    protocol: int
    ip_length: int


def parse_frame(frame: bytes) -> PacketHeader | None:
    """An Ethernet frame's first bytes as a PacketHeader; None when they hold no whole IPv4 or IPv6 header.

    802.1Q/802.1ad tags and an MPLS label stack are stepped over. ICMP carries type << 8 | code as the
    destination port, as NetFlow does. Ports of a transport header cut off by the sample, and of a fragment
    other than the first, are 0.
    """
    if len(frame) < 14:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    offset = 14
    while ethertype in _ETHERTYPE_VLANS:
        if len(frame) < offset + 4:
            return None
        ethertype = (frame[offset + 2] << 8) | frame[offset + 3]
        offset += 4
    if ethertype in _ETHERTYPE_MPLS:
        while True:
            if len(frame) < offset + 4:
                return None
            bottom_of_stack = frame[offset + 2] & 0x01
            offset += 4
            if bottom_of_stack:
                break
        # MPLS names no payload type: the IP version nibble tells.
        if len(frame) <= offset:
            return None
        ethertype = {4: ETHERTYPE_IPV4, 6: ETHERTYPE_IPV6}.get(frame[offset] >> 4)
    if ethertype == ETHERTYPE_IPV4:
        return parse_ipv4(frame, offset)
    if ethertype == ETHERTYPE_IPV6:
        return parse_ipv6(frame, offset)
    return None


def parse_ipv4(packet: bytes, offset: int = 0) -> PacketHeader | None:
    """An IPv4 header at offset (and what follows of its transport header) as a PacketHeader."""
    if len(packet) < offset + 20 or packet[offset] >> 4 != 4:
        return None
    header_length = (packet[offset] & 0x0F) * 4
    if header_length < 20:
        return None
    total_length = (packet[offset + 2] << 8) | packet[offset + 3]
    fragment_offset = ((packet[offset + 6] & 0x1F) << 8) | packet[offset + 7]
    protocol = packet[offset + 9]
    source = _inet_ntoa(packet[offset + 12 : offset + 16])
    destination = _inet_ntoa(packet[offset + 16 : offset + 20])
    transport = offset + header_length if fragment_offset == 0 else None
    return _with_ports(packet, source, destination, protocol, transport, total_length)


def parse_ipv6(packet: bytes, offset: int = 0) -> PacketHeader | None:
    """An IPv6 header at offset (extension headers stepped over) as a PacketHeader."""
    if len(packet) < offset + 40 or packet[offset] >> 4 != 6:
        return None
    total_length = 40 + ((packet[offset + 4] << 8) | packet[offset + 5])
    protocol = packet[offset + 6]
    source = _inet_ntop(_AF_INET6, packet[offset + 8 : offset + 24])
    destination = _inet_ntop(_AF_INET6, packet[offset + 24 : offset + 40])
    transport: int | None = offset + 40
    while protocol in _IPV6_EXTENSIONS or protocol == _IPV6_FRAGMENT:
        if len(packet) < transport + 8:
            # The next protocol is in an extension header the sample cut off.
            return None
        if protocol == _IPV6_FRAGMENT:
            later_fragment = ((packet[transport + 2] << 8) | packet[transport + 3]) >> 3
            protocol = packet[transport]
            if later_fragment:
                transport = None
                break
            transport += 8
        else:
            protocol, transport = packet[transport], transport + 8 + packet[transport + 1] * 8
    return _with_ports(packet, source, destination, protocol, transport, total_length)


def _with_ports(packet, source, destination, protocol, transport, total_length) -> PacketHeader:
    source_port = destination_port = 0
    if transport is not None and len(packet) >= transport + 4:
        if protocol in _PORT_PROTOCOLS:
            source_port = (packet[transport] << 8) | packet[transport + 1]
            destination_port = (packet[transport + 2] << 8) | packet[transport + 3]
        elif protocol in _ICMP_PROTOCOLS:
            destination_port = (packet[transport] << 8) | packet[transport + 1]
    return PacketHeader(source, destination, source_port, destination_port, protocol, total_length)
