"""Proxy traffic: the strict check of ingested records and the response shapes (numbers as strings)."""

import datetime as dt
import functools
import ipaddress
from typing import Annotated, NamedTuple

import msgspec
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vpnmonitor.api.params import parse_datetime_value
from vpnmonitor.timeseries import format_timestamp

MAX_RECORDS = 10_000
MAX_ID = 2**63 - 1
# Per record and per 15 minutes: a petabyte, 10^15 requests. Far above what a proxy worker
# can move, and low enough that 10,000 such records summed into one row still fit a bigint.
MAX_COUNTER = 10**15
EARLIEST_TS = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Workers' clocks drift; anything further ahead than this is a broken clock, not traffic.
FUTURE_TOLERANCE = dt.timedelta(days=1)
# A 400 itemises the first this-many bad records and counts the rest.
MAX_REPORTED_RECORDS = 100


class TrafficRecord(NamedTuple):
    """One checked record of a batch (a named tuple: cheap to build 10,000 of, and immutable)."""

    ts: dt.datetime
    user_id: int
    order_id: int
    port: int
    protocol: str
    ip_out: str
    ip_from: str
    peer_id: str
    worker: str
    domain: str
    error: str
    count: int
    bytes_sent: int
    bytes_received: int
    error_count: int
    duration_ms: int
    max_concurrency: int


class FieldError(ValueError):
    pass


def _integer(value, minimum, maximum):
    # JSON integers only: no strings, floats or booleans (bool is an int subclass in Python).
    if type(value) is not int:
        raise FieldError("must be an integer")
    if not minimum <= value <= maximum:
        raise FieldError(f"must be between {minimum} and {maximum}")
    return value


