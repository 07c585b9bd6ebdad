"""Tests for proxylogs.ingest.parse against real Squid 5.7 lines and hand-made real-shaped lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxylogs.ingest.parse import (
    LogRecord,
    ParseError,
    Summary,
    is_blocked,
    parse_combined,
    parse_common,
    parse_line,
    parse_lines,
    parse_squid,
    split_destination,
    status_text,
)
from proxylogs.services import COLUMNS, entry_row

FIXTURES = Path(__file__).parent / "fixtures"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the captured Squid 5.7 access.log, every line with exact values ------------------------------------------------

CAPTURE_EXPECTED = [
    # timestamp, elapsed, code, status, bytes, method, url, destination, host, port, is_ip, peer, mime, blocked
    (utc(2026, 11, 22, 8, 15, 50, 143000), 2, "TCP_MISS", 200, 626, "GET", "http://127.0.0.1:18080/",
     "127.0.0.1:18080", "127.0.0.1", 18080, True, "HIER_DIRECT", "127.0.0.1", "text/html", False),
    (utc(2026, 11, 22, 8, 15, 50, 161000), 8, "TCP_MISS", 404, 604, "GET", "http://127.0.0.1:18080/nothere.zip",
     "127.0.0.1:18080", "127.0.0.1", 18080, True, "HIER_DIRECT", "127.0.0.1", "text/html", False),
    (utc(2026, 11, 22, 8, 15, 50, 173000), 1, "TCP_DENIED", 403, 3423, "GET", "http://www.blocked.example/",
     "www.blocked.example", "www.blocked.example", 80, False, "HIER_NONE", None, "text/html", True),
    (utc(2026, 11, 22, 8, 15, 50, 182000), 1, "TCP_MISS", 404, 604, "GET", "http://127.0.0.1:18080/index.html",
     "127.0.0.1:18080", "127.0.0.1", 18080, True, "HIER_DIRECT", "127.0.0.1", "text/html", False),
    (utc(2026, 11, 22, 8, 15, 50, 191000), 0, "NONE_NONE", 503, 0, "CONNECT", "127.0.0.1:18443",
     "127.0.0.1:18443", "127.0.0.1", 18443, True, "HIER_DIRECT", "127.0.0.1", None, False),
    (utc(2026, 11, 22, 8, 15, 50, 199000), 0, "TCP_DENIED", 403, 3393, "CONNECT", "127.0.0.1:22",
     "127.0.0.1:22", "127.0.0.1", 22, True, "HIER_NONE", None, "text/html", True),
]


def test_capture_every_line_exact() -> None:
    lines = (FIXTURES / "squid_access.log").read_text().splitlines()
    assert len(lines) == len(CAPTURE_EXPECTED)
    for line, expected in zip(lines, CAPTURE_EXPECTED, strict=True):
        record = parse_line(line, "squid")
        (ts, elapsed, code, status, size, method, url, dest, host, port, is_ip, hier, peer, mime, blocked) = expected
        assert record.timestamp == ts
        assert record.timestamp.tzinfo is UTC
        assert record.elapsed_ms == elapsed
        assert record.client_ip == "127.0.0.1"
        assert (record.result_code, record.http_status, record.bytes) == (code, status, size)
        assert (record.method, record.url) == (method, url)
        assert (record.destination, record.destination_host, record.destination_port) == (dest, host, port)
        assert record.destination_is_ip is is_ip
        assert (record.hierarchy, record.peer, record.mime_type) == (hier, peer, mime)
        assert record.user is None
        assert record.user_agent is None and record.referer is None
        assert is_blocked(record) is blocked
        assert record.blocked is blocked


def test_capture_first_line_timestamp_keeps_milliseconds() -> None:
    record = parse_squid((FIXTURES / "squid_access.log").read_text().splitlines()[0])
    assert record.timestamp.isoformat() == "2026-11-22T08:15:50.143000+00:00"
    assert record.timestamp.timestamp() == pytest.approx(1795335350.143)


def test_capture_through_parse_lines() -> None:
    summary = Summary()
    with (FIXTURES / "squid_access.log").open() as handle:
        records = list(parse_lines(handle, "squid", summary))
    assert [n for n, _ in records] == [1, 2, 3, 4, 5, 6]
    assert (summary.lines, summary.parsed, summary.rejected, summary.blank) == (6, 6, 0, 0)
    assert sum(r.bytes for _, r in records) == 626 + 604 + 3423 + 604 + 0 + 3393
    assert [n for n, r in records if r.blocked] == [3, 6]


# --- real lines from the harness Squid, in all three formats ---------------------------------------------------------

@pytest.mark.parametrize("fmt", ["squid", "common", "combined"])
def test_harness_capture_all_formats_agree(fmt: str) -> None:
    lines = (FIXTURES / f"squid57_harness_{fmt}.log").read_text().splitlines()
    records = [parse_line(line, fmt) for line in lines]
    assert [r.method for r in records] == ["-", "GET", "GET", "GET", "CONNECT", "CONNECT", "CONNECT"]
    assert [r.http_status for r in records] == [0, 200, 404, 403, 200, 403, 403]
    assert [r.bytes for r in records] == [0, 1210, 318, 3499, 439, 3469, 3485]
    assert [r.result_code for r in records] == [
        "NONE_NONE", "TCP_MISS", "TCP_MISS", "TCP_DENIED", "TCP_TUNNEL", "TCP_DENIED", "TCP_DENIED"]
    assert [r.hierarchy for r in records] == [
        "HIER_NONE", "HIER_DIRECT", "HIER_DIRECT", "HIER_NONE", "HIER_DIRECT", "HIER_NONE", "HIER_NONE"]
    assert [r.blocked for r in records] == [False, False, False, True, False, True, True]
    assert [r.destination for r in records] == [
        None, "127.0.0.1:45361", "127.0.0.1:45361", "www.blocked.example", "127.0.0.1:33095", "127.0.0.1:22",
        "192.0.2.10:443"]
    assert records[0].url == "error:transaction-end-before-headers"
    assert records[0].destination_is_ip is False
    assert all(r.client_ip == "127.0.0.1" for r in records)
    # CLF has whole seconds only; the native format keeps milliseconds.
    expected_first = utc(2026, 11, 23, 2, 42, 38, 482000 if fmt == "squid" else 0)
    assert records[0].timestamp == expected_first
    assert records[6].timestamp == utc(2026, 11, 23, 2, 42, 44, 487000 if fmt == "squid" else 0)


def test_harness_combined_raw_header_values() -> None:
    line = (FIXTURES / "squid57_harness_combined.log").read_text().splitlines()[1]
    record = parse_combined(line)
    assert record.referer == 'http://ref.example/page?q="x"'  # Squid 5.7 does not escape the quotes
    assert record.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
    assert record.elapsed_ms is None and record.mime_type is None and record.peer is None


# --- hand-made real-shaped native lines -----------------------------------------------------------------------------

def native(client: str = "10.8.0.6", code: str = "TCP_TUNNEL/200", size: str = "5123", method: str = "CONNECT",
           url: str = "www.example.com:443", user: str = "-", hier: str = "HIER_DIRECT/93.184.216.34",
           mime: str = "-", elapsed: str = "  1534", ts: str = "1795335350.143") -> str:
    return f"{ts} {elapsed} {client} {code} {size} {method} {url} {user} {hier} {mime}"


def test_connect_to_hostname() -> None:
    record = parse_squid(native())
    assert record.destination == "www.example.com:443"
    assert (record.destination_host, record.destination_port, record.destination_is_ip) == ("www.example.com", 443,
                                                                                            False)
    assert record.peer == "93.184.216.34"
    assert record.elapsed_ms == 1534


def test_connect_to_ipv6_literal() -> None:
    record = parse_squid(native(url="[2001:db8::1]:443", hier="HIER_DIRECT/2001:db8::1"))
    assert record.destination == "[2001:db8::1]:443"
    assert record.destination_host == "2001:db8::1"
    assert record.destination_port == 443
    assert record.destination_is_ip is True
    assert record.peer == "2001:db8::1"


def test_connect_to_raw_ipv4() -> None:
    record = parse_squid(native(url="1.2.3.4:443"))
    assert (record.destination, record.destination_host, record.destination_is_ip) == ("1.2.3.4:443", "1.2.3.4", True)


def test_ipv6_client_is_canonicalised() -> None:
    record = parse_squid(native(client="2001:DB8:0:0::0042"))
    assert record.client_ip == "2001:db8::42"
    assert parse_squid(native(client="fd00:8::2")).client_ip == "fd00:8::2"


def test_http_url_destination_variants() -> None:
    cases = {
        "http://Example.COM/a/b?c=d": ("example.com", "example.com", 80, False),
        "http://example.com:8080/": ("example.com:8080", "example.com", 8080, False),
        "https://example.com/x": ("example.com", "example.com", 443, False),
        "ftp://files.example.org/pub/": ("files.example.org", "files.example.org", 21, False),
        "http://user:secret@example.com/": ("example.com", "example.com", 80, False),
        "http://[2001:db8::1]:8080/x": ("[2001:db8::1]:8080", "2001:db8::1", 8080, True),
        "http://[2001:db8::1]/": ("[2001:db8::1]", "2001:db8::1", 80, True),
        "http://10.0.0.1/": ("10.0.0.1", "10.0.0.1", 80, True),
        "http://example.com?q=1": ("example.com", "example.com", 80, False),
        "http://1.2.3.4.nip.io/": ("1.2.3.4.nip.io", "1.2.3.4.nip.io", 80, False),
    }
    for url, (dest, host, port, is_ip) in cases.items():
        record = parse_squid(native(method="GET", url=url, code="TCP_MISS/200", mime="text/html"))
        assert (record.destination, record.destination_host, record.destination_port, record.destination_is_ip) == (
            dest, host, port, is_ip), url
        assert record.url == url


@pytest.mark.parametrize("url", ["error:invalid-request", "-", "/relative/path", "cache_object:"])
def test_urls_without_destination(url: str) -> None:
    record = parse_squid(native(method="GET", url=url, code="NONE_NONE/400", hier="HIER_NONE/-", size="0"))
    assert (record.destination, record.destination_host, record.destination_port) == (None, None, None)
    assert record.destination_is_ip is False


def test_split_destination_edge_cases() -> None:
    assert split_destination("example.com:99999", 443) == ("example.com:99999", "example.com", 443, False)
    assert split_destination("2001:db8::1", None) == ("[2001:db8::1]", "2001:db8::1", None, True)
    assert split_destination("Example.com.:443", 443) == ("example.com:443", "example.com", 443, False)


def test_407_auth_challenge_is_not_blocked() -> None:
    record = parse_squid(native(method="GET", url="http://www.example.com/", code="TCP_DENIED/407", size="3962",
                                hier="HIER_NONE/-", mime="text/html"))
    assert record.result_code == "TCP_DENIED" and record.http_status == 407
    assert is_blocked(record) is False


def test_blocked_variants() -> None:
    def blocked(code: str) -> bool:
        return is_blocked(parse_squid(native(code=code)))

    assert blocked("TCP_DENIED/403")
    assert blocked("TCP_MISS/403")  # the origin refused; still a 403 to the user
    assert blocked("TCP_DENIED_REPLY/200")  # http_reply_access deny
    assert blocked("TCP_DENIED/000")
    assert blocked("NONE_BLOCKED/302")
    assert not blocked("TCP_DENIED/407")
    assert not blocked("TCP_MISS/200")
    assert not blocked("NONE_NONE/503")
    assert not blocked("TCP_TUNNEL/200")


def test_usernames_and_mime_types() -> None:
    record = parse_squid(native(user="alice", method="GET", url="http://x.example/a.png", mime="image/png"))
    assert record.user == "alice"
    assert record.mime_type == "image/png"
    # %[un does not escape spaces: the user name spans fields but everything else still lines up.
    spaced = parse_squid(native(user="CN=J. Smith", method="GET", url="http://x.example/", mime="text/html"))
    assert spaced.user == "CN=J. Smith"
    assert spaced.mime_type == "text/html" and spaced.hierarchy == "HIER_DIRECT"
    assert parse_squid(native(user="alice%40example.com")).user == "alice%40example.com"


def test_variable_whitespace_and_trailing_newline() -> None:
    line = "1795335350.143      2 127.0.0.1 TCP_MISS/200 626 GET http://127.0.0.1:18080/ - HIER_DIRECT/127.0.0.1 text/html"
    assert parse_line(line + "\r\n") == parse_line(line.replace(" ", "\t", 3) + "\n")


def test_timestamp_precision_variants() -> None:
    assert parse_squid(native(ts="1795335350")).timestamp == utc(2026, 11, 22, 8, 15, 50)
    assert parse_squid(native(ts="1795335350.5")).timestamp == utc(2026, 11, 22, 8, 15, 50, 500000)
    assert parse_squid(native(ts="1795335350.000")).timestamp == utc(2026, 11, 22, 8, 15, 50)
    assert parse_squid(native(ts="0.001")).timestamp == utc(1970, 1, 1, 0, 0, 0, 1000)


def test_record_is_immutable_and_comparable() -> None:
    record = parse_squid(native())
    with pytest.raises(AttributeError):
        record.bytes = 1  # type: ignore[misc]
    assert isinstance(record, LogRecord)
    assert record == parse_squid(native())
    assert record._replace(bytes=1).bytes == 1
    assert not hasattr(record, "__dict__")


# --- garbage ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("hello world", "too few fields"),
        (native(ts="yesterday"), "bad timestamp"),
        (native(ts="1795335350.1x3"), "bad timestamp"),
        (native(ts="-5.000"), "bad timestamp"),
        (native(client="999.1.1.1"), "bad client address"),
        (native(client="host..example"), "bad client address"),
        (native(client="10.1.2.300"), "bad client address"),
        (native(code="TCP_MISS-200"), "bad result code/status"),
        (native(code="TCP_MISS/2o0"), "bad http status"),
        (native(code="/200"), "bad result code/status"),
        (native(size="-1"), "bad byte count"),
        (native(size="lots"), "bad byte count"),
        (native(elapsed="fast"), "bad elapsed time"),
        (native(hier="HIER_DIRECT"), "bad hierarchy/peer"),
        (native(hier="/1.2.3.4"), "bad hierarchy/peer"),
        ('10.0.0.1 - - [22/Nov/2026:09:15:50 +0100] "GET http://a/ HTTP/1.1" 200 12 TCP_MISS:HIER_DIRECT',
         "bad timestamp"),
    ],
)
def test_bad_native_lines(line: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_squid(line)
    assert caught.value.reason == reason


def test_parse_lines_counts_rejects_and_never_raises() -> None:
    good = native()
    lines = [good, "garbage", "", good, native(size="x"), "   ", "\x00\xff binary junk", good] + ["nope"] * 20
    summary = Summary(max_errors=3)
    results = list(parse_lines(lines, "squid", summary, start=101))
    assert [n for n, _ in results] == [101, 104, 108]
    assert summary.lines == len(lines)
    assert summary.parsed == 3
    assert summary.blank == 2
    assert summary.rejected == len(lines) - 3 - 2
    assert summary.errors == [(102, "too few fields"), (105, "bad byte count"), (107, "too few fields")]


def test_parse_lines_summary_counts_when_stopped_early() -> None:
    summary = Summary()
    iterator = parse_lines([native()] * 10, "squid", summary)
    next(iterator)
    next(iterator)
    iterator.close()
    assert (summary.lines, summary.parsed) == (2, 2)


def test_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        parse_line(native(), "apache")
    with pytest.raises(ValueError, match="unknown log format"):
        list(parse_lines([], "w3c"))


# --- common and combined -------------------------------------------------------------------------------------------

COMMON = '2001:db8::5 - bob [22/Nov/2026:09:15:50 +0100] "GET http://www.example.com/a.zip HTTP/1.1" 200 5120 TCP_MISS:HIER_DIRECT'
COMBINED = (
    '10.8.0.6 - - [22/Nov/2026:09:15:50 +0100] "GET http://news.example.org/ HTTP/1.1" 304 0 '
    '"https://www.example.com/start?x=1" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36" '
    "TCP_REFRESH_UNMODIFIED:HIER_DIRECT"
)


def test_common_line() -> None:
    record = parse_common(COMMON)
    assert record.timestamp == utc(2026, 11, 22, 8, 15, 50)  # +0100 local time converted to UTC
    assert record.client_ip == "2001:db8::5"
    assert record.user == "bob"
    assert (record.method, record.url, record.http_status, record.bytes) == (
        "GET", "http://www.example.com/a.zip", 200, 5120)
    assert (record.result_code, record.hierarchy) == ("TCP_MISS", "HIER_DIRECT")
    assert record.destination == "www.example.com"
    assert record.elapsed_ms is None and record.peer is None and record.mime_type is None
    assert record.user_agent is None and record.referer is None
    assert parse_line(COMMON, "common") == record


def test_common_negative_offset_and_dash_bytes() -> None:
    line = '10.0.0.1 - - [01/Jan/2027:01:30:00 -0530] "CONNECT [2001:db8::9]:443 HTTP/1.1" 407 - TCP_DENIED:HIER_NONE'
    record = parse_common(line)
    assert record.timestamp == utc(2027, 1, 1, 7, 0, 0)
    assert record.bytes == 0
    assert record.destination == "[2001:db8::9]:443" and record.destination_is_ip
    assert not record.blocked


def test_combined_line() -> None:
    record = parse_combined(COMBINED)
    assert record.referer == "https://www.example.com/start?x=1"
    assert record.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36"
    assert (record.result_code, record.hierarchy, record.http_status, record.bytes) == (
        "TCP_REFRESH_UNMODIFIED", "HIER_DIRECT", 304, 0)
    assert record.destination_port == 80


def test_combined_dashes_and_encoded_agent() -> None:
    line = ('10.8.0.7 - alice [22/Nov/2026:09:15:50 +0000] "CONNECT api.github.com:443 HTTP/1.1" 200 7000 "-" '
            '"curl/8.5.0" TCP_TUNNEL:HIER_DIRECT')
    record = parse_combined(line)
    assert record.referer is None and record.user_agent == "curl/8.5.0" and record.user == "alice"
    encoded = line.replace('"curl/8.5.0"', '"Mozilla/5.0%20(X11;%20Linux%20x86_64)"')
    assert parse_combined(encoded).user_agent == "Mozilla/5.0 (X11; Linux x86_64)"
    literal_percent = line.replace('"curl/8.5.0"', '"Agent 100%20 sure"')
    assert parse_combined(literal_percent).user_agent == "Agent 100%20 sure"


def test_combined_quote_inside_user_agent() -> None:
    line = ('10.8.0.7 - - [22/Nov/2026:09:15:50 +0000] "GET http://a.example/ HTTP/1.1" 200 10 "-" '
            '"Weird "quoted" agent" TCP_MISS:HIER_DIRECT')
    assert parse_combined(line).user_agent == 'Weird "quoted" agent'


@pytest.mark.parametrize(
    ("fmt", "line", "reason"),
    [
        ("common", "", "not a common-format line"),
        ("common", COMMON.replace("[22/Nov/2026", "[22-Nov-2026"), "bad CLF timestamp"),
        ("common", COMMON.replace("Nov", "Foo"), "bad CLF timestamp"),
        ("common", COMMON.replace("+0100", "CET"), "bad CLF timestamp"),
        ("common", COMMON.replace("2001:db8::5", "2001:db8::zz"), "bad client address"),
        ("common", COMMON.replace(" TCP_MISS:HIER_DIRECT", ""), "not a common-format line"),
        ("common", COMMON.replace("TCP_MISS:HIER_DIRECT", "TCP_MISS"), "bad squid code:hierarchy"),
        ("common", COMMON.replace(" 200 ", " OK "), "not a common-format line"),
        ("combined", COMMON, "missing referer/user-agent"),
        ("combined", COMBINED.replace('" "', '"_"'), "missing referer/user-agent"),
        ("combined", "1795335350.143 2 127.0.0.1 TCP_MISS/200 626 GET http://a/ - HIER_DIRECT/1.2.3.4 text/html",
         "not a combined-format line"),
    ],
)
def test_bad_clf_lines(fmt: str, line: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_line(line, fmt)
    assert caught.value.reason == reason


def test_parse_lines_combined_mixed() -> None:
    summary = Summary()
    records = list(parse_lines([COMBINED, COMMON, COMBINED + "\n"], "combined", summary))
    assert [n for n, _ in records] == [1, 3]
    assert summary.errors == [(2, "missing referer/user-agent")]


# --- status text -----------------------------------------------------------------------------------------------------

def test_status_text() -> None:
    assert status_text(200, "CONNECT") == "200 Connection established"
    assert status_text(200) == "200 OK"
    assert status_text(200, "GET") == "200 OK"
    assert status_text(403) == "403 Forbidden"
    assert status_text(407) == "407 Proxy Authentication Required"
    assert status_text(503, "CONNECT") == "503 Service Unavailable"
    assert status_text(0) == "0 No response"
    assert status_text(599) == "599"


@pytest.mark.parametrize("fmt", ["squid", "common", "combined"])
def test_auth_capture_407_and_user(fmt: str) -> None:
    lines = (FIXTURES / f"squid57_auth_{fmt}.log").read_text().splitlines()
    records = [parse_line(line, fmt) for line in lines]
    challenge, authed = records[7], records[8]
    assert (challenge.result_code, challenge.http_status, challenge.bytes) == ("TCP_DENIED", 407, 3627)
    assert challenge.user is None and not is_blocked(challenge)
    assert (authed.result_code, authed.http_status, authed.user) == ("TCP_MISS", 200, "alice")
    ipv6 = records[6]
    assert ipv6.destination == "[2001:db8::dead]:443" and ipv6.destination_host == "2001:db8::dead"
    assert ipv6.destination_is_ip and ipv6.blocked
    assert [r.blocked for r in records] == [False, False, True, False, True, True, True, False, False]


def test_sparse_timestamps_across_minutes_days_and_years_match_the_epoch() -> None:
    # Each line in its own second (a file spanning months): the per-minute memo must give what the epoch gives.
    seconds = [0, 59, 60, 61, 3599, 3600, 86399, 86400, 951782399, 951782400, 1798761599, 1798761600, 1798761661]
    for value in [*seconds, *reversed(seconds)]:
        line = f"{value}.007      1 10.0.0.1 TCP_MISS/200 10 GET http://a.example/ - HIER_DIRECT/192.0.2.1 text/html"
        expected = datetime.fromtimestamp(value, UTC).replace(microsecond=7000)
        assert parse_squid(line).timestamp == expected


@pytest.mark.parametrize(("status", "code", "blocked"), [
    (403, "TCP_MISS", True), (200, "TCP_DENIED", True), (200, "TCP_DENIED_REPLY", True), (0, "NONE_BLOCKED", True),
    (407, "TCP_DENIED", False), (407, "TCP_MISS", False), (200, "TCP_MISS", False), (503, "NONE_NONE", False),
])
def test_a_request_is_blocked_on_403_or_a_denied_code_but_never_on_407(status: int, code: str,
                                                                        blocked: bool) -> None:
    record = parse_squid(f"1795335350.143 2 10.0.0.5 {code}/{status:03d} 626 GET http://a.example/ - HIER_NONE/- -")
    assert is_blocked(record) is blocked
    assert entry_row(record)[COLUMNS.index("blocked")] is blocked


def test_a_client_address_with_a_zone_index_is_kept_without_the_zone() -> None:
    record = parse_squid("1795335350.143 2 fe80::1%eth0 TCP_MISS/200 626 GET http://a.example/ - HIER_DIRECT/- -")
    assert record.client_ip == "fe80::1"
    with pytest.raises(ParseError, match="bad client address"):
        parse_squid("1795335350.143 2 fe80::zz%eth0 TCP_MISS/200 626 GET http://a.example/ - HIER_DIRECT/- -")
    record = parse_squid("1795335350.143 2 FE80::0001 TCP_MISS/200 626 GET http://a.example/ - HIER_DIRECT/- -")
    assert record.client_ip == "fe80::1"


@pytest.mark.parametrize("seconds", ["99999999999999999999", "253402300800", "9" * 400])
def test_a_timestamp_past_any_date_is_a_bad_line_and_the_next_line_still_counts(seconds: str) -> None:
    lines = [f"{seconds}.143 2 10.0.0.5 TCP_MISS/200 626 GET http://a.example/ - HIER_NONE/- -",
             "1795335350.143 2 10.0.0.5 TCP_MISS/200 626 GET http://a.example/ - HIER_NONE/- -"]
    with pytest.raises(ParseError, match="bad timestamp"):
        parse_squid(lines[0])
    summary = Summary()
    records = list(parse_lines(lines, "squid", summary))
    assert [(number, record.timestamp.year) for number, record in records] == [(2, 2026)]
    assert (summary.lines, summary.parsed, summary.rejected) == (2, 1, 1)
