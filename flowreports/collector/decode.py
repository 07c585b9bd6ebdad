"""NetFlow v5, NetFlow v9 and IPFIX packet decoding into FlowRecord tuples."""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import NamedTuple

from flowreports.collector.frames import parse_frame

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The microseconds (since the Unix epoch) that a datetime can hold: years 1 to 9999.
MIN_MICROS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def micros(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch, exactly."""
    return (moment - _EPOCH) // _MICROSECOND


class FlowRecord(NamedTuple):
    """One unidirectional flow; bytes are layer-3 octets as counted by the exporter.

    start_us and end_us are microseconds since the Unix epoch (UTC): integers, so that the collector's
    writer turns them into rows and rollup keys with integer arithmetic; start and end give them as
    UTC-aware datetimes. observation_domain is the v9 source id, the IPFIX observation domain id, or
    engine_type << 8 | engine_id for v5. Addresses are None when the template carries none. packets and bytes
    are already scaled by sampling_rate (1 in sampling_rate packets was seen; 1 = unsampled).
    """

    exporter: str
    observation_domain: int
    source_ip: str | None
    destination_ip: str | None
    source_port: int
    destination_port: int
    protocol: int
    packets: int
    bytes: int
    start_us: int
    end_us: int
    action: str
    version: int
    sampling_rate: int = 1

    @property
    def start(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.start_us)

    @property
    def end(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.end_us)


class MalformedPacket(ValueError):
    """A packet (or a set inside it) that cannot be decoded."""


# Information element ids (IANA IPFIX registry; NetFlow v9 uses the same numbers for these).
IE_OCTET_DELTA = 1
IE_PACKET_DELTA = 2
IE_PROTOCOL = 4
IE_SOURCE_PORT = 7
IE_SOURCE_IPV4 = 8
IE_DESTINATION_PORT = 11
IE_DESTINATION_IPV4 = 12
IE_FLOW_END_SYSUPTIME = 21
IE_FLOW_START_SYSUPTIME = 22
IE_SOURCE_IPV6 = 27
IE_DESTINATION_IPV6 = 28
IE_OCTET_TOTAL = 85
IE_PACKET_TOTAL = 86
IE_FORWARDING_STATUS = 89
IE_FLOW_START_SECONDS = 150
IE_FLOW_END_SECONDS = 151
IE_FLOW_START_MILLISECONDS = 152
IE_FLOW_END_MILLISECONDS = 153
IE_FLOW_START_MICROSECONDS = 154
IE_FLOW_END_MICROSECONDS = 155
IE_FLOW_START_NANOSECONDS = 156
IE_FLOW_END_NANOSECONDS = 157
IE_FLOW_START_DELTA_MICROSECONDS = 158
IE_FLOW_END_DELTA_MICROSECONDS = 159
IE_SYSTEM_INIT_TIME_MILLISECONDS = 160
IE_SAMPLING_INTERVAL = 34
IE_SAMPLER_ID = 48
IE_SAMPLER_RANDOM_INTERVAL = 50
IE_IP_VERSION = 60
IE_FIREWALL_EVENT = 233
IE_SELECTOR_ID = 302
IE_SAMPLING_PACKET_INTERVAL = 305
IE_SAMPLING_PACKET_SPACE = 306
IE_DATALINK_FRAME_SIZE = 312
IE_DATALINK_FRAME_SECTION = 315
IE_OBSERVATION_TIME_SECONDS = 322
IE_OBSERVATION_TIME_MILLISECONDS = 323
IE_OBSERVATION_TIME_MICROSECONDS = 324
IE_OBSERVATION_TIME_NANOSECONDS = 325
# Cisco NSEL (ASA) NetFlow v9 field NF_F_FW_EVENT: 1 created, 2 deleted, 3 denied, 4 alert, 5 update.
IE_NSEL_FIREWALL_EVENT = 40005
# firewallEvent (IE 233) and NF_F_FW_EVENT value of a flow the firewall denied.
FIREWALL_DENIED = 3
# RFC 5103: reverse information elements are the forward ones under private enterprise number 29305. They are
# kept under the forward number with this bit added.
REVERSE_PEN = 29305
REVERSE = 0x10000
IE_REVERSE_OCTET_DELTA = REVERSE | IE_OCTET_DELTA
IE_REVERSE_PACKET_DELTA = REVERSE | IE_PACKET_DELTA
IE_REVERSE_OCTET_TOTAL = REVERSE | IE_OCTET_TOTAL
IE_REVERSE_PACKET_TOTAL = REVERSE | IE_PACKET_TOTAL
_REVERSIBLE = frozenset({IE_OCTET_DELTA, IE_PACKET_DELTA, IE_OCTET_TOTAL, IE_PACKET_TOTAL})

# Stored counters are 64-bit signed, sampling rates 32-bit signed.
COUNTER_MAX = 2**63 - 1
RATE_MAX = 2**31 - 1

VARIABLE_LENGTH = 65535
ENTERPRISE_BIT = 0x8000
# An IE number that never matches: used for skipped fields (enterprise fields, options scope fields).
_SKIP = -1

_ADDRESS_LENGTHS = {
    IE_SOURCE_IPV4: 4,
    IE_DESTINATION_IPV4: 4,
    IE_SOURCE_IPV6: 16,
    IE_DESTINATION_IPV6: 16,
}
# Fields kept as raw bytes whatever their length.
_BYTES_IES = frozenset({IE_DATALINK_FRAME_SECTION})
_UNSIGNED_IES = frozenset(
    {
        IE_OCTET_DELTA,
        IE_PACKET_DELTA,
        IE_PROTOCOL,
        IE_SOURCE_PORT,
        IE_DESTINATION_PORT,
        IE_FLOW_END_SYSUPTIME,
        IE_FLOW_START_SYSUPTIME,
        IE_OCTET_TOTAL,
        IE_PACKET_TOTAL,
        IE_FORWARDING_STATUS,
        IE_FLOW_START_SECONDS,
        IE_FLOW_END_SECONDS,
        IE_FLOW_START_MILLISECONDS,
        IE_FLOW_END_MILLISECONDS,
        IE_FLOW_START_MICROSECONDS,
        IE_FLOW_END_MICROSECONDS,
        IE_FLOW_START_NANOSECONDS,
        IE_FLOW_END_NANOSECONDS,
        IE_FLOW_START_DELTA_MICROSECONDS,
        IE_FLOW_END_DELTA_MICROSECONDS,
        IE_SYSTEM_INIT_TIME_MILLISECONDS,
        IE_SAMPLING_INTERVAL,
        IE_SAMPLER_ID,
        IE_SAMPLER_RANDOM_INTERVAL,
        IE_IP_VERSION,
        IE_FIREWALL_EVENT,
        IE_SELECTOR_ID,
        IE_SAMPLING_PACKET_INTERVAL,
        IE_SAMPLING_PACKET_SPACE,
        IE_DATALINK_FRAME_SIZE,
        IE_OBSERVATION_TIME_SECONDS,
        IE_OBSERVATION_TIME_MILLISECONDS,
        IE_OBSERVATION_TIME_MICROSECONDS,
        IE_OBSERVATION_TIME_NANOSECONDS,
        IE_NSEL_FIREWALL_EVENT,
        IE_REVERSE_OCTET_DELTA,
        IE_REVERSE_PACKET_DELTA,
        IE_REVERSE_OCTET_TOTAL,
        IE_REVERSE_PACKET_TOTAL,
    }
)
_UNSIGNED_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

# Output slots, in the order the per-template itemgetter returns them.
_SLOT_CANDIDATES = (
    (IE_SOURCE_IPV4, IE_SOURCE_IPV6),
    (IE_DESTINATION_IPV4, IE_DESTINATION_IPV6),
    (IE_SOURCE_PORT,),
    (IE_DESTINATION_PORT,),
    (IE_PROTOCOL,),
    (IE_PACKET_DELTA, IE_PACKET_TOTAL),
    (IE_OCTET_DELTA, IE_OCTET_TOTAL),
    (),  # start time, chosen by time mode
    (),  # end time, chosen by time mode
    (IE_FORWARDING_STATUS,),
    (IE_SYSTEM_INIT_TIME_MILLISECONDS,),
    # The IPv6 addresses of a template that has both families (dual-stack).
    (IE_SOURCE_IPV6,),
    (IE_DESTINATION_IPV6,),
    (IE_IP_VERSION,),
    # A record's own sampling rate.
    (IE_SAMPLING_INTERVAL,),
    (IE_SAMPLER_RANDOM_INTERVAL,),
    (IE_SAMPLING_PACKET_INTERVAL,),
    (IE_SAMPLING_PACKET_SPACE,),
    # The sampler (v9) or selector (IPFIX) whose rate an options record gave.
    (IE_SELECTOR_ID, IE_SAMPLER_ID),
    (IE_DATALINK_FRAME_SECTION,),
    (IE_DATALINK_FRAME_SIZE,),
    (IE_REVERSE_PACKET_DELTA, IE_REVERSE_PACKET_TOTAL),
    (IE_REVERSE_OCTET_DELTA, IE_REVERSE_OCTET_TOTAL),
    (IE_FIREWALL_EVENT, IE_NSEL_FIREWALL_EVENT),
)
_SLOT_START = 7
_SLOT_END = 8
# The slots of a record that needs none of the others (the common case, read by the fast loop).
_PLAIN_SLOTS = 11
_ADDRESS_SLOTS = (0, 1, 11, 12)
_SLOT_FRAME = 19

_TIME_MODES = (
    (IE_FLOW_START_MILLISECONDS, IE_FLOW_END_MILLISECONDS, "milliseconds"),
    (IE_FLOW_START_SECONDS, IE_FLOW_END_SECONDS, "seconds"),
    (IE_FLOW_START_NANOSECONDS, IE_FLOW_END_NANOSECONDS, "ntp"),
    (IE_FLOW_START_MICROSECONDS, IE_FLOW_END_MICROSECONDS, "ntp"),
    (IE_FLOW_START_DELTA_MICROSECONDS, IE_FLOW_END_DELTA_MICROSECONDS, "delta_microseconds"),
    (IE_FLOW_START_SYSUPTIME, IE_FLOW_END_SYSUPTIME, "sysuptime"),
    # Records of single observations (NAT events, sampled packets): one moment, start and end alike.
    (IE_OBSERVATION_TIME_MILLISECONDS, IE_OBSERVATION_TIME_MILLISECONDS, "milliseconds"),
    (IE_OBSERVATION_TIME_SECONDS, IE_OBSERVATION_TIME_SECONDS, "seconds"),
    (IE_OBSERVATION_TIME_MICROSECONDS, IE_OBSERVATION_TIME_MICROSECONDS, "ntp"),
    (IE_OBSERVATION_TIME_NANOSECONDS, IE_OBSERVATION_TIME_NANOSECONDS, "ntp"),
)
_NTP_EPOCH_OFFSET = 2208988800

_V5_HEADER = struct.Struct("!HHIIIIBBH")
_V5_RECORD = struct.Struct("!4s4s8xIIIIHH2xB9x")
_V5_MAX_COUNT = 30
_V9_HEADER = struct.Struct("!HHIIII")
_IPFIX_HEADER = struct.Struct("!HHIII")
_SET_HEADER = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_U16_PAIR = struct.Struct("!HH")
_U16_TRIPLE = struct.Struct("!HHH")
_U32 = struct.Struct("!I")

_inet_ntoa = socket.inet_ntoa
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6
_tuple_new = tuple.__new__


def _ntop6(packed: bytes) -> str:
    return _inet_ntop(_AF_INET6, packed)


def _no_address(_packed: object) -> None:
    return None


def _uptime_delta(sys_uptime: int, switched: int) -> int:
    """Milliseconds between a switched timestamp and the header sysUptime, tolerant of 32-bit wraparound."""
    delta = (sys_uptime - switched) & 0xFFFFFFFF
    return delta - 0x100000000 if delta >= 0x80000000 else delta


class _PacketContext:
    """Header values that data records of one packet need to turn relative times into absolute ones."""

    __slots__ = ("domain", "export_ms", "exporter", "sys_init_ms", "sys_uptime", "version")

    def __init__(self, exporter: str, domain: int, version: int, export_ms: int, sys_uptime: int | None) -> None:
        self.exporter = exporter
        self.domain = domain
        self.version = version
        self.export_ms = export_ms
        self.sys_uptime = sys_uptime
        self.sys_init_ms: int | None = None


class Template:
    """A compiled (options) template: a struct for fixed layouts, a field plan for variable ones."""

    __slots__ = (
        "defaults",
        "destination_converter",
        "dual_stack",
        "extended",
        "field_plan",
        "fields",
        "getter",
        "has_addresses",
        "has_frame",
        "has_frame_size",
        "has_own_rate",
        "has_packets",
        "has_reverse",
        "has_sampler",
        "is_options",
        "min_length",
        "record_struct",
        "source_converter",
        "template_id",
        "time_mode",
    )

    def __init__(self, template_id: int, fields: tuple[tuple[int, int], ...], is_options: bool = False) -> None:
        """fields: (information element id or _SKIP, length) pairs in record order."""
        self.template_id = template_id
        self.fields = fields
        self.is_options = is_options
        kept_ies: list[int] = []
        formats: list[str] = []
        plan: list[tuple[int, int]] = []  # (kind, length): 0 skip, 1 bytes, 2 unsigned int
        fixed = True
        min_length = 0
        for ie, length in fields:
            if length == VARIABLE_LENGTH:
                fixed = False
                if ie in _BYTES_IES and ie not in kept_ies:
                    kept_ies.append(ie)
                    plan.append((1, VARIABLE_LENGTH))
                else:
                    plan.append((0, VARIABLE_LENGTH))
                min_length += 1
                continue
            min_length += length
            if ie in kept_ies:
                # A field that appears twice: the first one counts.
                formats.append(f"{length}x")
                plan.append((0, length))
            elif _ADDRESS_LENGTHS.get(ie) == length or ie in _BYTES_IES:
                kept_ies.append(ie)
                formats.append(f"{length}s")
                plan.append((1, length))
            elif ie in _UNSIGNED_IES and 1 <= length <= 8:
                kept_ies.append(ie)
                code = _UNSIGNED_FORMATS.get(length)
                if code is None:
                    # Reduced-size encodings such as 3 or 6 octets have no struct code.
                    fixed = False
                    formats.append(f"{length}s")
                else:
                    formats.append(code)
                plan.append((2, length))
            else:
                formats.append(f"{length}x")
                plan.append((0, length))
        if min_length == 0:
            raise MalformedPacket(f"template {template_id} has zero record length")
        self.min_length = min_length
        self.record_struct = struct.Struct("!" + "".join(formats)) if fixed else None
        self.field_plan = tuple(plan)

        present = {ie: index for index, ie in reversed(list(enumerate(kept_ies)))}
        start_ie = end_ie = None
        self.time_mode = "export"
        for candidate_start, candidate_end, mode in _TIME_MODES:
            if candidate_start in present or candidate_end in present:
                start_ie = candidate_start if candidate_start in present else candidate_end
                end_ie = candidate_end if candidate_end in present else candidate_start
                self.time_mode = mode
                break
        row_length = len(kept_ies)
        indices = []
        defaults: list[object] = []
        for slot, candidates in enumerate(_SLOT_CANDIDATES):
            if slot == _SLOT_START:
                candidates = (start_ie,)
            elif slot == _SLOT_END:
                candidates = (end_ie,)
            index = next((present[ie] for ie in candidates if ie in present), None)
            if index is None:
                index = row_length + len(defaults)
                defaults.append(None if slot in _ADDRESS_SLOTS or slot == _SLOT_FRAME else 0)
            indices.append(index)
        self.defaults = tuple(defaults)
        self.source_converter = self._converter(present, IE_SOURCE_IPV4, IE_SOURCE_IPV6)
        self.destination_converter = self._converter(present, IE_DESTINATION_IPV4, IE_DESTINATION_IPV6)
        has_ipv4 = IE_SOURCE_IPV4 in present or IE_DESTINATION_IPV4 in present
        has_ipv6 = IE_SOURCE_IPV6 in present or IE_DESTINATION_IPV6 in present
        # Both families in one template: each record's family is read from its own address fields.
        self.dual_stack = has_ipv4 and has_ipv6
        self.has_addresses = has_ipv4 or has_ipv6
        self.has_packets = IE_PACKET_DELTA in present or IE_PACKET_TOTAL in present
        self.has_own_rate = any(
            ie in present for ie in (IE_SAMPLING_INTERVAL, IE_SAMPLER_RANDOM_INTERVAL, IE_SAMPLING_PACKET_INTERVAL)
        )
        self.has_sampler = IE_SELECTOR_ID in present or IE_SAMPLER_ID in present
        self.has_frame = IE_DATALINK_FRAME_SECTION in present
        self.has_frame_size = IE_DATALINK_FRAME_SIZE in present
        self.has_reverse = any(ie in present for ie in (IE_REVERSE_PACKET_DELTA, IE_REVERSE_PACKET_TOTAL,
                                                        IE_REVERSE_OCTET_DELTA, IE_REVERSE_OCTET_TOTAL))
        # Records that need more than the plain fields: read through the general loop, with every slot.
        self.extended = (is_options or self.dual_stack or self.has_own_rate or self.has_sampler or self.has_frame
                         or self.has_reverse or IE_FIREWALL_EVENT in present or IE_NSEL_FIREWALL_EVENT in present)
        self.getter = itemgetter(*indices) if self.extended else itemgetter(*indices[:_PLAIN_SLOTS])

    @staticmethod
    def _converter(present: dict[int, int], ipv4_ie: int, ipv6_ie: int):
        if ipv4_ie in present:
            return _inet_ntoa
        if ipv6_ie in present:
            return _ntop6
        return _no_address

    def rows(self, body: bytes):
        """Yield one tuple of kept values per record in a data set body; padding shorter than a record is ignored."""
        record_struct = self.record_struct
        if record_struct is not None:
            size = record_struct.size
            usable = len(body) - len(body) % size
            return record_struct.iter_unpack(body[:usable] if usable != len(body) else body)
        return self._variable_rows(body)

    def _variable_rows(self, body: bytes):
        plan = self.field_plan
        min_length = self.min_length
        end = len(body)
        offset = 0
        from_bytes = int.from_bytes
        while end - offset >= min_length:
            row = []
            for kind, length in plan:
                if length == VARIABLE_LENGTH:
                    if offset >= end:
                        raise MalformedPacket("variable-length field past end of set")
                    length = body[offset]
                    offset += 1
                    if length == 255:
                        if offset + 2 > end:
                            raise MalformedPacket("variable-length field past end of set")
                        length = (body[offset] << 8) | body[offset + 1]
                        offset += 2
                if offset + length > end:
                    raise MalformedPacket("field past end of set")
                if kind == 1:
                    row.append(body[offset : offset + length])
                elif kind == 2:
                    row.append(from_bytes(body[offset : offset + length], "big"))
                offset += length
            yield tuple(row)


class DecoderCounters:
    """What every decoder counts: datagrams, malformed ones (and why: errors) and the flows decoded."""

    def __init__(self) -> None:
        self.packets = 0
        self.malformed_packets = 0
        self.flows_decoded = 0
        self.errors: dict[str, int] = {}

    def stats(self) -> dict[str, int]:
        return {
            "decoded_packets": self.packets,
            "malformed_packets": self.malformed_packets,
            "flows_decoded": self.flows_decoded,
        }

    def count_malformed(self, error: Exception) -> None:
        """A datagram rejected by error: a MalformedPacket's reason, or a bad field struct or int conversion met."""
        self.malformed_packets += 1
        reason = str(error) if isinstance(error, MalformedPacket) else f"{type(error).__name__}: {error}"
        self.errors[reason] = self.errors.get(reason, 0) + 1


class FlowDecoder(DecoderCounters):
    """Stateful decoder: keeps templates per exporter and observation domain, holds data that precedes its template.

    Sampling: a flow's rate comes from its record's own fields (samplingInterval, samplerRandomInterval,
    samplingPacketInterval/Space), else from the rate an options record gave its sampler or selector ID, else
    from the exporter's own sampling options record (samplingInterval, or samplingPacketInterval/Space without
    a selector ID), else from default_rates, the rates an admin set per exporter address and observation
    domain (key (address, None) for all of an exporter's domains), else 1. With a sampling_wait, flows of an
    exporter seen for less than sampling_wait seconds that have no rate yet are held (they may precede the
    exporter's sampling options, as data may precede its template); release() hands them out once the options
    arrive or the wait is over, at the default rate then (counted in flows_default_rate).
    """

    def __init__(
        self,
        hold_seconds: float = 30.0,
        max_held_per_template: int = 64,
        max_held_total: int = 4096,
        max_templates: int = 65536,
        sampling_wait: float = 0.0,
        max_held_flows: int = 100_000,
        default_rates: dict[tuple[str, int | None], int] | None = None,
    ) -> None:
        super().__init__()
        self.sampling_wait = sampling_wait
        self.max_held_flows = max_held_flows
        self.default_rates: dict[tuple[str, int | None], int] = dict(default_rates or {})
        # (version, exporter, domain) -> rate of the exporter's own sampling options record
        self.exporter_rates: dict[tuple[int, str, int], int] = {}
        # ((version, exporter, domain), sampler or selector id) -> rate
        self.sampler_rates: dict[tuple[tuple[int, str, int], int], int] = {}
        # (version, exporter, domain) -> when its first data arrived (monotonic seconds)
        self._first_data: dict[tuple[int, str, int], float] = {}
        # (version, exporter, domain) -> list of (unscaled FlowRecord, sampler id or None) awaiting a rate
        self._held_flows: dict[tuple[int, str, int], list] = {}
        self._held_flow_count = 0
        # Records released from the template hold during the current packet (kept even if the packet is bad).
        self._released: list[FlowRecord] = []
        self.flows_held_for_sampling = 0
        self.flows_default_rate = 0
        self.flows_timed_by_export = 0
        self.records_without_flow = 0
        self.reverse_flows = 0
        # Held flows whose counters, once scaled, exceed what is stored: dropped.
        self.flows_out_of_range = 0
        self.hold_seconds = hold_seconds
        self.max_held_per_template = max_held_per_template
        self.max_held_total = max_held_total
        self.max_templates = max_templates
        # (version, exporter, domain, template id) -> Template
        self.templates: dict[tuple[int, str, int, int], Template] = {}
        self._template_sources: dict[tuple[int, str, int, int], bytes] = {}
        # (version, exporter, domain) -> systemInitTimeMilliseconds from options data
        self.system_init_ms: dict[tuple[int, str, int], int] = {}
        # (version, exporter, domain, template id) -> deque of (arrival, context, set body)
        self._held: dict[tuple[int, str, int, int], deque] = {}
        self._held_count = 0
        self._last_expiry = 0.0
        self.options_records = 0
        self.sets_held = 0
        self.sets_dropped_no_template = 0
        # Held data sets that turned out malformed once their template arrived.
        self.sets_dropped_malformed = 0

    def stats(self) -> dict[str, int]:
        return {
            **super().stats(),
            "options_records": self.options_records,
            "sets_held": self.sets_held,
            "sets_pending": self._held_count,
            "sets_dropped_no_template": self.sets_dropped_no_template,
            "sets_dropped_malformed": self.sets_dropped_malformed,
            "templates": len(self.templates),
            "flows_held_for_sampling": self.flows_held_for_sampling,
            "flows_pending_sampling": self._held_flow_count,
            "flows_default_rate": self.flows_default_rate,
            "flows_timed_by_export": self.flows_timed_by_export,
            "records_without_flow": self.records_without_flow,
            "reverse_flows": self.reverse_flows,
            "flows_out_of_range": self.flows_out_of_range,
        }

    def decode(self, packet: bytes, exporter: str, now: float | None = None) -> list[FlowRecord]:
        """Decode one export packet; malformed input is counted (see malformed_packets/errors), never raised.

        Nothing of a malformed packet is returned (no record of it is half decoded or stored); templates and
        options it carried before the bad part are kept. Held data sets whose template arrives in this packet
        are decoded and returned too, and so are held flows whose sampling rate it gave.
        """
        if now is None:
            now = time.monotonic()
        self.packets += 1
        out: list[FlowRecord] = []
        self._released = released = []
        held_before = {key: len(flows) for key, flows in self._held_flows.items()}
        try:
            self.decode_into(packet, exporter, now, out)
        except (MalformedPacket, struct.error, ValueError, OverflowError, OSError) as error:
            # struct, address and int conversions reject a bad field like any other malformed part.
            self.count_malformed(error)
            out.clear()
            self._unhold_since(held_before)
        out.extend(released)
        self._released = []
        if self._held_count and now - self._last_expiry >= 1.0:
            self.expire(now)
        self.flows_decoded += len(out)
        return out

    def release(self, now: float | None = None, everything: bool = False) -> list[FlowRecord]:
        """Flows held for their exporter's sampling options whose wait is over (all with everything=True).

        Each gets the rate its sampler or exporter has by now, else the default rate (counted in
        flows_default_rate). Call it now and then (the collector does at every flush) and when stopping.
        """
        if not self._held_flows:
            return []
        if now is None:
            now = time.monotonic()
        out: list[FlowRecord] = []
        for key in list(self._held_flows):
            if everything or now - self._first_data.get(key, now) >= self.sampling_wait:
                self._release_domain(key, out)
        self.flows_decoded += len(out)
        return out

    def _release_domain(self, key: tuple[int, str, int], out: list[FlowRecord]) -> None:
        flows = self._held_flows.pop(key, None)
        if not flows:
            return
        self._held_flow_count -= len(flows)
        for record, sampler in flows:
            rate = self._flow_rate(key, 0, sampler, settled=False)
            if not rate:
                rate = self._flow_rate(key, 0, sampler, settled=True)
                self.flows_default_rate += 1
            if max(record.packets, record.bytes) * rate > COUNTER_MAX:
                self.flows_out_of_range += 1
                continue
            out.append(_scaled(record, rate))

    def _unhold_since(self, held_before: dict) -> None:
        """Forget flows held for sampling by a packet that turned out malformed."""
        for key in list(self._held_flows):
            flows = self._held_flows[key]
            keep = held_before.get(key, 0)
            if len(flows) > keep:
                dropped = len(flows) - keep
                del flows[keep:]
                self._held_flow_count -= dropped
                self.flows_held_for_sampling -= dropped
            if not flows:
                del self._held_flows[key]

    def default_rate(self, exporter: str, domain: int) -> int:
        """The rate an admin set for this exporter and observation domain (or all its domains); else 1."""
        rates = self.default_rates
        if not rates:
            return 1
        return rates.get((exporter, domain)) or rates.get((exporter, None)) or 1

    def _flow_rate(self, key: tuple[int, str, int], own_rate: int, sampler: int | None, settled: bool) -> int:
        """A flow's sampling rate, the one order every path follows: the record's own rate (own_rate, 0 if it
        carries none), else the rate options records gave its sampler (when it names one), else its exporter's
        own sampling options rate, else, once settled (the exporter's wait for sampling options is over), the
        admin's default rate or 1. 0 while not settled and no options gave a rate: the flow waits."""
        if own_rate:
            return own_rate
        if sampler is not None:
            rate = self.sampler_rates.get((key, sampler))
            if rate:
                return rate
        rate = self.exporter_rates.get(key)
        if rate:
            return rate
        return self.default_rate(key[1], key[2]) if settled else 0

    def decode_into(self, packet: bytes, exporter: str, now: float, out: list[FlowRecord]) -> None:
        """Decode one packet appending to out; raises MalformedPacket."""
        if len(packet) < 2:
            raise MalformedPacket("packet shorter than version field")
        version = (packet[0] << 8) | packet[1]
        if version == 5:
            self._decode_v5(packet, exporter, out)
        elif version == 9:
            self._decode_v9(packet, exporter, now, out)
        elif version == 10:
            self._decode_ipfix(packet, exporter, now, out)
        else:
            raise MalformedPacket(f"unknown version {version}")

    def expire(self, now: float | None = None) -> int:
        """Drop held data sets older than hold_seconds; returns how many were dropped."""
        if now is None:
            now = time.monotonic()
        self._last_expiry = now
        cutoff = now - self.hold_seconds
        dropped = 0
        for key in list(self._held):
            queue = self._held[key]
            while queue and queue[0][0] < cutoff:
                queue.popleft()
                dropped += 1
            if not queue:
                del self._held[key]
        self._held_count -= dropped
        self.sets_dropped_no_template += dropped
        return dropped

    # NetFlow v5

    def _decode_v5(self, packet: bytes, exporter: str, out: list[FlowRecord]) -> None:
        if len(packet) < _V5_HEADER.size:
            raise MalformedPacket("v5 header truncated")
        _, count, sys_uptime, unix_secs, unix_nsecs, _, engine_type, engine_id, sampling = _V5_HEADER.unpack_from(
            packet
        )
        if count > _V5_MAX_COUNT or len(packet) < _V5_HEADER.size + count * _V5_RECORD.size:
            raise MalformedPacket("v5 record count does not match length")
        export_ms = unix_secs * 1000 + unix_nsecs // 1_000_000
        domain = (engine_type << 8) | engine_id
        end = _V5_HEADER.size + count * _V5_RECORD.size
        # The header's last field: 2 bits of sampling mode, 14 bits of sampling interval (0 or 1: unsampled).
        rate = sampling & 0x3FFF
        if rate <= 1:
            rate = self.default_rate(exporter, domain)
        append = out.append
        for source, destination, packets, octets, first, last, sport, dport, protocol in _V5_RECORD.iter_unpack(
            packet[_V5_HEADER.size : end]
        ):
            start_ms = export_ms - _uptime_delta(sys_uptime, first)
            end_ms = export_ms - _uptime_delta(sys_uptime, last)
            append(
                _tuple_new(
                    FlowRecord,
                    (
                        exporter,
                        domain,
                        _inet_ntoa(source),
                        _inet_ntoa(destination),
                        sport,
                        dport,
                        protocol,
                        packets * rate,
                        octets * rate,
                        start_ms * 1000,
                        end_ms * 1000,
                        "allow",
                        5,
                        rate,
                    ),
                )
            )

    # NetFlow v9

    def _decode_v9(self, packet: bytes, exporter: str, now: float, out: list[FlowRecord]) -> None:
        if len(packet) < _V9_HEADER.size:
            raise MalformedPacket("v9 header truncated")
        _, _, sys_uptime, unix_secs, _, source_id = _V9_HEADER.unpack_from(packet)
        context = _PacketContext(exporter, source_id, 9, unix_secs * 1000, sys_uptime)
        self._decode_sets(packet, _V9_HEADER.size, len(packet), context, now, out)

    # IPFIX

    def _decode_ipfix(self, packet: bytes, exporter: str, now: float, out: list[FlowRecord]) -> None:
        if len(packet) < _IPFIX_HEADER.size:
            raise MalformedPacket("ipfix header truncated")
        _, length, export_time, _, domain = _IPFIX_HEADER.unpack_from(packet)
        if length < _IPFIX_HEADER.size or length > len(packet):
            raise MalformedPacket("ipfix message length does not match packet")
        context = _PacketContext(exporter, domain, 10, export_time * 1000, None)
        self._decode_sets(packet, _IPFIX_HEADER.size, length, context, now, out)

    def _decode_sets(
        self, packet: bytes, offset: int, end: int, context: _PacketContext, now: float, out: list[FlowRecord]
    ) -> None:
        version = context.version
        template_set, options_set = (0, 1) if version == 9 else (2, 3)
        while end - offset >= 4:
            set_id, set_length = _SET_HEADER.unpack_from(packet, offset)
            if set_length < 4:
                raise MalformedPacket("set length shorter than set header")
            if offset + set_length > end:
                raise MalformedPacket("set extends past end of packet")
            body = packet[offset + 4 : offset + set_length]
            offset += set_length
            if set_id >= 256:
                key = (version, context.exporter, context.domain, set_id)
                template = self.templates.get(key)
                if template is None:
                    self._hold(key, context, body, now)
                else:
                    self._decode_data(template, body, context, now, out)
            elif set_id == template_set:
                self._read_templates(body, context, False, now, out)
            elif set_id == options_set:
                self._read_templates(body, context, True, now, out)
            # Other set ids below 256 are reserved: skipped by length.

    def _read_templates(
        self, body: bytes, context: _PacketContext, is_options: bool, now: float, out: list[FlowRecord]
    ) -> None:
        version = context.version
        ipfix = version == 10
        offset = 0
        end = len(body)
        while end - offset >= 4:
            record_start = offset
            template_id, field_count = _U16_PAIR.unpack_from(body, offset)
            if template_id == 0 and not any(body[offset:]):
                break  # zero padding to a 4-byte boundary
            offset += 4
            if ipfix and field_count == 0:
                self._withdraw(context, template_id, is_options)
                continue
            fields: list[tuple[int, int]] = []
            if version == 9 and is_options:
                # v9 options template: "field_count" is the scope length in bytes, then the option length in bytes.
                scope_length = field_count
                if offset + 2 > end:
                    raise MalformedPacket("v9 options template truncated")
                (option_length,) = _U16.unpack_from(body, offset)
                offset += 2
                if scope_length % 4 or option_length % 4 or offset + scope_length + option_length > end:
                    raise MalformedPacket("v9 options template lengths invalid")
                for index in range(0, scope_length + option_length, 4):
                    ie, length = _U16_PAIR.unpack_from(body, offset + index)
                    # Scope field types are a separate numbering (system, interface...), never flow fields.
                    fields.append((_SKIP if index < scope_length else ie, length))
                offset += scope_length + option_length
            else:
                scope_count = 0
                if is_options:
                    if offset + 2 > end:
                        raise MalformedPacket("options template truncated")
                    (scope_count,) = _U16.unpack_from(body, offset)
                    offset += 2
                    if scope_count == 0 or scope_count > field_count:
                        raise MalformedPacket("options template scope count invalid")
                if field_count == 0:
                    raise MalformedPacket("template with no fields")
                for index in range(field_count):
                    if offset + 4 > end:
                        raise MalformedPacket("template field list truncated")
                    ie, length = _U16_PAIR.unpack_from(body, offset)
                    offset += 4
                    if ipfix and ie & ENTERPRISE_BIT:
                        if offset + 4 > end:
                            raise MalformedPacket("template enterprise number truncated")
                        (enterprise,) = _U32.unpack_from(body, offset)
                        offset += 4
                        ie &= ~ENTERPRISE_BIT
                        ie = REVERSE | ie if enterprise == REVERSE_PEN and ie in _REVERSIBLE else _SKIP
                    elif version == 9 and length == VARIABLE_LENGTH:
                        raise MalformedPacket("variable-length field in v9 template")
                    # IPFIX scope fields are ordinary information elements (a selectorId names the sampler whose
                    # rate the record gives); v9 numbers its scope fields apart (system, interface...).
                    if index < scope_count and not ipfix:
                        ie = _SKIP
                    fields.append((ie, length))
            if template_id < 256:
                raise MalformedPacket(f"template id {template_id} below 256")
            self._learn(context, template_id, tuple(fields), is_options, body[record_start:offset], now, out)

    def _learn(
        self,
        context: _PacketContext,
        template_id: int,
        fields: tuple[tuple[int, int], ...],
        is_options: bool,
        source: bytes,
        now: float,
        out: list[FlowRecord],
    ) -> None:
        key = (context.version, context.exporter, context.domain, template_id)
        if self._template_sources.get(key) != source:
            if key not in self.templates and len(self.templates) >= self.max_templates:
                raise MalformedPacket("template table full")
            self.templates[key] = Template(template_id, fields, is_options)
            self._template_sources[key] = source
        held = self._held.pop(key, None)
        if held:
            self._held_count -= len(held)
            template = self.templates[key]
            cutoff = now - self.hold_seconds
            for arrival, held_context, body in held:
                if arrival < cutoff:
                    self.sets_dropped_no_template += 1
                else:
                    # Decoded from packets already received: kept even if the rest of this packet is bad.
                    try:
                        self._decode_data(template, body, held_context, now, self._released)
                    except (MalformedPacket, struct.error, ValueError, OverflowError, OSError):
                        self.sets_dropped_malformed += 1

    def _withdraw(self, context: _PacketContext, template_id: int, is_options: bool) -> None:
        version, exporter, domain = context.version, context.exporter, context.domain
        if template_id in (2, 3):
            # "All templates" withdrawal (RFC 7011 8.1): template id equal to the set id.
            for key in [k for k in self.templates if k[:3] == (version, exporter, domain)]:
                if self.templates[key].is_options == is_options:
                    del self.templates[key]
                    self._template_sources.pop(key, None)
            return
        key = (version, exporter, domain, template_id)
        self.templates.pop(key, None)
        self._template_sources.pop(key, None)

    def _hold(self, key: tuple[int, str, int, int], context: _PacketContext, body: bytes, now: float) -> None:
        queue = self._held.get(key)
        if queue is None:
            if self._held_count >= self.max_held_total:
                self.sets_dropped_no_template += 1
                return
            queue = self._held[key] = deque()
        elif len(queue) >= self.max_held_per_template:
            queue.popleft()
            self._held_count -= 1
            self.sets_dropped_no_template += 1
        queue.append((now, context, body))
        self._held_count += 1
        self.sets_held += 1

    def _decode_data(
        self, template: Template, body: bytes, context: _PacketContext, now: float, out: list[FlowRecord]
    ) -> None:
        """Decode one data set; its records reach out only once the whole set has decoded."""
        if template.is_options:
            self._read_options_data(template, body, context, now)
            return
        domain_key = (context.version, context.exporter, context.domain)
        if domain_key not in self._first_data:
            self._first_data[domain_key] = now
        context.sys_init_ms = self.system_init_ms.get(domain_key)
        exporter = context.exporter
        domain = context.domain
        version = context.version
        getter = template.getter
        defaults = template.defaults
        source_converter = template.source_converter
        destination_converter = template.destination_converter
        time_mode = template.time_mode
        times = _TIME_FUNCTIONS[time_mode]
        extended = template.extended
        has_sampler = template.has_sampler
        # The rate of the set's records that carry no rate of their own and name no sampler: the exporter's, or
        # once its wait for sampling options is over, the default (0 while they wait).
        settled = now - self._first_data[domain_key] >= self.sampling_wait
        set_rate = self._flow_rate(domain_key, 0, None, settled)
        decoded: list[FlowRecord] = []
        append = decoded.append
        if set_rate and not extended:
            for row in template.rows(body):
                source, destination, sport, dport, protocol, packets, octets, first, last, status, sys_init = getter(
                    row + defaults
                )
                start, end = times(first, last, sys_init, context)
                if not (MIN_MICROS <= start <= MAX_MICROS and MIN_MICROS <= end <= MAX_MICROS):
                    raise MalformedPacket("flow time out of range")
                packets *= set_rate
                octets *= set_rate
                if packets > COUNTER_MAX or octets > COUNTER_MAX:
                    raise MalformedPacket("counter out of range")
                append(
                    _tuple_new(
                        FlowRecord,
                        (
                            exporter,
                            domain,
                            source_converter(source),
                            destination_converter(destination),
                            sport,
                            dport,
                            protocol,
                            packets,
                            octets,
                            start,
                            end,
                            "drop" if (status & 0xC0) == 0x80 else "allow",
                            version,
                            set_rate,
                        ),
                    )
                )
            if time_mode == "export":
                self.flows_timed_by_export += len(decoded)
            out.extend(decoded)
            return
        unrated: list[tuple[FlowRecord, int | None]] = []
        without_flow = reverses = 0
        for row in template.rows(body):
            values = getter(row + defaults)
            source, destination, sport, dport, protocol, packets, octets, first, last, status, sys_init = values[
                :_PLAIN_SLOTS
            ]
            start, end = times(first, last, sys_init, context)
            if not (MIN_MICROS <= start <= MAX_MICROS and MIN_MICROS <= end <= MAX_MICROS):
                raise MalformedPacket("flow time out of range")
            action = "drop" if (status & 0xC0) == 0x80 else "allow"
            rate = set_rate
            sampler = None
            reverse_packets = reverse_octets = 0
            if not extended:
                source = source_converter(source)
                destination = destination_converter(destination)
            else:
                (source6, destination6, ip_version, interval, random_interval, packet_interval, packet_space,
                 sampler_id, frame, frame_size, reverse_packets, reverse_octets, firewall_event) = values[11:]
                if firewall_event == FIREWALL_DENIED:
                    action = "drop"
                if template.dual_stack and (
                    ip_version == 6
                    or (ip_version != 4 and not any(source or b"") and not any(destination or b"")
                        and (any(source6 or b"") or any(destination6 or b"")))
                ):
                    source = None if source6 is None else _ntop6(source6)
                    destination = None if destination6 is None else _ntop6(destination6)
                else:
                    source = source_converter(source)
                    destination = destination_converter(destination)
                if frame is not None:
                    header = parse_frame(frame)
                    if header is None:
                        without_flow += 1
                        continue
                    (frame_source, frame_destination, frame_sport, frame_dport, frame_protocol, ip_length,
                     link_length) = header
                    if source is None and destination is None:
                        source, destination = frame_source, frame_destination
                        sport, dport, protocol = frame_sport, frame_dport, frame_protocol
                    if not template.has_packets:
                        packets = 1
                    if not octets:
                        # Layer-3 octets like every flow's: the frame's size less its link-layer header.
                        octets = frame_size - link_length if frame_size > link_length else ip_length
                own_rate = interval or random_interval or (
                    (packet_interval + packet_space + packet_interval // 2) // packet_interval if packet_interval
                    else 0
                )
                if own_rate > RATE_MAX:
                    raise MalformedPacket("sampling rate out of range")
                if own_rate or has_sampler:
                    if has_sampler:
                        sampler = sampler_id
                    rate = self._flow_rate(domain_key, own_rate, sampler, settled)
            record = _tuple_new(
                FlowRecord,
                (exporter, domain, source, destination, sport, dport, protocol, packets, octets, start, end, action,
                 version, 1),
            )
            reverse = None
            if reverse_packets or reverse_octets:
                reverses += 1
                # RFC 5103 biflow: the reverse direction is a flow of its own, from the destination to the source.
                reverse = _tuple_new(
                    FlowRecord,
                    (exporter, domain, destination, source, dport, sport, protocol, reverse_packets, reverse_octets,
                     start, end, action, version, 1),
                )
            if max(packets, octets, reverse_packets, reverse_octets) * (rate or 1) > COUNTER_MAX:
                raise MalformedPacket("counter out of range")
            if not rate:
                unrated.append((record, sampler))
                if reverse is not None:
                    unrated.append((reverse, sampler))
                continue
            append(_scaled(record, rate) if rate != 1 else record)
            if reverse is not None:
                append(_scaled(reverse, rate) if rate != 1 else reverse)
        # The whole set decoded: count and hand out its flows.
        self.records_without_flow += without_flow
        timed_by_export = time_mode == "export"
        if decoded:
            if timed_by_export:
                self.flows_timed_by_export += len(decoded)
            out.extend(decoded)
        self.reverse_flows += reverses
        if unrated:
            if timed_by_export:
                self.flows_timed_by_export += len(unrated)
            self._hold_unrated(domain_key, unrated, now, out)

    def _hold_unrated(
        self, key: tuple[int, str, int], flows: list[tuple[FlowRecord, int | None]], now: float, out: list[FlowRecord]
    ) -> None:
        """Flows without a rate: held while their exporter is new (its sampling options may follow); when too many
        wait already, at the rate they have by now (the default, as no options gave one)."""
        waiting = now - self._first_data[key] < self.sampling_wait
        if waiting and self._held_flow_count + len(flows) <= self.max_held_flows:
            self._held_flows.setdefault(key, []).extend(flows)
            self._held_flow_count += len(flows)
            self.flows_held_for_sampling += len(flows)
            return
        if key in self._held_flows:
            self._release_domain(key, self._released)
        for record, sampler in flows:
            rate = self._flow_rate(key, 0, sampler, settled=True)
            if max(record.packets, record.bytes) * rate > COUNTER_MAX:
                self.flows_out_of_range += 1
                continue
            out.append(_scaled(record, rate) if rate != 1 else record)
        if waiting:
            # Not held because too many flows wait already: they take the default rate at once (and count).
            self.flows_default_rate += len(flows)

    def _read_options_data(self, template: Template, body: bytes, context: _PacketContext, now: float) -> None:
        """Options records: systemInitTimeMilliseconds, and sampling rates of the exporter or of its samplers."""
        getter = template.getter
        defaults = template.defaults
        key = (context.version, context.exporter, context.domain)
        learned = False
        rows = [getter(row + defaults) for row in template.rows(body)]
        for values in rows:
            self.options_records += 1
            sys_init = values[10]
            if sys_init:
                self.system_init_ms[key] = sys_init
            interval, random_interval, packet_interval, packet_space, sampler_id = values[14:19]
            packet_rate = (
                (packet_interval + packet_space + packet_interval // 2) // packet_interval if packet_interval else 0
            )
            if max(interval, random_interval, packet_rate) > RATE_MAX:
                raise MalformedPacket("sampling rate out of range")
            if template.has_sampler:
                # A sampler's (v9 samplerRandomInterval) or selector's (IPFIX packet interval and space) rate.
                rate = random_interval or packet_rate
                if rate:
                    self.sampler_rates[(key, sampler_id)] = rate
                    learned = True
                # v9 samplingInterval in the same record is the exporter's own sampling.
                if interval:
                    self.exporter_rates[key] = interval
                    learned = True
            else:
                rate = interval or random_interval or packet_rate
                if rate:
                    self.exporter_rates[key] = rate
                    learned = True
        if learned and key in self._held_flows:
            self._release_domain(key, self._released)


def _scaled(record: FlowRecord, rate: int) -> FlowRecord:
    """record (unscaled) with packets and bytes multiplied by the sampling rate, and the rate."""
    values = list(record)
    values[7] *= rate
    values[8] *= rate
    values[13] = rate
    return _tuple_new(FlowRecord, values)


def _times_export(_first: int, _last: int, _sys_init: int, context: _PacketContext) -> tuple[int, int]:
    moment = context.export_ms * 1000
    return moment, moment


def _times_seconds(first: int, last: int, _sys_init: int, _context: _PacketContext) -> tuple[int, int]:
    return first * 1_000_000, last * 1_000_000


def _times_milliseconds(first: int, last: int, _sys_init: int, _context: _PacketContext) -> tuple[int, int]:
    return first * 1000, last * 1000


def _ntp_micros(value: int) -> int:
    """An NTP timestamp (seconds since 1900 and a 32-bit fraction) as microseconds since 1970, rounded."""
    return ((value >> 32) - _NTP_EPOCH_OFFSET) * 1_000_000 + (((value & 0xFFFFFFFF) * 1_000_000 + (1 << 31)) >> 32)


def _times_ntp(first: int, last: int, _sys_init: int, _context: _PacketContext) -> tuple[int, int]:
    return _ntp_micros(first), _ntp_micros(last)


def _times_delta_microseconds(first: int, last: int, _sys_init: int, context: _PacketContext) -> tuple[int, int]:
    export_us = context.export_ms * 1000
    return export_us - first, export_us - last


def _times_sysuptime(first: int, last: int, sys_init: int, context: _PacketContext) -> tuple[int, int]:
    if context.sys_uptime is not None:
        export_ms = context.export_ms
        sys_uptime = context.sys_uptime
        start_ms = export_ms - _uptime_delta(sys_uptime, first)
        end_ms = export_ms - _uptime_delta(sys_uptime, last)
    else:
        init_ms = sys_init or context.sys_init_ms
        if not init_ms:
            # Without systemInitTimeMilliseconds the uptime offsets cannot be anchored; use the export time.
            return _times_export(first, last, sys_init, context)
        start_ms = init_ms + first
        end_ms = init_ms + last
    return start_ms * 1000, end_ms * 1000


_TIME_FUNCTIONS = {
    "export": _times_export,
    "seconds": _times_seconds,
    "milliseconds": _times_milliseconds,
    "ntp": _times_ntp,
    "delta_microseconds": _times_delta_microseconds,
    "sysuptime": _times_sysuptime,
}