def _text(value, max_length):
    if not isinstance(value, str):
        raise FieldError("must be a string")
    if len(value) > max_length:
        raise FieldError(f"must be at most {max_length} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError("must be valid Unicode text") from None
    if not value.isprintable():
        raise FieldError("must not contain control characters")
    return value


def _ts(value, now):
    if not isinstance(value, str) or len(value) > 40:
        raise FieldError('must be a string "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time')
    if len(value.strip()) <= 10:
        raise FieldError("must include a time of day")
    try:
        moment = parse_datetime_value(value)
    except (ValueError, OverflowError):
        raise FieldError('must be "YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time') from None
    if moment < EARLIEST_TS:
        raise FieldError("must not be before 2000-01-01")
    if moment > now + FUTURE_TOLERANCE:
        raise FieldError("must not be more than a day in the future")
    return moment


def _ip(value):
    value = _text(value, 45)
    if value == "":
        return ""
    try:
        return _canonical_ip(value)
    except ValueError:
        raise FieldError("must be an IPv4 or IPv6 address or empty") from None


@functools.lru_cache(maxsize=65536)
def _canonical_ip(text):
    # Workers send the same few addresses over and over; parsing them is most of a record's check.
    return str(ipaddress.ip_address(text))


def _counter(value):
    return _integer(value, 0, MAX_COUNTER)


def _domain(value):
    value = _text(value, 255).strip().lower()
    if not value:
        raise FieldError("must not be empty")
    if " " in value:
        raise FieldError("must not contain spaces")
    return value


# field -> (required, default, check). The order is the order errors are reported in.
RECORD_FIELDS = {
    "ts": (True, None, None),
    "user_id": (True, None, lambda v: _integer(v, 0, MAX_ID)),
    "order_id": (True, None, lambda v: _integer(v, 0, MAX_ID)),
    "port": (False, 0, lambda v: _integer(v, 0, 65535)),
    "protocol": (False, "", lambda v: _text(v, 16)),
    "ip_out": (False, "", _ip),
    "ip_from": (False, "", _ip),
    "peer_id": (False, "", lambda v: _text(v, 100)),
    "worker": (False, "", lambda v: _text(v, 100)),
    # Host names are case-insensitive: one domain is one row whatever case a worker sends.
    "domain": (True, None, _domain),
    "error": (False, "", lambda v: _text(v, 200)),
    "count": (True, None, _counter),
    "bytes_sent": (False, 0, _counter),
    "bytes_received": (False, 0, _counter),
    "error_count": (False, 0, _counter),
    "duration_ms": (False, 0, _counter),
    "max_concurrency": (False, 0, _counter),
}


# (field, default, max length) of the optional text fields, in TrafficRecord order.
_TEXTS = (("protocol", 16), ("ip_out", 45), ("ip_from", 45), ("peer_id", 100), ("worker", 100))
_COUNTERS = ("bytes_sent", "bytes_received", "error_count", "duration_ms", "max_concurrency")
_FIELD_NAMES = frozenset(RECORD_FIELDS)


def _quick_record(raw, now, tenant):
    """The TrafficRecord of a record that passes every check, or None (check_record() then names the
    problems). The same rules as RECORD_FIELDS, inlined: most batches are entirely valid."""
    if not (type(raw) is dict and raw.keys() <= _FIELD_NAMES):
        return None
    get = raw.get
    user_id, order_id, port, count = get("user_id"), get("order_id"), get("port", 0), get("count")
    if not (type(user_id) is int and type(order_id) is int and type(port) is int and type(count) is int
            and 0 <= user_id <= MAX_ID and 0 <= order_id <= MAX_ID and 0 <= port <= 65535
            and 0 <= count <= MAX_COUNTER and (tenant is None or user_id == tenant)):
        return None
    counters = []
    for name in _COUNTERS:
        value = get(name, 0)
        if type(value) is not int or not 0 <= value <= MAX_COUNTER:
            return None
        counters.append(value)
    if counters[2] > count:
        return None
    texts = []
    for name, max_length in _TEXTS:
        value = get(name, "")
        # isprintable() is False for lone surrogates too, so printable text always encodes as UTF-8.
        if type(value) is not str or len(value) > max_length or not value.isprintable():
            return None
        texts.append(value)
    error, domain = get("error", ""), get("domain")
    if not (type(error) is str and len(error) <= 200 and error.isprintable()
            and type(domain) is str and len(domain) <= 255 and domain.isprintable()):
        return None
    domain = domain.strip().lower()
    if not domain or " " in domain:
        return None
    try:
        ts = _ts(get("ts"), now)
        ip_out = texts[1] and _canonical_ip(texts[1])
        ip_from = texts[2] and _canonical_ip(texts[2])
    except (FieldError, ValueError):
        return None
    return TrafficRecord(ts, user_id, order_id, port, texts[0], ip_out, ip_from, texts[3], texts[4], domain,
                         error, count, *counters)


def check_record(raw, now, tenant=None):
    """A TrafficRecord from one JSON object, or {field: [problem]} naming every bad field."""
    record = _quick_record(raw, now, tenant)
    if record is not None:
        return record, None
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["must be an object"]}
    errors = {}
    values = {}
    for name, (required, default, check) in RECORD_FIELDS.items():
        if name not in raw:
            if required:
                errors[name] = ["is required"]
            else:
                values[name] = default
            continue
        try:
            values[name] = _ts(raw[name], now) if name == "ts" else check(raw[name])
        except FieldError as exc:
            errors[name] = [str(exc)]
    for name in raw:
        if name not in RECORD_FIELDS:
            errors[str(name)[:50]] = ["is not a field of a traffic record"]
    if "error_count" not in errors and "count" not in errors and "count" in values:
        if values["error_count"] > values["count"]:
            errors["error_count"] = ["must not exceed count"]
    if tenant is not None and "user_id" in values and values["user_id"] != tenant:
        errors["user_id"] = [f"this API key may only push records of user_id {tenant}"]
    if errors:
        return None, errors
    return TrafficRecord(**values), None


# ---- The fast path: a whole batch decoded and type-checked by msgspec in one pass ----

_ID = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
_COUNT = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]


def _bounded_text(max_length):
    return Annotated[str, msgspec.Meta(max_length=max_length)]


