"""The canonical text of an IP address: the one spelling every app stores, filters on and compares."""

import ipaddress
from functools import lru_cache


class ZoneIndexError(ValueError):
    """An IPv6 address with a zone index ("fe80::1%eth0")."""


def unmapped(address):
    """The IPv4 address an IPv4-mapped IPv6 address ("::ffff:192.0.2.1") carries, else the address itself.
    A dual-stack socket reports its IPv4 peers that way; where the peer matters (who signed in, which
    subscriber, which VPN client), it is the IPv4 address."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=65536)
def canonical_ip(text):
    """The text ipaddress gives an IPv4 or IPv6 address: "2001:DB8::0001" is "2001:db8::1", and an IPv4-mapped
    IPv6 address stays one, written "::ffff:192.0.2.1" (as PostgreSQL's inet writes it). Raises ValueError for
    anything else, surrounding spaces included, and ZoneIndexError for a zone index: it names an interface of the
    host that saw the address, means nothing here, and PostgreSQL's inet has no place for it."""
    address = ipaddress.ip_address(text)
    if getattr(address, "scope_id", None) is not None:
        raise ZoneIndexError(f"{text!r} carries an IPv6 zone index")
    return str(address)


@lru_cache(maxsize=65536)
def canonical_ip_or_none(text):
    """canonical_ip(), or None for anything that is not an address (a host name, say)."""
    try:
        return canonical_ip(text)
    except ValueError:
        return None
