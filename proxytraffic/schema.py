"""The proxy-traffic ingest schema: each record field and each rule declared once, in WireRecord.

Everything else is derived from it: the one-pass check of a valid batch (msgspec decodes and bounds
the whole body, then each distinct value passes its field's checks once), the field-by-field check that
names every problem of a bad batch in the 400, the checked TrafficRecord the services store, and the
OpenAPI request body (serializers.IngestSerializer).
"""

import datetime as dt
import functools
import ipaddress
from typing import Annotated, NamedTuple

import msgspec
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from vpnmonitor.api.params import parse_datetime_value

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
TS_FORMAT = '"YYYY-MM-DD HH:MM:SS" (UTC) or an ISO 8601 date-time'


class FieldError(ValueError):
    """A value breaks a rule of its field; the message completes "logs[3].port: ..."."""


# ---- The rules beyond type, range and length: check(value, now) -> the value to store ----


def printable(value, now):
    # isprintable() is False for lone surrogates too, so printable text always encodes as UTF-8.
    if not value.isprintable():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError("must be valid Unicode text") from None
        raise FieldError("must not contain control characters")
    return value


def domain_name(value, now):
    # Host names are case-insensitive: one domain is one row whatever case a worker sends.
    value = value.strip().lower()
    if not value:
        raise FieldError("must not be empty")
    if " " in value:
        raise FieldError("must not contain spaces")
    return value


def ip_address(value, now):
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


_fromisoformat = dt.datetime.fromisoformat


def moment(value, now):
    if len(value.strip()) <= 10:
        raise FieldError("must include a time of day")
    try:
        # Python's ISO parser alone takes what workers send; parse_datetime_value() the rest (spaces around).
        parsed = _fromisoformat(value)
        parsed = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except ValueError:
        try:
            parsed = parse_datetime_value(value)
        except (ValueError, OverflowError):
            raise FieldError(f"must be {TS_FORMAT}") from None
    except OverflowError:
        raise FieldError(f"must be {TS_FORMAT}") from None
    if parsed < EARLIEST_TS:
        raise FieldError("must not be before 2000-01-01")
    if parsed > now + FUTURE_TOLERANCE:
        raise FieldError("must not be more than a day in the future")
    return parsed


def excess_errors(count, error_count):
    """The problem of error_count when it breaks its rule against count, else None."""
    return "must not exceed count" if error_count > count else None


def foreign_tenant(user_id, tenant):
    """The problem of user_id when a key confined to `tenant` pushes another tenant's record, else None."""
    if tenant is not None and user_id != tenant:
        return f"this API key may only push records of user_id {tenant}"
    return None


# ---- The record ----


def _integer(low, high, description=None):
    return Annotated[int, msgspec.Meta(ge=low, le=high, description=description)]


def _text(max_length, *checks, description=None, invalid=None):
    """A string of at most max_length characters, then `checks` in order; `invalid` replaces the messages
    for a value that is not a string or is too long."""
    extra = {"checks": checks, "invalid": invalid} if invalid else {"checks": checks}
    return Annotated[str, msgspec.Meta(max_length=max_length, description=description, extra=extra)]


_ID = _integer(0, MAX_ID)
_COUNTER = _integer(0, MAX_COUNTER)
_ADDRESS = (printable, ip_address)


class WireRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One record as a proxy worker pushes it. A 400 lists a record's problems in this order, and
    TrafficRecord keeps it."""

    ts: _text(40, moment, invalid=f"must be a string {TS_FORMAT}",
              description='"YYYY-MM-DD HH:MM:SS" (UTC) or ISO 8601 date-time; from 2000-01-01 to a day ahead '
                          "of the server's clock")
    user_id: _integer(0, MAX_ID, "Tenant (the proxy account)")
    order_id: _ID
    port: _integer(0, 65535) = 0
    protocol: _text(16, printable) = ""
    ip_out: _text(45, *_ADDRESS, description="Outgoing address of the proxy: IPv4, IPv6 or empty") = ""
    ip_from: _text(45, *_ADDRESS, description="Client address: IPv4, IPv6 or empty") = ""
    peer_id: _text(100, printable) = ""
    worker: _text(100, printable) = ""
    domain: _text(255, printable, domain_name, description="Stored lower-case")
    error: _text(200, printable, description='Error type, "" for none') = ""
    count: _integer(0, MAX_COUNTER, "Requests")
    bytes_sent: _COUNTER = 0
    bytes_received: _COUNTER = 0
    error_count: _integer(0, MAX_COUNTER, "Failed requests, at most count") = 0
    duration_ms: _COUNTER = 0
    max_concurrency: _COUNTER = 0

    def __post_init__(self):
        problem = excess_errors(self.count, self.error_count)
        if problem:
            raise ValueError(problem)


class IngestBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /analytics/ingest."""

    logs: Annotated[list[WireRecord], msgspec.Meta(max_length=MAX_RECORDS)]


# ---- What the declarations give ----


class Field(NamedTuple):
    name: str
    required: bool
    default: object
    kind: type  # int or str, as sent
    check_type: object  # value -> value, raises FieldError: type, range, length
    checks: tuple  # then each check(value, now) in order


