"""Tests for the OpenVPN status parser over real 2.6 captures and hand-written variants of older/newer output."""

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitoring.sources import statusfile
from monitoring.sources.status import (
    IncompleteStatus,
    StatusParseError,
    detect_version,
    parse_real_address,
    parse_status,
    parse_status_time,
)
from monitoring.sources.statusfile import read_status_file

FIXTURES = Path(__file__).parent / "fixtures"
CONNECTED = datetime(2026, 11, 22, 8, 15, 25, tzinfo=UTC)

V26_CLIENT_HEADER = (
    "Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,"
    "Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher"
)
V26_ROUTE_HEADER = "Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def by_name(snapshot) -> dict:
    return {client.common_name: client for client in snapshot.clients}


def v2(client_rows, route_rows=(), client_header=V26_CLIENT_HEADER, time_line="TIME,2026-11-22 08:16:24,1795335384"):
    lines = ["TITLE,OpenVPN 2.6.14 test", time_line, f"HEADER,CLIENT_LIST,{client_header}"]
    lines += [f"CLIENT_LIST,{row}" for row in client_rows]
    lines += [f"HEADER,ROUTING_TABLE,{V26_ROUTE_HEADER}"]
    lines += [f"ROUTING_TABLE,{row}" for row in route_rows]
    lines += ["GLOBAL_STATS,Max bcast/mcast queue length,0", "END"]
    return "\r\n".join(lines) + "\r\n"


# --- real OpenVPN 2.6.14 captures -------------------------------------------------------------------------------


def test_management_status_2_capture():
    snapshot = parse_status(fixture_text("management-status-2.txt"))
    assert snapshot.version == 2
    assert snapshot.time == datetime.fromtimestamp(1795335384, UTC) == datetime(2026, 11, 22, 8, 16, 24, tzinfo=UTC)
    assert snapshot.title.startswith("OpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)]")
    clients = by_name(snapshot)
    assert [c.common_name for c in snapshot.clients] == ["user-carol", "user-bob", "user-alice"]
    bob = clients["user-bob"]
    assert (bob.bytes_received, bob.bytes_sent) == (3474, 3522)
    assert (bob.client_id, bob.peer_id) == (1, 1)
    assert bob.real_address == "127.0.0.1:41249"
    assert (bob.real_ip, bob.real_port, bob.protocol) == ("127.0.0.1", 41249, None)
    assert bob.virtual_address == "10.88.0.3"
    assert bob.virtual_ipv6 is None
    assert bob.connected_since == CONNECTED
    assert bob.username is None
    assert bob.cipher == "AES-256-GCM"
    assert {name: c.client_id for name, c in clients.items()} == {"user-carol": 2, "user-bob": 1, "user-alice": 0}
    assert {name: c.virtual_address for name, c in clients.items()} == {
        "user-carol": "10.88.0.4",
        "user-bob": "10.88.0.3",
        "user-alice": "10.88.0.2",
    }
    assert clients["user-alice"].bytes_received == 3475
    assert snapshot.global_stats == {"Max bcast/mcast queue length": 3, "dco_enabled": 0}
    assert [(r.virtual_address, r.common_name) for r in snapshot.routes] == [
        ("10.88.0.3", "user-bob"),
        ("10.88.0.4", "user-carol"),
        ("10.88.0.2", "user-alice"),
    ]
    assert snapshot.routes[0].last_ref == CONNECTED


def test_management_status_3_capture_is_tab_separated():
    snapshot = parse_status(fixture_text("management-status-3.txt"))
    assert snapshot.version == 3
    assert snapshot.time == datetime.fromtimestamp(1795335385, UTC)
    clients = by_name(snapshot)
    assert clients["user-bob"].bytes_received == 3514
    assert clients["user-alice"].bytes_received == 3515
    assert clients["user-carol"].bytes_received == 3475
    assert {c.bytes_sent for c in snapshot.clients} == {3522}
    assert clients["user-carol"].client_id == 2
    assert clients["user-carol"].virtual_address == "10.88.0.4"
    assert snapshot.global_stats["dco_enabled"] == 0


