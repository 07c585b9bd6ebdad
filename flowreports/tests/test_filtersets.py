"""FlowReportFilterSet over the fixed flows: what each filter keeps, and each bad value's 400."""

import datetime as dt

import pytest
from django.http import QueryDict

from flowreports.filtersets import FlowReportFilterSet, parse_endpoint, time_window
from flowreports.models import FlowReport
from vpnmonitor.api.exceptions import BadParameter

pytestmark = pytest.mark.django_db

WINDOW = {"start": "2025-02-22", "end": "2025-02-23"}


def names(params, flows):
    data = QueryDict(mutable=True)
    data.update({**WINDOW, **params})
    by_pk = {f.pk: name for name, f in flows.items()}
    filtered = FlowReportFilterSet(data, FlowReport.objects.all()).qs
    return sorted(by_pk[pk] for pk in filtered.values_list("pk", flat=True))


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["f1", "f2", "f3", "f4", "f7"]),
    ({"subscriber_id": "001019756139935"}, ["f1", "f2"]),
    ({"subscriber_id": "nobody"}, []),
    ({"protocol": "17"}, ["f1"]),
    ({"protocol": "6"}, ["f2", "f3", "f4", "f7"]),
    ({"source": "192.168.1.101"}, ["f3", "f4"]),
    ({"source": "192.168.1.101:30001"}, ["f4"]),
    ({"source": ":443"}, ["f2", "f7"]),
    ({"source": "2001:db8:1::5"}, ["f7"]),
    ({"source": "2001:DB8:1:0::5"}, ["f7"]),
    ({"source": "[2001:db8:1::5]:443"}, ["f7"]),
    ({"source": "[2001:db8:1::5]:80"}, []),
    ({"source": "[2001:db8:1::5]"}, ["f7"]),
    ({"destination": "1.1.1.1:443"}, ["f3", "f4"]),
    ({"destination": "8.8.8.8"}, ["f1"]),
    ({"destination": ":53"}, ["f1"]),
    ({"direction": "uplink"}, ["f1", "f3", "f4", "f7"]),
    ({"direction": "downlink"}, ["f2"]),
    ({"action": "drop"}, ["f4"]),
    ({"action": "allow"}, ["f1", "f2", "f3", "f7"]),
    ({"subscriber_id": "001019756139936", "action": "allow", "protocol": "6"}, ["f3"]),
    # The window is on start_time, whole UTC days, end inclusive to its last microsecond.
    ({"start": "2025-02-21", "end": "2025-02-21"}, ["f5"]),
    ({"start": "2025-02-22", "end": "2025-02-22"}, ["f1", "f3", "f4"]),
    ({"start": "2025-02-24", "end": "2025-02-24"}, ["f6"]),
    ({"start": "2025-02-21", "end": "2025-02-24"}, ["f1", "f2", "f3", "f4", "f5", "f6", "f7"]),
    # Empty values are absent values.
    ({"protocol": "", "source": ""}, ["f1", "f2", "f3", "f4", "f7"]),
])
def test_filter_keeps_exactly_the_matching_flows(flows, params, expected):
    assert names(params, flows) == expected


@pytest.mark.parametrize(("params", "parameter"), [
    ({"protocol": "0"}, "protocol"),
    ({"protocol": "256"}, "protocol"),
    ({"protocol": "tcp"}, "protocol"),
    ({"protocol": "6.0"}, "protocol"),
    ({"source": "192.168.1.300"}, "source"),
    ({"source": "192.168.1.1:"}, "source"),
    ({"source": "192.168.1.1:65536"}, "source"),
    ({"source": "192.168.1.1:-1"}, "source"),
    ({"source": ":http"}, "source"),
    ({"source": "example.com:443"}, "source"),
    ({"destination": "[2001:db8::1"}, "destination"),
    ({"destination": "[192.0.2.1]:80"}, "destination"),
    ({"destination": "[2001:db8::1]443"}, "destination"),
    ({"destination": "2001:db8::1:443:99999"}, "destination"),
    ({"destination": "fe80::1%eth0"}, "destination"),
    ({"direction": "sideways"}, "direction"),
    ({"direction": "UPLINK"}, "direction"),
    ({"action": "deny"}, "action"),
    ({"start": "2025-02-30"}, "start"),
    ({"start": "22-02-2025"}, "start"),
    ({"start": "2025-02-22T00:00:00"}, "start"),
    ({"end": "yesterday"}, "end"),
    ({"start": "2025-02-24", "end": "2025-02-23"}, "start"),
    ({"subscriber_id": "x" * 129}, "subscriber_id"),
])
def test_each_bad_value_raises_bad_parameter_naming_it(flows, params, parameter):
    with pytest.raises(BadParameter) as raised:
        names(params, flows)
    assert raised.value.parameter == parameter


@pytest.mark.parametrize(("value", "parsed"), [
    ("192.0.2.1", ("192.0.2.1", None)),
    ("192.0.2.1:8080", ("192.0.2.1", 8080)),
    (":0", (None, 0)),
    (":65535", (None, 65535)),
    ("2001:db8::1", ("2001:db8::1", None)),
    # A bare IPv6 address that ends in what looks like a port is still one address.
    ("2001:db8::1:80", ("2001:db8::1:80", None)),
    ("::", ("::", None)),
    ("::1", ("::1", None)),
    ("[::1]:53", ("::1", 53)),
    ("::ffff:192.0.2.1", ("::ffff:192.0.2.1", None)),
])
def test_parse_endpoint(value, parsed):
    assert parse_endpoint("source", value) == parsed


def test_window_defaults_to_the_seven_days_before_now():
    now = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
    assert time_window({}, now=now) == (now - dt.timedelta(days=7), now)


def test_window_without_start_ends_at_the_end_day_and_starts_seven_days_earlier():
    start, end = time_window({"end": "2025-01-10"}, now=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    assert end == dt.datetime(2025, 1, 10, 23, 59, 59, 999999, tzinfo=dt.UTC)
    assert start == end - dt.timedelta(days=7)


def test_a_start_in_the_future_without_end_is_after_now():
    with pytest.raises(BadParameter) as raised:
        time_window({"start": "2025-03-02"}, now=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    assert raised.value.message == "Invalid value for 'start': must not be after end (2025-03-01) (got '2025-03-02')."
