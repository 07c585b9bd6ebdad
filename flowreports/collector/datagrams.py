"""The decoder a collector socket uses: each datagram goes to the sFlow v5 or the NetFlow/IPFIX decoder."""

from __future__ import annotations

from flowreports.collector.decode import FlowDecoder, FlowRecord
from flowreports.collector.sflow import DATAGRAM_PREFIX, SFlowDecoder


class DatagramDecoder:
    """Tell sFlow v5 from NetFlow v5/v9 and IPFIX by the first four octets, so one socket takes all of them.

    sFlow starts with a 32-bit version (0, 0, 0, 5); NetFlow and IPFIX with a 16-bit one (5, 9 or 10), so their
    first two octets are never both zero.
    """

    def __init__(self, flows: FlowDecoder | None = None, sflow: SFlowDecoder | None = None) -> None:
        self.flows = flows or FlowDecoder()
        self.sflow = sflow or SFlowDecoder()

    def decode(self, packet: bytes, exporter: str, now: float | None = None) -> list[FlowRecord]:
        if packet[:4] == DATAGRAM_PREFIX:
            return self.sflow.decode(packet, exporter, now)
        return self.flows.decode(packet, exporter, now)

    def release(self, now: float | None = None, everything: bool = False) -> list[FlowRecord]:
        """NetFlow/IPFIX flows held for their exporter's sampling options (sFlow samples carry their rate)."""
        return self.flows.release(now, everything)

    def stats(self) -> dict[str, int]:
        """The NetFlow/IPFIX decoder's counters with sFlow's added in, and sFlow's own as sflow_<name>."""
        stats = self.flows.stats()
        sflow = self.sflow.stats()
        for name in ("decoded_packets", "malformed_packets", "flows_decoded"):
            stats[name] += sflow[name]
        stats.update({f"sflow_{name}": value for name, value in sflow.items()})
        return stats