def test_management_status_1_capture_joins_virtual_addresses_from_routing_table():
    snapshot = parse_status(fixture_text("management-status-1.txt"))
    assert snapshot.version == 1
    assert snapshot.title is None
    assert snapshot.time == datetime(2026, 11, 22, 8, 16, 24, tzinfo=UTC)
    clients = by_name(snapshot)
    assert clients["user-bob"].bytes_received == 3474
    assert clients["user-bob"].virtual_address == "10.88.0.3"
    assert clients["user-alice"].virtual_address == "10.88.0.2"
    assert clients["user-carol"].virtual_address == "10.88.0.4"
    assert all(c.client_id is None and c.peer_id is None and c.cipher is None for c in snapshot.clients)
    assert clients["user-bob"].connected_since == CONNECTED
    assert snapshot.global_stats == {"Max bcast/mcast queue length": 3}


def test_status_file_capture():
    snapshot = read_status_file(FIXTURES / "status-file-v2.log")
    assert snapshot.version == 2
    assert snapshot.time == datetime.fromtimestamp(1795335382, UTC)
    clients = by_name(snapshot)
    assert (clients["user-bob"].bytes_received, clients["user-bob"].bytes_sent) == (3474, 3482)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("management-status-1.txt", 1),
        ("management-status-2.txt", 2),
        ("management-status-3.txt", 3),
        ("status-file-v2.log", 2),
    ],
)
def test_detect_version(name, version):
    assert detect_version(fixture_text(name)) == version


def test_snapshot_and_records_are_frozen():
    snapshot = parse_status(fixture_text("management-status-2.txt"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.time = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.clients[0].bytes_received = 0


# --- older and newer formats ------------------------------------------------------------------------------------


def test_v1_with_ctime_times_as_written_by_openvpn_2_3():
    text = (
        "OpenVPN CLIENT LIST\n"
        "Updated,Thu Nov  5 10:00:07 2026\n"
        "Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n"
        "laptop,198.51.100.7:1194,100,200,Thu Nov  5 09:59:01 2026\n"
        "ROUTING TABLE\n"
        "Virtual Address,Common Name,Real Address,Last Ref\n"
        "10.8.0.6,laptop,198.51.100.7:1194,Thu Nov  5 10:00:05 2026\n"
        "GLOBAL STATS\n"
        "Max bcast/mcast queue length,0\n"
        "END\n"
    )
    snapshot = parse_status(text)
    assert snapshot.time == datetime(2026, 11, 5, 10, 0, 7, tzinfo=UTC)
    (laptop,) = snapshot.clients
    assert laptop.connected_since == datetime(2026, 11, 5, 9, 59, 1, tzinfo=UTC)
    assert (laptop.bytes_received, laptop.bytes_sent) == (100, 200)
    assert laptop.virtual_address == "10.8.0.6"
    assert snapshot.routes[0].last_ref == datetime(2026, 11, 5, 10, 0, 5, tzinfo=UTC)


def test_v2_in_openvpn_2_3_style_without_client_id_or_time_t():
    header = "Common Name,Real Address,Virtual Address,Bytes Received,Bytes Sent,Connected Since,Username"
    text = v2(
        ["phone,203.0.113.9:40000,10.8.0.10,5000,6000,Sun Nov 22 08:00:00 2026,UNDEF"],
        client_header=header,
        time_line="TIME,Sun Nov 22 08:16:24 2026",
    )
    snapshot = parse_status(text)
    (phone,) = snapshot.clients
    assert snapshot.time == datetime(2026, 11, 22, 8, 16, 24, tzinfo=UTC)
    assert phone.connected_since == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert (phone.client_id, phone.peer_id, phone.cipher, phone.virtual_ipv6) == (None, None, None, None)
    assert phone.virtual_address == "10.8.0.10"
    assert phone.session_key == ("cn", "phone", "203.0.113.9:40000", phone.connected_since)


def test_time_t_wins_over_text_time():
    text = v2(
        ["a,1.2.3.4:5,10.8.0.2,,1,2,1999-01-01 00:00:00,1795335325,UNDEF,0,0,AES-256-GCM"],
        time_line="TIME,1999-01-01 00:00:00,1795335384",
    )
    snapshot = parse_status(text, tz=ZoneInfo("Europe/Berlin"))
    assert snapshot.time == datetime.fromtimestamp(1795335384, UTC)
    assert snapshot.clients[0].connected_since == CONNECTED


def test_text_times_without_time_t_use_given_timezone_and_come_back_as_utc():
    header = "Common Name,Real Address,Virtual Address,Bytes Received,Bytes Sent,Connected Since,Username"
    text = v2(
        ["phone,203.0.113.9:40000,10.8.0.10,1,2,2026-11-22 09:15:25,UNDEF"],
        client_header=header,
        time_line="TIME,2026-11-22 09:16:24",
    )
    snapshot = parse_status(text, tz=ZoneInfo("Europe/Berlin"))
    assert snapshot.time == datetime(2026, 11, 22, 8, 16, 24, tzinfo=UTC)
    assert snapshot.time.utcoffset() == timedelta(0)
    assert snapshot.clients[0].connected_since == CONNECTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22 08:15:25", CONNECTED),
        ("Sun Nov 22 08:15:25 2026", CONNECTED),
        ("Thu Nov 22 08:15:25 2026", CONNECTED),  # weekday is not checked; the date decides
        ("Mon Mar  2 07:05:09 2026", datetime(2026, 3, 2, 7, 5, 9, tzinfo=UTC)),
    ],
)
def test_parse_status_time_formats(text, expected):
    assert parse_status_time(text) == expected


