"""The OpenVPN server-log parser over a real 2.6 log (a client with a foreign certificate) and variants."""

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitoring.sources.serverlog import parse_log_line

UTC = dt.UTC
REAL_LOG = (Path(__file__).parent / "fixtures" / "openvpn-server.log").read_text().splitlines()


def test_the_real_log_yields_the_rejected_client_and_the_good_clients_peer_info():
    events = [event for line in REAL_LOG if (event := parse_log_line(line))]
    failures = [e for e in events if e.kind == "failure"]
    assert [(e.peer, e.common_name, e.reason) for e in failures] == [
        ("127.0.0.1:32990", "intruder", "certificate rejected: certificate signature failure"),
        ("127.0.0.1:32990", None, "TLS handshake failed"),
    ]
    assert failures[0].time == dt.datetime(2026, 11, 23, 2, 57, 24, tzinfo=UTC)
    info = {(e.key, e.value) for e in events if e.kind == "peer_info" and e.peer == "127.0.0.1:45737"}
    assert info == {("IV_VER", "2.6.14"), ("IV_PLAT", "linux")}
    connected = [e for e in events if e.kind == "connected"]
    assert [(e.peer_ip, e.peer_port, e.common_name) for e in connected] == [("127.0.0.1", 45737, "user-alice")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Sun Nov 22 08:15:25 2026 203.0.113.9:51000 TLS Error: TLS key negotiation failed to occur within 60 seconds",
         ("failure", "203.0.113.9", None, "TLS key negotiation timed out")),
        ("2026-11-22 08:15:25 bob/198.51.100.4:1194 AUTH_FAILED: credentials rejected",
         ("failure", "198.51.100.4", "bob", "authentication failed")),
        ("2026-11-22 08:15:25 198.51.100.4:40001 TLS Auth Error: Auth Username/Password verification failed for peer",
         ("failure", "198.51.100.4", None, "authentication failed")),
        ("2026-11-22 08:15:25 [AF_INET6]2001:db8::7:40001 VERIFY ERROR: depth=0, error=certificate has expired: "
         "C=DE, CN=user-dave, serial=17", ("failure", "2001:db8::7", "user-dave", "certificate rejected: certificate "
                                                                                "has expired")),
        ("2026-11-22 08:15:25 198.51.100.4:40001 peer info: IV_HWADDR=02:42:ac:11:00:02",
         ("peer_info", "198.51.100.4", None, "")),
    ],
)
def test_format_variants(line, expected):
    event = parse_log_line(line)
    assert (event.kind, event.peer_ip, event.common_name, event.reason) == expected


@pytest.mark.parametrize("line", [
    "", "garbage", "2026-11-22 08:15:25 MANAGEMENT: CMD 'status 3'",
    "2026-11-22 08:15:25 127.0.0.1:1 peer info: IV_CIPHERS=AES-256-GCM",
    "2026-13-45 08:15:25 127.0.0.1:1 TLS Error: TLS handshake failed",
])
def test_other_lines_are_no_event(line):
    assert parse_log_line(line) is None


def test_times_are_read_in_the_servers_zone():
    event = parse_log_line("2026-07-01 10:00:00 127.0.0.1:5 TLS Error: TLS handshake failed", ZoneInfo("Europe/Berlin"))
    assert event.time == dt.datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
