"""Parse OpenVPN server status output (status-version 1, 2 and 3) into immutable snapshots."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from vpnmonitor.addresses import unmapped

__all__ = [
    "ClientRecord",
    "IncompleteStatus",
    "RouteRecord",
    "StatusParseError",
    "StatusSnapshot",
    "detect_version",
    "merge_duplicate_clients",
    "parse_real_address",
    "parse_status",
    "parse_status_time",
]


class StatusParseError(ValueError):
    """The text is not OpenVPN status output, or is malformed."""


class IncompleteStatus(StatusParseError):
    """The status output is cut short or torn (still being written); skip it and read again later."""


@dataclass(frozen=True)
class ClientRecord:
    """One connected client session as reported by the server.

    Byte counters are seen from the server: ``bytes_received`` is what the server received from the
    client (the client's upload), ``bytes_sent`` is what the server sent to the client (its download).
    Both count encrypted tunnel (link) bytes of this session, including OpenVPN's own overhead.
    """

    common_name: str
    real_address: str
    real_ip: str | None
    real_port: int | None
    protocol: str | None
    virtual_address: str | None
    virtual_ipv6: str | None
    bytes_received: int
    bytes_sent: int
    connected_since: datetime
    username: str | None
    client_id: int | None
    peer_id: int | None
    cipher: str | None

    @property
    def session_key(self) -> tuple:
        """Identity of this session across snapshots of the same server."""
        if self.client_id is not None:
            return ("id", self.client_id, self.connected_since)
        # Status version 1 has no Client ID; the source address tells same-CN sessions apart.
        return ("cn", self.common_name, self.real_address, self.connected_since)


@dataclass(frozen=True)
class RouteRecord:
    """One ROUTING_TABLE entry: a virtual address (host, iroute network or MAC) owned by a client."""

    virtual_address: str
    common_name: str
    real_address: str
    last_ref: datetime | None


@dataclass(frozen=True)
class StatusSnapshot:
    """A complete, consistent status report of one OpenVPN server at one moment."""

    time: datetime
    title: str | None
    version: int
    clients: list[ClientRecord] = field(default_factory=list)
    routes: list[RouteRecord] = field(default_factory=list)
    global_stats: dict[str, int | str] = field(default_factory=dict)


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_ISO_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")
_CTIME = re.compile(r"^[A-Z][a-z]{2}\s+([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})$")
_PROTOCOL_PREFIX = re.compile(r"^(udp|tcp)[46]?(?:-server|-client)?:", re.IGNORECASE)
_RECORD_TYPES = ("TITLE", "TIME", "HEADER", "CLIENT_LIST", "ROUTING_TABLE", "GLOBAL_STATS", "END")
_V1_CLIENT_MARKER = "OpenVPN CLIENT LIST"
_UNDEF = "UNDEF"
_INTEGER = re.compile(r"^-?[0-9]+$")

# Column titles written by OpenVPN 2.3-2.7, mapped to ClientRecord fields.
_CLIENT_COLUMNS = {
    "Common Name": "common_name",
    "Real Address": "real_address",
    "Virtual Address": "virtual_address",
    "Virtual IPv6 Address": "virtual_ipv6",
    "Bytes Received": "bytes_received",
    "Bytes Sent": "bytes_sent",
    "Connected Since": "connected_since",
    "Connected Since (time_t)": "connected_since_time_t",
    "Username": "username",
    "Client ID": "client_id",
    "Peer ID": "peer_id",
    "Data Channel Cipher": "cipher",
}
_ROUTE_COLUMNS = {
    "Virtual Address": "virtual_address",
    "Common Name": "common_name",
    "Real Address": "real_address",
    "Last Ref": "last_ref",
    "Last Ref (time_t)": "last_ref_time_t",
}
_REQUIRED_CLIENT_COLUMNS = ("common_name", "real_address", "bytes_received", "bytes_sent")
_REQUIRED_ROUTE_COLUMNS = ("virtual_address", "common_name", "real_address")


def parse_status_time(text: str, time_t: str | None = None, tz: tzinfo | None = None) -> datetime:
    """Return an aware UTC datetime; ``time_t`` wins when present, text times are read in ``tz`` (default UTC)."""
    if time_t:
        try:
            return datetime.fromtimestamp(int(time_t), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise StatusParseError(f"invalid time_t value {time_t!r}") from exc
    text = text.strip()
    try:
        naive = _parse_text_time(text)
    except ValueError as exc:
        raise StatusParseError(f"unrecognised time {text!r} (expected ctime or YYYY-MM-DD HH:MM:SS)") from exc
    return naive.replace(tzinfo=tz or UTC).astimezone(UTC)


def _parse_text_time(text: str) -> datetime:
    if match := _ISO_TIME.match(text):
        return datetime(*(int(part) for part in match.groups()))
    if match := _CTIME.match(text):
        month_name, day, hour, minute, second, year = match.groups()
        if month_name not in _MONTHS:
            raise ValueError(f"unknown month {month_name!r}")
        return datetime(int(year), _MONTHS[month_name], int(day), int(hour), int(minute), int(second))
    raise ValueError("no time format matched")


def parse_real_address(text: str) -> tuple[str | None, int | None, str | None]:
    """Split a Real Address into (ip, port, protocol).

    Accepts ``1.2.3.4:5678``, bare IPv4/IPv6, ``[2001:db8::1]:1194`` and the 2.7 protocol prefixes
    such as ``udp4:1.2.3.4:5678`` or ``tcp4-server:1.2.3.4:443``. Protocol is ``udp``/``tcp`` or None.
    """
    rest = text.strip()
    protocol = None
    if match := _PROTOCOL_PREFIX.match(rest):
        protocol = match.group(1).lower()
        rest = rest[match.end() :]
    if not rest:
        raise StatusParseError(f"empty real address in {text!r}")
    host, port = _split_host_port(rest, text)
    return _normalise_ip(host, text), port, protocol


def _split_host_port(rest: str, original: str) -> tuple[str, int | None]:
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise StatusParseError(f"malformed bracketed address {original!r}")
        return host, _parse_port(tail[1:], original) if tail else None
    if _is_ip(rest):
        # A bare IPv6 address: OpenVPN omits the port for IPv6 because "v6addr:port" is ambiguous.
        return rest, None
    host, colon, port = rest.rpartition(":")
    if not colon:
        raise StatusParseError(f"real address {original!r} is not an IP address")
    return host, _parse_port(port, original)


def _parse_port(text: str, original: str) -> int:
    if not _is_int(text) or not 0 <= int(text) <= 65535:
        raise StatusParseError(f"invalid port in real address {original!r}")
    return int(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _normalise_ip(host: str, original: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise StatusParseError(f"real address {original!r} is not an IP address") from exc
    return str(unmapped(address))


def detect_version(text: str) -> int:
    """Return 1, 2 or 3 for the status format of ``text``."""
    first = next((line.strip("\r") for line in text.splitlines() if line.strip()), "")
    if first == _V1_CLIENT_MARKER:
        return 1
    tab_head, tab, _ = first.partition("\t")
    if tab and tab_head in _RECORD_TYPES:
        return 3
    comma_head, comma, _ = first.partition(",")
    if comma and comma_head in _RECORD_TYPES:
        return 2
    if first == "END":
        raise StatusParseError("status output holds only END")
    if not first:
        raise IncompleteStatus("status output is empty")
    raise StatusParseError(f"not OpenVPN status output: first line is {first[:80]!r}")


def parse_status(text: str, *, tz: tzinfo | None = None) -> StatusSnapshot:
    """Parse status output of any version; raise IncompleteStatus if cut short, StatusParseError if malformed."""
    lines = _content_lines(text)
    version = detect_version(text)
    if version == 1:
        return _parse_v1(lines, tz)
    return _parse_v23(lines, version, tz)


def _content_lines(text: str) -> list[str]:
    lines = [line.rstrip("\r") for line in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise IncompleteStatus("status output is empty")
    if "END" not in lines:
        raise IncompleteStatus("status output has no END line (still being written?)")
    if lines[-1] != "END":
        # OpenVPN rewrites the file in place and truncates last, so text after END is a torn write.
        raise IncompleteStatus("status output has text after END (torn write)")
    return lines[:-1]


@dataclass
class _Builder:
    """Mutable accumulator used while reading one status report."""

    version: int
    tz: tzinfo | None
    title: str | None = None
    time: datetime | None = None
    client_rows: list[dict[str, str]] = field(default_factory=list)
    routes: list[RouteRecord] = field(default_factory=list)
    global_stats: dict[str, int | str] = field(default_factory=dict)

    def set_title(self, title: str, line_no: int) -> None:
        if self.title is not None:
            raise IncompleteStatus(f"line {line_no}: second TITLE line (torn write)")
        self.title = title

    def set_time(self, text: str, time_t: str | None, line_no: int) -> None:
        if self.time is not None:
            raise IncompleteStatus(f"line {line_no}: second TIME line (torn write)")
        self.time = _with_line(line_no, parse_status_time, text, time_t, self.tz)

    def add_route(self, row: dict[str, str], line_no: int) -> None:
        last_ref = None
        if row.get("last_ref") or row.get("last_ref_time_t"):
            last_ref = _with_line(
                line_no, parse_status_time, row.get("last_ref", ""), row.get("last_ref_time_t"), self.tz
            )
        self.routes.append(RouteRecord(row["virtual_address"], row["common_name"], row["real_address"], last_ref))

    def add_global_stat(self, name: str, value: str) -> None:
        self.global_stats[name] = int(value) if _is_int(value) else value

    def build(self) -> StatusSnapshot:
        if self.time is None:
            raise StatusParseError("status output has no TIME/Updated line")
        host_routes = _host_routes(self.routes)
        clients = [_client_record(row, host_routes, self.tz) for row in self.client_rows]
        return StatusSnapshot(self.time, self.title, self.version, clients, self.routes, self.global_stats)


def _parse_v23(lines: list[str], version: int, tz: tzinfo | None) -> StatusSnapshot:
    separator = "\t" if version == 3 else ","
    builder = _Builder(version, tz)
    headers: dict[str, list[str]] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record, *fields = line.split(separator)
        if record == "TITLE":
            builder.set_title(separator.join(fields), line_no)
        elif record == "TIME":
            builder.set_time(fields[0] if fields else "", fields[1] if len(fields) > 1 else None, line_no)
        elif record == "HEADER":
            _read_header(fields, headers, line_no)
        elif record == "GLOBAL_STATS":
            if len(fields) != 2:
                raise StatusParseError(f"line {line_no}: GLOBAL_STATS needs a name and a value: {line!r}")
            builder.add_global_stat(*fields)
        elif record in ("CLIENT_LIST", "ROUTING_TABLE"):
            row = _row(headers, record, fields, line_no)
            if record == "CLIENT_LIST":
                builder.client_rows.append(row)
            else:
                builder.add_route(row, line_no)
        elif record not in headers:
            raise StatusParseError(f"line {line_no}: unexpected line {line[:80]!r}")
        # Records announced by a HEADER but unknown to us are newer additions; skipping them is safe.
    return builder.build()


def _read_header(fields: list[str], headers: dict[str, list[str]], line_no: int) -> None:
    if not fields or not fields[0]:
        raise StatusParseError(f"line {line_no}: HEADER without a record name")
    record, columns = fields[0], fields[1:]
    if record in headers:
        raise IncompleteStatus(f"line {line_no}: second HEADER for {record} (torn write)")
    headers[record] = columns


def _row(headers: dict[str, list[str]], record: str, fields: list[str], line_no: int) -> dict[str, str]:
    if record not in headers:
        raise StatusParseError(f"line {line_no}: {record} row before its HEADER line")
    columns = headers[record]
    if len(fields) != len(columns):
        raise StatusParseError(
            f"line {line_no}: {record} row has {len(fields)} fields but the HEADER names {len(columns)}"
        )
    return _named_row(record, columns, fields, line_no)


def _named_row(record: str, columns: list[str], fields: list[str], line_no: int) -> dict[str, str]:
    names = _CLIENT_COLUMNS if record == "CLIENT_LIST" else _ROUTE_COLUMNS
    required = _REQUIRED_CLIENT_COLUMNS if record == "CLIENT_LIST" else _REQUIRED_ROUTE_COLUMNS
    row = {names[column]: value for column, value in zip(columns, fields, strict=True) if column in names}
    missing = [name for name in required if name not in row]
    if record == "CLIENT_LIST" and "connected_since" not in row and "connected_since_time_t" not in row:
        missing.append("connected_since")
    if missing:
        raise StatusParseError(f"line {line_no}: {record} HEADER lacks columns {', '.join(missing)}")
    row["_line"] = str(line_no)
    return row


def _parse_v1(lines: list[str], tz: tzinfo | None) -> StatusSnapshot:
    builder = _Builder(1, tz)
    section, columns = "start", None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if line == _V1_CLIENT_MARKER:
            section, columns = "clients", None
        elif line == "ROUTING TABLE":
            section, columns = "routes", None
        elif line == "GLOBAL STATS":
            section, columns = "stats", None
        elif section == "clients" and fields[0] == "Updated" and builder.time is None:
            builder.set_time(",".join(fields[1:]), None, line_no)
        elif section in ("clients", "routes") and columns is None:
            columns = fields
        elif section == "clients":
            builder.client_rows.append(_v1_row("CLIENT_LIST", columns, fields, line_no))
        elif section == "routes":
            builder.add_route(_v1_row("ROUTING_TABLE", columns, fields, line_no), line_no)
        elif section == "stats" and len(fields) == 2:
            builder.add_global_stat(*fields)
        else:
            raise StatusParseError(f"line {line_no}: unexpected line {line[:80]!r}")
    return builder.build()


def _v1_row(record: str, columns: list[str], fields: list[str], line_no: int) -> dict[str, str]:
    if len(fields) != len(columns):
        raise StatusParseError(f"line {line_no}: row has {len(fields)} fields but the header names {len(columns)}")
    return _named_row(record, columns, fields, line_no)


def _host_routes(routes: list[RouteRecord]) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """Map (common name, real address) to the client's own IPv4/IPv6 tunnel addresses."""
    found: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    for route in routes:
        # "C" marks a cached route; "/" marks an iroute network, which is not the client's own address.
        address = route.virtual_address.removesuffix("C")
        if "/" in address or not _is_ip(address):
            continue
        ipv4, ipv6 = found.get((route.common_name, route.real_address), (None, None))
        if ipaddress.ip_address(address).version == 4:
            ipv4 = ipv4 or address
        else:
            ipv6 = ipv6 or address
        found[(route.common_name, route.real_address)] = (ipv4, ipv6)
    return found


def _client_record(row: dict[str, str], host_routes: dict, tz: tzinfo | None) -> ClientRecord:
    line_no = int(row["_line"])
    real_ip, real_port, protocol = _with_line(line_no, parse_real_address, row["real_address"])
    routed_v4, routed_v6 = host_routes.get((row["common_name"], row["real_address"]), (None, None))
    return ClientRecord(
        common_name=row["common_name"],
        real_address=row["real_address"],
        real_ip=real_ip,
        real_port=real_port,
        protocol=protocol,
        virtual_address=row.get("virtual_address") or routed_v4,
        virtual_ipv6=row.get("virtual_ipv6") or routed_v6,
        bytes_received=_counter(row["bytes_received"], "Bytes Received", line_no),
        bytes_sent=_counter(row["bytes_sent"], "Bytes Sent", line_no),
        connected_since=_with_line(
            line_no, parse_status_time, row.get("connected_since", ""), row.get("connected_since_time_t"), tz
        ),
        username=_defined(row.get("username")),
        client_id=_optional_int(row.get("client_id"), "Client ID", line_no),
        peer_id=_optional_int(row.get("peer_id"), "Peer ID", line_no),
        cipher=_defined(row.get("cipher")),
    )


def merge_duplicate_clients(clients: list[ClientRecord]) -> tuple[list[ClientRecord], int]:
    """The clients with rows that stand for the same connection merged, and how many rows were merged away.

    Some servers list a CLIENT_LIST row twice (seen from OpenVPN 2.3). Rows are the same connection when they
    share a Client ID, or (without one) the common name, real address and Connected Since. The row with the
    larger counters is kept: counters only grow, so it is the later reading.
    """
    kept: dict[tuple, ClientRecord] = {}
    for record in clients:
        key = ("id", record.client_id) if record.client_id is not None else record.session_key
        other = kept.get(key)
        if other is None or record.bytes_received + record.bytes_sent > other.bytes_received + other.bytes_sent:
            kept[key] = record
    return list(kept.values()), len(clients) - len(kept)


def _with_line(line_no: int, function, *args):
    try:
        return function(*args)
    except IncompleteStatus:
        raise
    except StatusParseError as exc:
        raise StatusParseError(f"line {line_no}: {exc}") from exc


def _counter(text: str, column: str, line_no: int) -> int:
    if not _is_int(text) or text.startswith("-"):
        raise StatusParseError(f"line {line_no}: {column} is not a byte count: {text!r}")
    return int(text)


def _optional_int(text: str | None, column: str, line_no: int) -> int | None:
    if _defined(text) is None:
        return None
    if not _is_int(text):
        raise StatusParseError(f"line {line_no}: {column} is not a number: {text!r}")
    return int(text)


def _defined(text: str | None) -> str | None:
    return None if text in (None, "", _UNDEF) else text


def _is_int(text: str) -> bool:
    return _INTEGER.match(text) is not None
