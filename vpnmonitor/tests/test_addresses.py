"""The canonical text of an IP address, as every app stores, filters on and compares it."""

import datetime as dt
import ipaddress

import pytest

from vpnmonitor.addresses import ZoneIndexError, canonical_ip, canonical_ip_or_none, unmapped


@pytest.mark.parametrize(("text", "canonical"), [
    ("192.0.2.1", "192.0.2.1"),
    ("2001:DB8:0:0::0001", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ("::FFFF:C000:0201", "::ffff:192.0.2.1"),
    ("::", "::"),
])
def test_an_address_has_one_spelling_and_an_ipv4_mapped_one_stays_ipv6(text, canonical):
    assert canonical_ip(text) == canonical
    assert canonical_ip_or_none(text) == canonical


@pytest.mark.parametrize(("text", "peer"), [
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("::ffff:10.8.0.6", "10.8.0.6"),
    ("192.0.2.1", "192.0.2.1"),
    ("2001:db8::1", "2001:db8::1"),
    ("::192.0.2.1", "::c000:201"),  # IPv4-compatible, deprecated: not a mapped IPv4 peer
])
def test_the_peer_of_an_ipv4_mapped_address_is_its_ipv4_address(text, peer):
    assert str(unmapped(ipaddress.ip_address(text))) == peer


@pytest.mark.parametrize("text", ["fe80::1%eth0", "fe80::1%1", "::ffff:192.0.2.1%3"])
def test_an_address_with_a_zone_index_is_refused(text):
    with pytest.raises(ZoneIndexError):
        canonical_ip(text)
    assert canonical_ip_or_none(text) is None


@pytest.mark.parametrize("text", [" 192.0.2.1", "192.0.2.1 ", "192.0.2.001", "192.0.2", "proxy.example", "",
                                  "192.0.2.0/24", "[2001:db8::1]"])
def test_anything_else_is_not_an_address(text):
    with pytest.raises(ValueError) as raised:
        canonical_ip(text)
    assert not isinstance(raised.value, ZoneIndexError)
    assert canonical_ip_or_none(text) is None


@pytest.mark.django_db
def test_the_database_gives_back_the_canonical_text_it_was_given():
    from flowreports.models import FlowReport
    from flowreports.services import add_flows

    start = dt.datetime(2025, 2, 22, 10, tzinfo=dt.UTC)
    # Through the flows' writer (on PostgreSQL it makes the day's partition).
    add_flows([FlowReport(source_ip=canonical_ip(text), destination_ip="192.0.2.1", protocol=6, packets=1, bytes=1,
                          start_time=start, end_time=start, exporter="test")
               for text in ("::FFFF:C000:0201", "2001:DB8::0001", "192.0.2.7")])
    stored = set(FlowReport.objects.values_list("source_ip", flat=True))
    assert stored == {"::ffff:192.0.2.1", "2001:db8::1", "192.0.2.7"}
    assert FlowReport.objects.filter(source_ip=canonical_ip("::ffff:c000:201")).count() == 1