def test_parse_status_time_with_fixed_offset():
    assert parse_status_time("2026-11-22 10:15:25", tz=timezone(timedelta(hours=2))) == CONNECTED


@pytest.mark.parametrize("text", ["22/11/2026 08:15:25", "Sun Foo 22 08:15:25 2026", "2026-13-22 08:15:25", ""])
def test_parse_status_time_rejects_unknown_formats(text):
    with pytest.raises(StatusParseError):
        parse_status_time(text)


def test_openvpn_2_7_protocol_prefixed_real_addresses():
    text = v2(
        [
            "a,udp4:192.0.2.10:51234,10.8.0.2,,1,2,2026-11-22 08:15:25,1795335325,UNDEF,0,0,AES-256-GCM",
            "b,tcp4-server:192.0.2.11:443,10.8.0.3,,1,2,2026-11-22 08:15:25,1795335325,UNDEF,1,1,AES-256-GCM",
            "c,udp6:[2001:db8::5]:1194,10.8.0.4,fd00::4,1,2,2026-11-22 08:15:25,1795335325,UNDEF,2,2,AES-256-GCM",
        ]
    )
    clients = by_name(parse_status(text))
    assert (clients["a"].real_ip, clients["a"].real_port, clients["a"].protocol) == ("192.0.2.10", 51234, "udp")
    assert (clients["b"].real_ip, clients["b"].real_port, clients["b"].protocol) == ("192.0.2.11", 443, "tcp")
    assert (clients["c"].real_ip, clients["c"].real_port, clients["c"].protocol) == ("2001:db8::5", 1194, "udp")
    assert clients["c"].real_address == "udp6:[2001:db8::5]:1194"
    assert clients["c"].virtual_ipv6 == "fd00::4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.1:1194", ("198.51.100.1", 1194, None)),
        ("198.51.100.1", ("198.51.100.1", None, None)),
        ("2001:db8::1", ("2001:db8::1", None, None)),
        ("2001:DB8:0:0::1", ("2001:db8::1", None, None)),
        ("[2001:db8::1]:1194", ("2001:db8::1", 1194, None)),
        ("[2001:db8::1]", ("2001:db8::1", None, None)),
        ("::ffff:198.51.100.1", ("198.51.100.1", None, None)),
        ("udp4:198.51.100.1:51234", ("198.51.100.1", 51234, "udp")),
        ("tcp4-server:198.51.100.1:443", ("198.51.100.1", 443, "tcp")),
        ("tcp6-server:[2001:db8::9]:443", ("2001:db8::9", 443, "tcp")),
        ("udp6:2001:db8::7", ("2001:db8::7", None, "udp")),
        ("udp:198.51.100.1:1", ("198.51.100.1", 1, "udp")),
    ],
)
def test_parse_real_address(text, expected):
    assert parse_real_address(text) == expected


