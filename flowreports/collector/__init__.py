"""Flow collector core: NetFlow v5/v9, IPFIX and sFlow v5 decoding and a UDP collector, independent of Django."""

from flowreports.collector.datagrams import DatagramDecoder
from flowreports.collector.decode import FlowDecoder, FlowRecord, MalformedPacket
from flowreports.collector.server import Collector
from flowreports.collector.sflow import SFlowDecoder

__all__ = ["Collector", "DatagramDecoder", "FlowDecoder", "FlowRecord", "MalformedPacket", "SFlowDecoder"]