class _WireRecord(msgspec.Struct, forbid_unknown_fields=True):
    """RECORD_FIELDS as a msgspec type: types, ranges and lengths (the other rules follow in decode_batch)."""

    ts: _bounded_text(40)
    user_id: _ID
    order_id: _ID
    domain: _bounded_text(255)
    count: _COUNT
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    protocol: _bounded_text(16) = ""
    ip_out: _bounded_text(45) = ""
    ip_from: _bounded_text(45) = ""
    peer_id: _bounded_text(100) = ""
    worker: _bounded_text(100) = ""
    error: _bounded_text(200) = ""
    bytes_sent: _COUNT = 0
    bytes_received: _COUNT = 0
    error_count: _COUNT = 0
    duration_ms: _COUNT = 0
    max_concurrency: _COUNT = 0


class _WireBody(msgspec.Struct, forbid_unknown_fields=True):
    logs: list[_WireRecord]


_decode_body = msgspec.json.Decoder(_WireBody).decode


def decode_batch(raw, *, tenant=None, now=None):
    """The TrafficRecords of a raw JSON body when every record passes every check, else None.

    Accepts only what check_batch() accepts, and yields the same records; whatever it declines
    (bad JSON, a bad record, a batch too large) goes through json.loads() and check_batch(), which
    name the problems. Per distinct value, not per record: text, domains and addresses repeat.
    """
    try:
        logs = _decode_body(raw).logs
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    if len(logs) > MAX_RECORDS:
        return None
    latest = (now or timezone.now()) + FUTURE_TOLERANCE
    fromisoformat, utc = dt.datetime.fromisoformat, dt.UTC
    texts, domains, addresses, moments = {"": ""}, {}, {"": ""}, {}
    records = []
    append, new = records.append, tuple.__new__
    try:
        for r in logs:
            for value in (r.protocol, r.peer_id, r.worker, r.error):
                if value not in texts:
                    if not value.isprintable():
                        return None
                    texts[value] = value
            domain = domains.get(r.domain)
            if domain is None:
                domain = r.domain.strip().lower()
                if not r.domain.isprintable() or not domain or " " in domain:
                    return None
                domains[r.domain] = domain
            ip_out, ip_from = addresses.get(r.ip_out), addresses.get(r.ip_from)
            if ip_out is None:
                ip_out = addresses[r.ip_out] = _canonical_ip(r.ip_out) if r.ip_out.isprintable() else None
            if ip_from is None:
                ip_from = addresses[r.ip_from] = _canonical_ip(r.ip_from) if r.ip_from.isprintable() else None
            if ip_out is None or ip_from is None or r.error_count > r.count:
                return None
            if tenant is not None and r.user_id != tenant:
                return None
            ts = moments.get(r.ts)
            if ts is None:  # a worker's flush often stamps many records alike
                if len(r.ts) <= 10:
                    return None
                ts = fromisoformat(r.ts)
                ts = moments[r.ts] = ts.replace(tzinfo=utc) if ts.tzinfo is None else ts.astimezone(utc)
                if not EARLIEST_TS <= ts <= latest:
                    return None
            append(new(TrafficRecord, (ts, r.user_id, r.order_id, r.port, r.protocol, ip_out, ip_from, r.peer_id,
                                       r.worker, domain, r.error, r.count, r.bytes_sent, r.bytes_received,
                                       r.error_count, r.duration_ms, r.max_concurrency)))
    except (ValueError, OverflowError):
        return None
    return records


def check_batch(body, *, tenant=None, now=None):
    """Check a whole ingest body; returns the records or raises ValidationError naming index and field.

    The body is {"logs": [record, ...]}; a batch is all-or-nothing, so one bad record rejects it.
    """
    if not isinstance(body, dict):
        raise serializers.ValidationError({"logs": ['the body must be a JSON object {"logs": [...]}']})
    unknown = [key for key in body if key != "logs"]
    if unknown:
        raise serializers.ValidationError({str(unknown[0])[:50]: ["is not a field of the ingest body"]})
    logs = body.get("logs")
    if not isinstance(logs, list):
        raise serializers.ValidationError({"logs": ["is required and must be a list of records"]})
    now = now or timezone.now()
    records, bad, bad_total = [], {}, 0
    for index, raw in enumerate(logs):
        record, errors = check_record(raw, now, tenant)
        if errors:
            bad_total += 1
            if len(bad) < MAX_REPORTED_RECORDS:
                bad[index] = errors
        else:
            records.append(record)
    if bad:
        detail = {"logs": bad}
        if bad_total > len(bad):
            detail["batch"] = [f"{bad_total} of {len(logs)} records are invalid; the first "
                               f"{len(bad)} are listed"]
        raise serializers.ValidationError(detail)
    return records


