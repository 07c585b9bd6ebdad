"""Events in an OpenVPN server log: failed handshakes and logins, and the peer info clients send."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = ["LogEvent", "parse_log_line"]

# "2026-11-23 02:57:24 127.0.0.1:32990 VERIFY ERROR: ..." (2.5+) or "Sun Nov 22 08:15:25 2026 ..." (older),
# with an optional "common-name/" before the peer once the client is known.
_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}) "
    r"(?:(?P<cn>[^\s/]+)/)?(?P<peer>(?:\[AF_INET6?\])?\[?[0-9A-Fa-f:.]+\]?:\d{1,5}) (?P<message>.*)$"
)
_VERIFY_ERROR = re.compile(r"^VERIFY ERROR: depth=(?P<depth>\d+), error=(?P<error>[^:]+)(?:: (?P<subject>.*))?$")
_CN = re.compile(r"(?:^|[,/ ])CN=(?P<cn>[^,/]+)")
_PEER_INFO = re.compile(r"^peer info: (?P<key>IV_[A-Z_0-9]+)=(?P<value>.*)$")
_INITIATED = re.compile(r"^\[(?P<cn>[^\]]+)\] Peer Connection Initiated with ")
_FAILURES = (
    ("TLS Error: TLS handshake failed", "TLS handshake failed"),
    ("TLS Error: TLS key negotiation failed", "TLS key negotiation timed out"),
    ("TLS Auth Error:", "authentication failed"),
    ("AUTH_FAILED", "authentication failed"),
    ("Auth Username/Password verification failed", "authentication failed"),
    ("TLS Error: cannot locate HMAC in incoming packet", "TLS auth (HMAC) rejected"),
)
PEER_INFO_KEYS = {"IV_PLAT", "IV_PLAT_VER", "IV_VER", "IV_HWADDR", "IV_GUI_VER"}


@dataclass(frozen=True)
class LogEvent:
    """kind: "failure" (reason), "peer_info" (key, value) or "connected" (common_name)."""

    kind: str
    time: dt.datetime
    peer: str
    common_name: str | None = None
    reason: str = ""
    key: str = ""
    value: str = ""

    @property
    def peer_ip(self) -> str:
        host = self.peer.rsplit(":", 1)[0]
        return host.removeprefix("[AF_INET6]").removeprefix("[AF_INET]").strip("[]")

    @property
    def peer_port(self) -> int:
        return int(self.peer.rsplit(":", 1)[1])


def _time(text: str, tz: ZoneInfo) -> dt.datetime:
    fmt = "%Y-%m-%d %H:%M:%S" if text[0].isdigit() else "%a %b %d %H:%M:%S %Y"
    return dt.datetime.strptime(" ".join(text.split()), fmt).replace(tzinfo=tz).astimezone(dt.UTC)


def parse_log_line(line: str, tz: ZoneInfo | None = None) -> LogEvent | None:
    """The event a log line reports, or None for every other line. The log's times are in tz (default UTC)."""
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    message = match["message"]
    common_name = match["cn"]
    try:
        when = _time(match["time"], tz or ZoneInfo("UTC"))
    except ValueError:
        return None
    peer = match["peer"]
    if (info := _PEER_INFO.match(message)) is not None:
        if info["key"] not in PEER_INFO_KEYS:
            return None
        return LogEvent("peer_info", when, peer, common_name, key=info["key"], value=info["value"].strip()[:128])
    if (verify := _VERIFY_ERROR.match(message)) is not None:
        subject_cn = _CN.search(verify["subject"] or "")
        name = subject_cn["cn"].strip() if subject_cn and verify["depth"] == "0" else common_name
        return LogEvent("failure", when, peer, name, reason=f"certificate rejected: {verify['error'].strip()}")
    if (initiated := _INITIATED.match(message)) is not None:
        return LogEvent("connected", when, peer, initiated["cn"])
    for marker, reason in _FAILURES:
        if marker in message:
            return LogEvent("failure", when, peer, common_name, reason=reason)
    return None
