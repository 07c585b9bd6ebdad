"""The fused native-format path (proxylogs.ingest.rows) against parse_lines + entry_row, line for line."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from proxylogs.catalogue import WAF_CATEGORIES
from proxylogs.ingest.parse import Summary, parse_lines
from proxylogs.ingest.rows import SquidRows
from proxylogs.services import WafTagger, _client_columns, entry_row
from vpnmonitor.testing.real import real_fixture

FIXTURES = Path(__file__).parent / "fixtures"
SOURCE_ID = 7


def waf_tagger():
    return WafTagger([SimpleNamespace(name=name, pattern=pattern) for name, _label, _text, pattern in WAF_CATEGORIES])


def reference(lines, start, waf):
    """What the import stored before the fused path: parse_lines, then entry_row for each record."""
    summary = Summary(max_errors=10)
    rows, samples = [], []
    for number, record in parse_lines(lines, "squid", summary, start=start):
        row = entry_row(record, source_id=SOURCE_ID, waf=waf)
        if row is None:
            samples.append([number, "value out of range"])
        else:
            rows.append(row)
    return rows, summary, samples


def fused(native, lines, start):
    summary = Summary(max_errors=10)
    samples = []
    rows = native.rows(lines, start, summary, samples)
    return rows, summary, samples


def assert_same_as_reference(lines, passes=3):
    """Each pass over the lines (caches warmer each time) gives the reference's rows, counts and samples."""
    waf = waf_tagger()
    native = SquidRows(source_id=SOURCE_ID, waf=waf, entry_row=entry_row, client_columns=_client_columns)
    for number in range(passes):
        start = 1 + number * len(lines)
        want_rows, want_summary, want_samples = reference(lines, start, waf)
        rows, summary, samples = fused(native, lines, start)
        for line, got, want in zip(lines, rows, want_rows, strict=False):
            assert got == want, line
        assert len(rows) == len(want_rows)
        assert (summary.lines, summary.parsed, summary.rejected, summary.blank, summary.errors) == (
            want_summary.lines, want_summary.parsed, want_summary.rejected, want_summary.blank, want_summary.errors)
        assert samples == want_samples
    return native


def native_line(client="10.8.0.6", code="TCP_TUNNEL/200", size="5123", method="CONNECT", url="www.example.com:443",
                user="-", hier="HIER_DIRECT/93.184.216.34", mime="-", elapsed="  1534", ts="1795335350.143"):
    return f"{ts} {elapsed} {client} {code} {size} {method} {url} {user} {hier} {mime}\n"


ODD_LINES = [
    "", "\n", "   \n", "hello world\n", "\t\r\n",
    native_line(ts="yesterday"), native_line(ts="1795335350.1x3"), native_line(ts="-5.000"),
    native_line(ts="1795335350"), native_line(ts="1795335350.5"), native_line(ts="1795335350.000001"),
    native_line(ts="1795335350.+12"), native_line(ts="1795335350.-12"), native_line(ts="١٧٩٥٣٣٥٣٥٠.143"),
    native_line(ts="0.001"), native_line(ts="1795335350.١٤٣"),
    native_line(client="999.1.1.1"), native_line(client="host..example"), native_line(client="10.1.2.300"),
    native_line(client="2001:DB8::0:5"), native_line(client="desk-12.corp.example"), native_line(client="::ffff:10.0.0.1"),
    native_line(code="TCP_MISS-200"), native_line(code="TCP_MISS/2o0"), native_line(code="/200"),
    native_line(code="TCP_MISS/+200"), native_line(code="TCP_MISS/1000"), native_line(code="TCP_MISS/999"),
    native_line(code="TCP_MISS/-1"), native_line(code="X" * 65 + "/200"), native_line(code="TCP_DENIED/407"),
    native_line(code="TCP_DENIED/200"), native_line(code="NONE_NONE/000"), native_line(code="TCP_MISS_ABORTED/403"),
    native_line(code="TCP-MISS/200"),
    native_line(size="-1"), native_line(size="lots"), native_line(size="1_000"), native_line(size="+5"),
    native_line(size=str(2**63)), native_line(size=str(2**63 - 1)),
    native_line(elapsed="fast"), native_line(elapsed=str(2**31)), native_line(elapsed=str(2**31 - 1)),
    native_line(elapsed="-3"),
    native_line(hier="HIER_DIRECT"), native_line(hier="/1.2.3.4"), native_line(hier="HIER_NONE/"),
    native_line(hier="HIER_NONE/-"), native_line(hier="H" * 65 + "/-"), native_line(hier="HIER_DIRECT/" + "p" * 256),
    native_line(user="bob smith"), native_line(user="u" * 256), native_line(user="alice@corp.example"),
    native_line(method="M" * 33), native_line(method="GET", url="http://www.example.com/a/b.tar.gz?x=1"),
    native_line(method="GET", url="-"), native_line(method="CONNECT", url="-"), native_line(url="[2001:db8::1]:443"),
    native_line(method="GET", url="HTTP://WWW.Example.COM.:8080/x"), native_line(method="GET", url="error:invalid-request"),
    native_line(method="GET", url="http://a.example/" + "x" * 300),
    native_line(method="GET", url="http://" + "d" * 260 + ".example.com/"),
    native_line(url="c" * 250 + ".example.com:443"),
    native_line(method="GET", url="http://shop.example/item?id=1%20UNION%20SELECT%20password%20FROM%20users"),
    native_line(method="GET", url="http://www.example.com/../../etc/passwd"),
    native_line(mime="m" * 256), native_line(mime="text/html;charset=utf-8"),
    native_line().replace(" ", "\t", 3), native_line().rstrip("\n") + "\r\n", native_line().rstrip("\n"),
    native_line() + "extra",
    "\x00\xff binary junk\n",
]