@pytest.mark.parametrize(
    "text",
    ["vpn.example.com:1194", "198.51.100.1:99999", "198.51.100.1:x", "[2001:db8::1", "[2001:db8::1]x", "udp4:", ""],
)
def test_parse_real_address_rejects_non_addresses(text):
    with pytest.raises(StatusParseError):
        parse_real_address(text)


def test_ipv6_real_addresses_in_status_3():
    rows = [
        ["v6bare", "2001:db8::10", "10.8.0.2", "fd00::2", "10", "20", "2026-11-22 08:15:25", "1795335325", "UNDEF",
         "0", "0", "AES-256-GCM"],
        ["v6port", "[2001:db8::11]:1194", "10.8.0.3", "", "30", "40", "2026-11-22 08:15:25", "1795335325", "UNDEF",
         "1", "1", "AES-256-GCM"],
    ]  # fmt: skip
    lines = [
        "TITLE\tOpenVPN 2.6",
        "TIME\t2026-11-22 08:16:25\t1795335385",
        "HEADER\tCLIENT_LIST\t" + V26_CLIENT_HEADER.replace(",", "\t"),
        *("CLIENT_LIST\t" + "\t".join(row) for row in rows),
        "END",
    ]
    clients = by_name(parse_status("\n".join(lines)))
    assert (clients["v6bare"].real_ip, clients["v6bare"].real_port) == ("2001:db8::10", None)
    assert clients["v6bare"].virtual_ipv6 == "fd00::2"
    assert (clients["v6port"].real_ip, clients["v6port"].real_port) == ("2001:db8::11", 1194)


def test_same_common_name_twice_gives_two_sessions():
    text = v2(
        [
            "shared,192.0.2.1:1000,10.8.0.2,,100,200,2026-11-22 08:15:25,1795335325,UNDEF,4,4,AES-256-GCM",
            "shared,192.0.2.2:2000,10.8.0.3,,300,400,2026-11-22 08:15:25,1795335325,UNDEF,5,5,AES-256-GCM",
        ]
    )
    first, second = parse_status(text).clients
    assert (first.client_id, first.bytes_received, first.virtual_address) == (4, 100, "10.8.0.2")
    assert (second.client_id, second.bytes_received, second.virtual_address) == (5, 300, "10.8.0.3")
    assert first.session_key != second.session_key


def test_same_common_name_twice_in_v1_joins_routes_by_real_address():
    text = (
        "OpenVPN CLIENT LIST\nUpdated,2026-11-22 08:16:24\n"
        "Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n"
        "shared,192.0.2.1:1000,1,2,2026-11-22 08:15:25\n"
        "shared,192.0.2.2:2000,3,4,2026-11-22 08:15:25\n"
        "ROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\n"
        "10.8.0.3,shared,192.0.2.2:2000,2026-11-22 08:15:25\n"
        "10.8.0.2,shared,192.0.2.1:1000,2026-11-22 08:15:25\n"
        "GLOBAL STATS\nEND\n"
    )
    first, second = parse_status(text).clients
    assert (first.real_port, first.virtual_address) == (1000, "10.8.0.2")
    assert (second.real_port, second.virtual_address) == (2000, "10.8.0.3")
    assert first.session_key != second.session_key


def test_undef_common_name_is_kept_and_undef_username_is_none():
    text = v2(
        [
            "UNDEF,192.0.2.1:1000,10.8.0.2,,1,2,2026-11-22 08:15:25,1795335325,UNDEF,0,0,AES-256-GCM",
            "user-dave,192.0.2.2:1000,10.8.0.3,,1,2,2026-11-22 08:15:25,1795335325,dave@example.org,1,1,",
        ]
    )
    nocn, dave = parse_status(text).clients
    assert nocn.common_name == "UNDEF"
    assert nocn.username is None
    assert dave.username == "dave@example.org"
    assert dave.cipher is None


