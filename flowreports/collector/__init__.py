"""Flow collector core: NetFlow v5/v9 and IPFIX decoding and a UDP collector, independent of Django."""

from flowreports.collector.decode import FlowDecoder, FlowRecord, MalformedPacket
from flowreports.collector.server import Collector

__all__ = ["Collector", "FlowDecoder", "FlowRecord", "MalformedPacket"]