# ---- Request and response shapes (OpenAPI); numbers are strings, as the spec documents ----


class TrafficRecordSerializer(serializers.Serializer):
    """The record as OpenAPI documents it. The checks themselves are check_record(): the same rules,
    without a DRF field per value, so that a batch of 10,000 is checked in a fraction of a second."""

    ts = serializers.DateTimeField(help_text='"YYYY-MM-DD HH:MM:SS" (UTC) or ISO 8601 date-time; from 2000-01-01 '
                                             "to a day ahead of the server's clock")
    user_id = serializers.IntegerField(min_value=0, max_value=MAX_ID)
    order_id = serializers.IntegerField(min_value=0, max_value=MAX_ID)
    port = serializers.IntegerField(min_value=0, max_value=65535, required=False, default=0)
    protocol = serializers.CharField(max_length=16, required=False, allow_blank=True, default="")
    ip_out = serializers.IPAddressField(required=False, allow_blank=True, default="")
    ip_from = serializers.IPAddressField(required=False, allow_blank=True, default="")
    peer_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    worker = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    domain = serializers.CharField(max_length=255, help_text="Stored lower-case")
    error = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                  help_text='Error type, "" for none')
    count = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER)
    bytes_sent = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER, required=False, default=0)
    bytes_received = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER, required=False, default=0)
    error_count = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER, required=False, default=0,
                                           help_text="At most count")
    duration_ms = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER, required=False, default=0)
    max_concurrency = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER, required=False, default=0)


class IngestSerializer(serializers.Serializer):
    logs = TrafficRecordSerializer(many=True, max_length=MAX_RECORDS)


@extend_schema_field({"type": "string", "example": "2026-03-15 10:15:00", "description": "UTC"})
class TimestampField(serializers.Field):
    """A datetime as "YYYY-MM-DD HH:MM:SS" (UTC)."""

    def to_representation(self, value):
        return format_timestamp(value)


class NumberString(serializers.CharField):
    """An integer the spec sends as a JSON string ("1542")."""

    def to_representation(self, value):
        return str(int(value or 0))


class TrafficPointSerializer(serializers.Serializer):
    bucket = TimestampField(source="slot")
    total_bytes_sent = NumberString()
    total_bytes_received = NumberString()
    bytes_total = NumberString()
    total_count = NumberString()


class RequestsPointSerializer(serializers.Serializer):
    bucket = TimestampField(source="slot")
    total_count = NumberString()
    total_errors = NumberString()


class ConcurrencyPointSerializer(serializers.Serializer):
    bucket = TimestampField(source="slot")
    max_concurrency = NumberString()
    total_count = NumberString()


class DomainSerializer(serializers.Serializer):
    domain = serializers.CharField()
    total_count = NumberString()
    bytes_total = NumberString()
    total_bytes_sent = NumberString()
    total_bytes_received = NumberString()
    total_errors = NumberString()


class ErrorTypeSerializer(serializers.Serializer):
    error = serializers.CharField()
    total_errors = NumberString()
    first_seen = TimestampField()
    last_seen = TimestampField()
    sample_domains = serializers.ListField(child=serializers.CharField(), help_text="Up to 3, most errors first")


class WebsiteSerializer(serializers.Serializer):
    domain = serializers.CharField()
    total_count = NumberString()
    bytes_total = NumberString()
    first_visit = TimestampField()
    last_visit = TimestampField()


class AnalyticsErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    path = serializers.CharField()
    timestamp = serializers.CharField()