def _type_check(info, invalid):
    if isinstance(info, msgspec.inspect.IntType):
        low, high = info.ge, info.le

        def check_integer(value):
            # JSON integers only: no strings, floats or booleans (bool is an int subclass in Python).
            if type(value) is not int:
                raise FieldError(invalid or "must be an integer")
            if not low <= value <= high:
                raise FieldError(invalid or f"must be between {low} and {high}")
            return value

        return int, check_integer
    longest = info.max_length

    def check_string(value):
        if not isinstance(value, str):
            raise FieldError(invalid or "must be a string")
        if len(value) > longest:
            raise FieldError(invalid or f"must be at most {longest} characters")
        return value

    return str, check_string


def _fields(struct):
    fields = []
    for field in msgspec.inspect.type_info(struct).fields:
        info, extra = field.type, {}
        if isinstance(info, msgspec.inspect.Metadata):
            info, extra = info.type, info.extra or {}
        kind, check_type = _type_check(info, extra.get("invalid"))
        fields.append(Field(field.name, field.required, field.default, kind, check_type, extra.get("checks", ())))
    return tuple(fields)


FIELDS = _fields(WireRecord)
_FIELD_NAMES = frozenset(field.name for field in FIELDS)

# A checked record: WireRecord's fields in its order, ts as an aware UTC datetime, text and addresses as
# their checks left them. A named tuple: cheap to build 10,000 of, and a row for the COPY as it is.
TrafficRecord = NamedTuple("TrafficRecord", [
    (field.name, dt.datetime if moment in field.checks else field.kind) for field in FIELDS
])


def _chain(checks):
    """One check(value, now) that applies `checks` in order."""
    if len(checks) == 1:
        return checks[0]
    first, *rest = checks
    then = _chain(tuple(rest))
    return lambda value, now: then(first(value, now), now)


# (position, its checks as one) of the fields with checks beyond their type.
_CHECKED = tuple((index, _chain(field.checks)) for index, field in enumerate(FIELDS) if field.checks)
_USER_ID = TrafficRecord._fields.index("user_id")
_new_record = functools.partial(tuple.__new__, TrafficRecord)


def _checked_records(logs, tenant, now):
    """The TrafficRecords of decoded WireRecords when every value passes its field's checks, else None.

    Column by column, and per distinct value, not per record: text, domains, addresses and timestamps repeat.
    """
    if not logs:
        return []
    columns = list(zip(*map(msgspec.structs.astuple, logs), strict=True))
    try:
        for index, check in _CHECKED:
            checked = {value: check(value, now) for value in set(columns[index])}
            columns[index] = map(checked.__getitem__, columns[index])
        if tenant is not None and any(foreign_tenant(user_id, tenant) for user_id in set(columns[_USER_ID])):
            return None
    except FieldError:
        return None
    return list(map(_new_record, zip(*columns, strict=True)))


_decode_body = msgspec.json.Decoder(IngestBody).decode


def decode_batch(raw, *, tenant=None, now=None):
    """The TrafficRecords of a raw JSON body when every record passes every check, else None.

    Accepts only what check_batch() accepts, and yields the same records; whatever it declines
    (bad JSON, a bad record, a batch too large) goes through json.loads() and check_batch(), which
    name the problems.
    """
    try:
        logs = _decode_body(raw).logs
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    return _checked_records(logs, tenant, now or timezone.now())


def convert_batch(body, *, tenant=None, now=None):
    """decode_batch() for a body already parsed from JSON: the TrafficRecords when every record passes every
    check, else None."""
    try:
        logs = msgspec.convert(body, IngestBody).logs
    except msgspec.ValidationError:
        return None
    return _checked_records(logs, tenant, now or timezone.now())


def check_record(raw, now, tenant=None):
    """A TrafficRecord from one JSON object, or {field: [problem]} naming every bad field."""
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["must be an object"]}
    errors = {}
    values = {}
    for field in FIELDS:
        if field.name not in raw:
            if field.required:
                errors[field.name] = ["is required"]
            else:
                values[field.name] = field.default
            continue
        try:
            value = field.check_type(raw[field.name])
            for check in field.checks:
                value = check(value, now)
        except FieldError as exc:
            errors[field.name] = [str(exc)]
        else:
            values[field.name] = value
    for name in raw:
        if name not in _FIELD_NAMES:
            errors[str(name)[:50]] = ["is not a field of a traffic record"]
    if "count" in values and "error_count" in values:
        problem = excess_errors(values["count"], values["error_count"])
        if problem:
            errors["error_count"] = [problem]
    if "user_id" in values:
        problem = foreign_tenant(values["user_id"], tenant)
        if problem:
            errors["user_id"] = [problem]
    if errors:
        return None, errors
    return TrafficRecord(**values), None


def check_batch(body, *, tenant=None, now=None):
    """Check a whole ingest body (parsed JSON); returns the records or raises ValidationError naming
    index and field.

    The body is {"logs": [record, ...]}; a batch is all-or-nothing, so one bad record rejects it.
    """
    now = now or timezone.now()
    records = convert_batch(body, tenant=tenant, now=now)
    if records is not None:
        return records
    # Not a valid batch (or more records than a request may hold): find out why, and say so.
    if not isinstance(body, dict):
        raise ValidationError({"logs": ['the body must be a JSON object {"logs": [...]}']})
    unknown = [key for key in body if key != "logs"]
    if unknown:
        raise ValidationError({str(unknown[0])[:50]: ["is not a field of the ingest body"]})
    logs = body.get("logs")
    if not isinstance(logs, list):
        raise ValidationError({"logs": ["is required and must be a list of records"]})
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
        raise ValidationError(detail)
    return records