def test_reordered_header_columns_are_followed():
    header = (
        "Bytes Sent,Client ID,Real Address,Common Name,Connected Since (time_t),Bytes Received,Virtual Address,"
        "Peer ID,Username,Data Channel Cipher,Connected Since,Virtual IPv6 Address"
    )
    text = v2(["3522,7,127.0.0.1:41249,user-bob,1795335325,3474,10.88.0.3,9,bob,CHACHA20-POLY1305,x,"], (), header)
    (bob,) = parse_status(text).clients
    assert (bob.common_name, bob.bytes_received, bob.bytes_sent) == ("user-bob", 3474, 3522)
    assert (bob.client_id, bob.peer_id, bob.username, bob.cipher) == (7, 9, "bob", "CHACHA20-POLY1305")
    assert bob.connected_since == CONNECTED
    assert bob.virtual_address == "10.88.0.3"


def test_unknown_columns_and_header_announced_records_are_ignored():
    text = v2(["a,192.0.2.1:1000,10.8.0.2,,1,2,2026-11-22 08:15:25,1795335325,UNDEF,0,0,AES-256-GCM,extra"],
              client_header=V26_CLIENT_HEADER + ",Some Future Column")  # fmt: skip
    text = text.replace("GLOBAL_STATS", "HEADER,FUTURE_THING,Foo\nFUTURE_THING,bar\nGLOBAL_STATS", 1)
    (client,) = parse_status(text).clients
    assert client.bytes_received == 1


def test_virtual_addresses_joined_from_routing_table_skip_networks_and_macs():
    text = v2(
        ["a,192.0.2.1:1000,,,1,2,2026-11-22 08:15:25,1795335325,UNDEF,0,0,AES-256-GCM"],
        [
            "192.168.50.0/24,a,192.0.2.1:1000,2026-11-22 08:15:25,1795335325",
            "fd00::8,a,192.0.2.1:1000,2026-11-22 08:15:25,1795335325",
            "10.8.0.8C,a,192.0.2.1:1000,2026-11-22 08:15:25,1795335325",
            "10.8.0.9,other,192.0.2.9:1000,2026-11-22 08:15:25,1795335325",
        ],
    )
    snapshot = parse_status(text)
    (client,) = snapshot.clients
    assert (client.virtual_address, client.virtual_ipv6) == ("10.8.0.8", "fd00::8")
    assert len(snapshot.routes) == 4