def generated_lines(count, seed=3):
    """Real-shaped lines: sparse timestamps across minutes, days and a year end, repeated clients and URLs."""
    rng = random.Random(seed)
    clients = [f"10.{n // 250}.{n % 250}.{n % 7 + 1}" for n in range(300)] + ["2001:db8::7", "laptop-3.corp.example"]
    hosts = ["www.google.com", "fonts.gstatic.com", "www.bbc.co.uk", "203.0.113.9", "[2001:db8::2]", "ads.example"]
    stamp = 1798761000.0  # 2026-12-31 23:10 UTC, so the lines cross a year
    lines = []
    for _ in range(count):
        stamp += rng.choice([0.0, 0.004, 0.5, 1.0, 59.0, 61.0, 3600.0, 86400.0])
        host = rng.choice(hosts)
        if rng.random() < 0.5:
            code, method, url, hier, mime = "TCP_TUNNEL/200", "CONNECT", f"{host}:443", f"HIER_DIRECT/{host}", "-"
        else:
            code = rng.choice(["TCP_MISS/200", "TCP_MISS/304", "TCP_DENIED/403", "TCP_DENIED/407", "TCP_HIT/200"])
            method = rng.choice(["GET", "GET", "POST", "HEAD"])
            url = f"http://{host}{rng.choice(['/', '/a.js', '/img/x.PNG', '/s?q=1', '/f.tar.gz'])}"
            hier, mime = rng.choice(["HIER_DIRECT/" + host, "HIER_NONE/-"]), "text/html"
        lines.append(f"{stamp:.3f} {rng.randint(0, 99999):6d} {rng.choice(clients)} {code} {rng.randint(0, 10**7)} "
                     f"{method} {url} {rng.choice(['-', '-', 'bob'])} {hier} {mime}\n")
    return lines


@pytest.mark.parametrize("name", ["squid_access.log", "squid57_auth_squid.log", "squid57_harness_squid.log"])
def test_every_line_of_the_captured_logs_gives_the_reference_row(name):
    lines = (FIXTURES / name).read_bytes().decode().splitlines(keepends=True)
    assert_same_as_reference(lines)


def test_every_line_of_the_shared_real_log_gives_the_reference_row():
    # CRLF line ends, no newline after the last line, user names and a CONNECT to an http:// URL.
    lines = real_fixture("squid/squid_to_json/access.log").read_bytes().decode().splitlines(keepends=True)
    assert len(lines) == 3
    assert_same_as_reference(lines)


def test_odd_lines_give_the_reference_rows_rejections_and_samples():
    lines = ODD_LINES + [native_line()] + ODD_LINES[::-1]
    assert_same_as_reference(lines)


def test_generated_lines_give_the_reference_rows_and_take_the_fast_path_once_warm():
    lines = generated_lines(3000)
    native = assert_same_as_reference(lines, passes=2)
    # The first pass teaches it the result codes; the second takes every line itself.
    fallbacks_after_two = native.fallbacks
    fused(native, lines, 1)
    assert native.fallbacks == fallbacks_after_two
    assert fallbacks_after_two < 20
