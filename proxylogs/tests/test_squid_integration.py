"""Send real traffic through a throwaway Squid and check that its own logs, in all three formats, parse correctly."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass

import pytest

from proxylogs.ingest.parse import LogRecord, Summary, parse_lines
from proxylogs.ingest.tail import read_new_lines
from proxylogs.tests.squid_harness import (
    BLOCKED_DOMAIN,
    DENIED_CONNECT_IP,
    DENIED_CONNECT_IP6,
    DENIED_CONNECT_PORT,
    ORIGIN_BODY,
    PRIVATE_PATH,
    SquidInstance,
    SquidUnavailableError,
    find_squid,
    proxy_connect,
    proxy_get,
    running_squid,
)

pytestmark = pytest.mark.integration

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
REFERER = "http://portal.example/start?from=test"
PAYLOAD = b"tunnelled bytes " * 64


def _unavailable(reason: str) -> None:
    if os.environ.get("VPNMONITOR_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"Squid integration required but unavailable: {reason}")
    pytest.skip(f"Squid integration skipped: {reason} (set VPNMONITOR_REQUIRE_INTEGRATION=1 to fail instead)")


@dataclass
class Traffic:
    squid: SquidInstance
    started: float
    responses: dict[str, tuple[int, bytes]]
    records: dict[str, list[LogRecord]]
    summaries: dict[str, Summary]
    seconds: float


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    if find_squid() is None:
        _unavailable("squid binary not found (apt-get install squid)")
    began = time.monotonic()
    started = time.time()
    try:
        with running_squid() as squid:
            origin = squid.origin_url
            responses = {
                "ok": proxy_get(squid, f"{origin}/", {"User-Agent": USER_AGENT, "Referer": REFERER}),
                "missing": proxy_get(squid, f"{origin}/nothere.zip", {"User-Agent": "curl/8.5.0"}),
                "blocked": proxy_get(squid, f"http://www.{BLOCKED_DOMAIN}/"),
                "tunnel": proxy_connect(squid, f"{squid.connect_host}:{squid.connect_port}", PAYLOAD),
                "denied_port": proxy_connect(squid, f"127.0.0.1:{DENIED_CONNECT_PORT}"),
                "denied_ip": proxy_connect(squid, f"{DENIED_CONNECT_IP}:443"),
                "denied_ip6": proxy_connect(squid, f"[{DENIED_CONNECT_IP6}]:443"),
            }
            if squid.auth_enabled:
                credentials = base64.b64encode(b"alice:secret").decode()
                responses["challenge"] = proxy_get(squid, f"{origin}{PRIVATE_PATH}report.pdf")
                responses["authed"] = proxy_get(squid, f"{origin}{PRIVATE_PATH}report.pdf",
                                                {"Proxy-Authorization": f"Basic {credentials}"})
            expected_lines = len(responses)
            records: dict[str, list[LogRecord]] = {}
            summaries: dict[str, Summary] = {}
            for fmt, path in (("squid", squid.access_log), ("common", squid.common_log),
                              ("combined", squid.combined_log)):
                squid.wait_for_lines(path, expected_lines)
                summary = Summary()
                lines = [line for batch in read_new_lines(path) for line in batch.lines]
                records[fmt] = [record for _, record in parse_lines(lines, fmt, summary)]
                summaries[fmt] = summary
    except SquidUnavailableError as exc:
        _unavailable(str(exc))
    return Traffic(squid, started, responses, records, summaries, time.monotonic() - began)


def _one(records: list[LogRecord], method: str, url_part: str, *, exact: bool = False) -> LogRecord:
    found = [r for r in records if r.method == method and (r.url == url_part if exact else url_part in r.url)]
    assert len(found) == 1, (method, url_part, records)
    return found[0]


def test_client_saw_expected_statuses(traffic: Traffic) -> None:
    statuses = {name: status for name, (status, _) in traffic.responses.items()}
    assert statuses["ok"] == 200 and traffic.responses["ok"][1] == ORIGIN_BODY
    assert statuses["missing"] == 404
    assert statuses["blocked"] == 403
    assert statuses["tunnel"] == 200 and traffic.responses["tunnel"][1] == PAYLOAD
    assert statuses["denied_port"] == statuses["denied_ip"] == statuses["denied_ip6"] == 403
    if traffic.squid.auth_enabled:
        assert statuses["challenge"] == 407
        assert statuses["authed"] == 200


@pytest.mark.parametrize("fmt", ["squid", "common", "combined"])
def test_every_logged_line_parses(traffic: Traffic, fmt: str) -> None:
    summary = traffic.summaries[fmt]
    assert summary.rejected == 0, summary.errors
    assert summary.parsed == len(traffic.responses)


@pytest.mark.parametrize("fmt", ["squid", "common", "combined"])
def test_records_match_the_traffic(traffic: Traffic, fmt: str) -> None:
    records = traffic.records[fmt]
    origin_authority = traffic.squid.origin_url.removeprefix("http://")
    origin_port = int(origin_authority.rpartition(":")[2])
    low = traffic.started - 2
    high = time.time() + 2
    for record in records:
        assert record.client_ip == "127.0.0.1"
        assert low <= record.timestamp.timestamp() <= high

    ok = _one(records, "GET", f"http://{origin_authority}/", exact=True)
    assert (ok.result_code, ok.http_status, ok.hierarchy) == ("TCP_MISS", 200, "HIER_DIRECT")
    assert ok.bytes > len(ORIGIN_BODY)  # body plus response headers
    assert (ok.destination, ok.destination_host, ok.destination_port) == (origin_authority, "127.0.0.1", origin_port)
    assert ok.destination_is_ip and not ok.blocked

    missing = _one(records, "GET", "/nothere.zip")
    assert (missing.result_code, missing.http_status) == ("TCP_MISS", 404)
    assert missing.bytes > 0 and not missing.blocked

    blocked = _one(records, "GET", BLOCKED_DOMAIN)
    assert (blocked.result_code, blocked.http_status, blocked.hierarchy) == ("TCP_DENIED", 403, "HIER_NONE")
    assert blocked.destination == f"www.{BLOCKED_DOMAIN}" and blocked.destination_port == 80
    assert not blocked.destination_is_ip and blocked.blocked and blocked.bytes > 0

    tunnel = _one(records, "CONNECT", f"127.0.0.1:{traffic.squid.connect_port}")
    assert (tunnel.result_code, tunnel.http_status) == ("TCP_TUNNEL", 200)
    assert tunnel.destination == f"127.0.0.1:{traffic.squid.connect_port}"
    assert tunnel.destination_is_ip and not tunnel.blocked
    assert tunnel.bytes >= len(PAYLOAD)  # the echoed payload plus "200 Connection established"

    for target, port in ((f"127.0.0.1:{DENIED_CONNECT_PORT}", DENIED_CONNECT_PORT),
                         (f"{DENIED_CONNECT_IP}:443", 443), (f"[{DENIED_CONNECT_IP6}]:443", 443)):
        denied = _one(records, "CONNECT", target)
        assert (denied.result_code, denied.http_status) == ("TCP_DENIED", 403)
        assert denied.destination == target and denied.destination_port == port
        assert denied.destination_is_ip and denied.blocked and denied.bytes > 0

    if traffic.squid.auth_enabled:
        private = [r for r in records if PRIVATE_PATH in r.url]
        challenge = [r for r in private if r.http_status == 407]
        authed = [r for r in private if r.http_status == 200]
        assert len(challenge) == 1 and len(authed) == 1
        assert challenge[0].result_code == "TCP_DENIED" and not challenge[0].blocked
        assert challenge[0].user is None
        assert authed[0].user == "alice" and authed[0].result_code == "TCP_MISS"


def test_native_format_extras(traffic: Traffic) -> None:
    records = traffic.records["squid"]
    origin_authority = traffic.squid.origin_url.removeprefix("http://")
    ok = _one(records, "GET", f"http://{origin_authority}/", exact=True)
    assert ok.mime_type == "text/html" and ok.peer == "127.0.0.1" and ok.elapsed_ms is not None
    assert ok.timestamp.microsecond % 1000 == 0  # milliseconds kept, nothing finer invented
    missing = _one(records, "GET", "/nothere.zip")
    assert missing.mime_type == "text/plain"
    assert _one(records, "GET", BLOCKED_DOMAIN).peer is None


def test_combined_format_headers(traffic: Traffic) -> None:
    records = traffic.records["combined"]
    origin_authority = traffic.squid.origin_url.removeprefix("http://")
    ok = _one(records, "GET", f"http://{origin_authority}/", exact=True)
    assert ok.user_agent == USER_AGENT
    assert ok.referer == REFERER
    assert _one(records, "GET", "/nothere.zip").user_agent == "curl/8.5.0"
    assert _one(records, "GET", BLOCKED_DOMAIN).referer is None


def test_formats_agree_on_each_request(traffic: Traffic) -> None:
    def key(record: LogRecord) -> tuple[object, ...]:
        return (record.method, record.url, record.http_status, record.bytes, record.result_code, record.hierarchy,
                record.user, record.destination, int(record.timestamp.timestamp()))

    native = sorted(key(r) for r in traffic.records["squid"])
    assert sorted(key(r) for r in traffic.records["common"]) == native
    assert sorted(key(r) for r in traffic.records["combined"]) == native


def test_runs_quickly(traffic: Traffic) -> None:
    assert traffic.seconds < 30