# --- incomplete and malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["management-status-1.txt", "management-status-2.txt", "management-status-3.txt"])
def test_missing_end_is_incomplete(name):
    text = fixture_text(name)
    cut = text[: text.rindex("END")]
    with pytest.raises(IncompleteStatus, match="no END"):
        parse_status(cut)
    with pytest.raises(IncompleteStatus):
        parse_status(text[: len(text) // 2])


def test_text_after_end_is_a_torn_write():
    text = fixture_text("status-file-v2.log")
    with pytest.raises(IncompleteStatus, match="after END"):
        parse_status(text + "ROUTING_TABLE,10.88.0.2,user-alice,127.0.0.1:56169,2026-11-22 08:15:25,1795335325\n")


def test_second_title_line_is_a_torn_write():
    text = fixture_text("status-file-v2.log")
    with pytest.raises(IncompleteStatus, match="second TITLE"):
        parse_status(text.replace("GLOBAL_STATS,dco", text.splitlines()[0] + "\nGLOBAL_STATS,dco"))


def test_second_time_line_is_a_torn_write():
    text = fixture_text("status-file-v2.log").replace(
        "HEADER,ROUTING", "TIME,2026-11-22 08:16:23,1795335383\nHEADER,ROUTING"
    )
    with pytest.raises(IncompleteStatus, match="second TIME"):
        parse_status(text)


@pytest.mark.parametrize("text", ["", "\n\n", "   "])
def test_empty_output_is_incomplete(text):
    with pytest.raises(IncompleteStatus):
        parse_status(text)


def test_incomplete_status_is_a_status_parse_error():
    assert issubclass(IncompleteStatus, StatusParseError)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("CLIENT_LIST,user-bob", "garbage line\nCLIENT_LIST,user-bob"), "line 5: unexpected line"),
        (lambda t: t.replace(",3474,", ",34x4,"), "Bytes Received is not a byte count"),
        (lambda t: t.replace(",3474,", ",-3474,"), "Bytes Received is not a byte count"),
        (
            lambda t: t.replace(",AES-256-GCM\n", ",AES-256-GCM,surplus\n", 1),
            "line 4: CLIENT_LIST row has 13 fields but the HEADER names 12",
        ),
        (lambda t: t.replace(",UNDEF,1,1,", ",UNDEF,one,1,"), "Client ID is not a number"),
        (lambda t: t.replace("127.0.0.1:41249,10.88", "localhost:41249,10.88"), "not an IP address"),
        (lambda t: t.replace(",1795335325,UNDEF,1", ",17x,UNDEF,1"), "invalid time_t"),
        (
            lambda t: t.replace("HEADER,CLIENT_LIST,Common Name,", "HEADER,CLIENT_LIST,Name,"),
            "lacks columns common_name",
        ),
        (lambda t: t.replace("TIME,2026-11-22 08:16:22,1795335382\n", ""), "no TIME"),
        (lambda t: t.replace("TIME,2026-11-22 08:16:22,1795335382", "TIME,soon,"), "line 2: unrecognised time 'soon'"),
        (lambda t: t.replace("HEADER,CLIENT_LIST", "HEADER,NOT_CLIENTS"), "CLIENT_LIST row before its HEADER"),
        (lambda t: t.replace("GLOBAL_STATS,dco_enabled,0", "GLOBAL_STATS,dco_enabled"), "GLOBAL_STATS needs"),
    ],
)
def test_malformed_v2_raises_clear_errors(mutate, message):
    text = fixture_text("status-file-v2.log")
    changed = mutate(text)
    assert changed != text
    with pytest.raises(StatusParseError, match=message) as caught:
        parse_status(changed)
    assert not isinstance(caught.value, IncompleteStatus)


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>502 Bad Gateway</body></html>\nEND\n",
        "END\n",
        (
            "OpenVPN CLIENT LIST\nUpdated,2026-11-22 08:16:24\nCommon Name,Real Address,Bytes Received,Bytes Sent,"
            "Connected Since\nbob,1.2.3.4:5,1,2\nEND\n"
        ),
        (
            "OpenVPN CLIENT LIST\nUpdated,2026-11-22 08:16:24\nCommon Name,Real Address,Bytes Received,Bytes Sent,"
            "Connected Since\nROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\nGLOBAL STATS\n"
            "what is this\nEND\n"
        ),
    ],
)
def test_malformed_input_is_rejected(text):
    with pytest.raises(StatusParseError):
        parse_status(text)


def test_status_file_reader_marks_half_written_files(tmp_path):
    path = tmp_path / "openvpn-status.log"
    full = fixture_text("status-file-v2.log")
    path.write_text(full[:200])
    with pytest.raises(IncompleteStatus, match=str(path)):
        read_status_file(path)
    path.write_text("")
    with pytest.raises(IncompleteStatus):
        read_status_file(path)
    path.write_text(full)
    assert len(read_status_file(path).clients) == 3


def test_status_file_reader_retries_while_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "openvpn-status.log"
    full = fixture_text("status-file-v2.log")
    # A torn rewrite: new head, then the tail of the previous content, which still ends with END.
    torn = full[:300] + full[250:]
    path.write_text(torn)
    reads = []
    real_read = statusfile._read

    def read_while_rewriting(target):
        reads.append(target)
        if len(reads) == 2:
            path.write_text(full)
        return real_read(target)

    monkeypatch.setattr(statusfile, "_read", read_while_rewriting)
    snapshot = read_status_file(path, retry_delay=0)
    assert len(reads) == 4
    assert [c.bytes_received for c in snapshot.clients] == [3475, 3474, 3475]


def test_status_file_reader_gives_up_on_a_file_that_keeps_changing(tmp_path, monkeypatch):
    contents = iter([b"a", b"b", b"c", b"d", b"e", b"f"])
    monkeypatch.setattr(statusfile, "_read", lambda target: next(contents))
    with pytest.raises(IncompleteStatus, match="changed during each of 3 reads"):
        read_status_file(tmp_path / "x.log", retry_delay=0)


def test_status_file_reader_auto_detects_version(tmp_path):
    for name, version in [("management-status-1.txt", 1), ("management-status-3.txt", 3)]:
        path = tmp_path / name
        path.write_bytes((FIXTURES / name).read_bytes())
        assert read_status_file(path).version == version


def test_status_file_reader_propagates_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_status_file(tmp_path / "nope.log")
