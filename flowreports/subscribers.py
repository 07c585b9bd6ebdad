"""Which subscriber an address belongs to: longest-prefix match over admin prefixes and VPN tunnel addresses."""

import ipaddress
import logging

from flowreports.models import SubscriberPrefix
from vpnmonitor.addresses import unmapped

logger = logging.getLogger(__name__)


def vpn_addresses():
    """{tunnel ip text: common name} of the current VPN clients, or {} without the monitoring app."""
    try:
        from monitoring.selectors import vpn_subscriber_addresses
    except ImportError:
        return {}
    try:
        return dict(vpn_subscriber_addresses() or {})
    except Exception:  # noqa: BLE001 - flows are still stored, attributed by the configured prefixes only
        logger.exception("flowreports: reading VPN tunnel addresses from monitoring failed")
        return {}


class SubscriberTable:
    """An in-memory longest-prefix-match table, built once per batch of flows.

    Entries are (network, subscriber_id). At equal prefix length an entry added earlier wins,
    so configured prefixes (added first) take precedence over VPN addresses for the same host.
    """

    def __init__(self, entries=()):
        # version -> prefix length -> {network address as int: subscriber id}
        self._by_length = {4: {}, 6: {}}
        self._lengths = {4: [], 6: []}
        self._cache = {}
        for network, subscriber_id in entries:
            self.add(network, subscriber_id)

    @classmethod
    def load(cls):
        return cls(cls.entries())

    @staticmethod
    def entries():
        """[(network, subscriber id)] of the admin prefixes, then the VPN tunnel addresses (two queries)."""
        entries = []
        for cidr, subscriber_id in SubscriberPrefix.objects.values_list("cidr", "subscriber_id"):
            try:
                entries.append((ipaddress.ip_network(cidr, strict=False), subscriber_id))
            except ValueError:
                logger.warning("flowreports: ignoring subscriber prefix %r (not a network)", cidr)
        for address, common_name in vpn_addresses().items():
            try:
                entries.append((ipaddress.ip_network(str(address).strip()), str(common_name)))
            except ValueError:
                logger.warning("flowreports: ignoring VPN address %r of %r", address, common_name)
        return entries

    def add(self, network, subscriber_id):
        network = ipaddress.ip_network(network, strict=False) if isinstance(network, str) else network
        table = self._by_length[network.version].setdefault(network.prefixlen, {})
        table.setdefault(int(network.network_address), subscriber_id)
        self._lengths[network.version] = sorted(self._by_length[network.version], reverse=True)
        self._cache.clear()

    def __len__(self):
        return sum(len(t) for tables in self._by_length.values() for t in tables.values())

    def lookup(self, address):
        """The subscriber id of an address (text), or None."""
        if not address:
            return None
        try:
            return self._cache[address]
        except KeyError:
            pass
        result = self._lookup(address)
        if len(self._cache) < 100_000:
            self._cache[address] = result
        return result

    def _lookup(self, text):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        address = unmapped(address)
        bits = 32 if address.version == 4 else 128
        value = int(address)
        tables = self._by_length[address.version]
        for length in self._lengths[address.version]:
            key = (value >> (bits - length)) << (bits - length) if length else 0
            subscriber_id = tables[length].get(key)
            if subscriber_id is not None:
                return subscriber_id
        return None

    def attribute(self, source_ip, destination_ip):
        """(subscriber_id, direction): source inside -> uplink, destination inside -> downlink, else ("", "")."""
        subscriber_id = self.lookup(source_ip)
        if subscriber_id is not None:
            return subscriber_id, "uplink"
        subscriber_id = self.lookup(destination_ip)
        if subscriber_id is not None:
            return subscriber_id, "downlink"
        return "", ""
