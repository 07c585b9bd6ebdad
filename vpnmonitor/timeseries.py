"""Time windows, bucket boundaries, one portable bucketing expression and zero-fill.

Buckets are aligned to multiples of their step counted from the Unix epoch (UTC), so a
15-minute bucket starts at :00, :15, :30, :45 and a 1-day bucket at midnight UTC. The SQL
expression computes the same boundaries on PostgreSQL and SQLite, and zero_fill() lays
the database's sparse rows onto the full list of buckets so gaps come out as zeros.
"""

import datetime as dt
import re
from dataclasses import dataclass

from django.db.models import BigIntegerField, DateTimeField, Func
from django.utils import timezone

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_RANGE_RE = re.compile(r"^(\d{1,4})(min|m|h|d|w|y)$")
_UNITS = {"min": 60, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_range(value, allowed=None):
    """'24h' -> timedelta(hours=24). Raises ValueError (message lists what is allowed)."""
    text = (value or "").strip().lower()
    if allowed is not None and text not in allowed:
        raise ValueError("must be one of " + ", ".join(allowed))
    match = _RANGE_RE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError("must be a duration such as 1h, 24h, 7d, 30d or 1y")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_step(value):
    """A bucket step: '15min', '105min', '1h', '6h', '1d' -> timedelta."""
    return parse_range(value)


@dataclass(frozen=True)
class Window:
    """A half-open time interval [start, end)."""

    start: dt.datetime
    end: dt.datetime

    @property
    def span(self):
        return self.end - self.start


def window_for_range(value, *, now=None, allowed=None):
    now = now or timezone.now()
    return Window(now - parse_range(value, allowed), now)


def window_between(start, end, *, max_span=None):
    """A window from two aware datetimes; ValueError when end is not after start or too long."""
    if end <= start:
        raise ValueError("the end must be after the start")
    if max_span is not None and end - start > max_span:
        raise ValueError(f"the range must not exceed {_human(max_span)}")
    return Window(start, end)


def _human(delta):
    days = delta.days
    return f"{days} days" if days else f"{int(delta.total_seconds() // 3600)} hours"


def _seconds(step):
    seconds = int(step.total_seconds()) if isinstance(step, dt.timedelta) else int(step)
    if seconds <= 0:
        raise ValueError("a bucket step must be positive")
    return seconds


def floor_time(moment, step):
    """The start of the bucket that contains moment (exact integer arithmetic on whole seconds since the epoch)."""
    seconds = _seconds(step)
    since = moment - EPOCH
    epoch_seconds = since.days * 86400 + since.seconds  # floors: a timedelta's fraction is never negative
    return EPOCH + dt.timedelta(seconds=epoch_seconds - epoch_seconds % seconds)


def bucket_starts(start, end, step):
    """Every bucket start whose bucket overlaps [start, end), aligned to the epoch."""
    seconds = _seconds(step)
    current = floor_time(start, seconds)
    out = []
    while current < end:
        out.append(current)
        current += dt.timedelta(seconds=seconds)
    return out


def last_buckets(step, count, *, now=None):
    """Exactly `count` buckets ending with the one that contains now (a chart's x axis)."""
    seconds = _seconds(step)
    last = floor_time(now or timezone.now(), seconds)
    first = last - dt.timedelta(seconds=seconds * (count - 1))
    return [first + dt.timedelta(seconds=seconds * i) for i in range(count)]


def from_epoch(seconds):
    return EPOCH + dt.timedelta(seconds=int(seconds))


class EpochBucket(Func):
    """SQL: the epoch second at which `expression`'s bucket of `step` seconds starts.

    floor(epoch(expression) / step) * step, portable across PostgreSQL and SQLite. The
    result is an integer; turn it back into a datetime with from_epoch().
    """

    output_field = BigIntegerField()

    def __init__(self, expression, step, **extra):
        self.step = _seconds(step)
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(FLOOR(EXTRACT(EPOCH FROM {sql}) / {self.step})::bigint * {self.step})",
            params,
        )

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # Django keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) in SQLite. strftime('%s') rounds the
        # fraction (…59.9999996 becomes the next second), so cut it off first to floor like PostgreSQL.
        # Integer division floors for t >= 0.
        return (
            f"((CAST(strftime('%%s', substr({sql}, 1, 19)) AS INTEGER) / {self.step}) * {self.step})",
            params,
        )

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"EpochBucket does not support {connection.vendor}")


class BucketStart(Func):
    """SQL: the start of `expression`'s bucket of `step` as a timestamp, the same on PostgreSQL and SQLite
    (EpochBucket turned back into a time where the database keeps it: timestamptz, or SQLite's UTC text)."""

    output_field = DateTimeField()

    def __init__(self, expression, step, **extra):
        self.step = _seconds(step)
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = EpochBucket(self.source_expressions[0], self.step).as_postgresql(compiler, connection)
        return f"to_timestamp({sql})", params

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = EpochBucket(self.source_expressions[0], self.step).as_sqlite(compiler, connection)
        return f"datetime({sql}, 'unixepoch')", params

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"BucketStart does not support {connection.vendor}")


def zero_fill(rows, starts, *, key="bucket", fields=(), default=0):
    """One dict per bucket start in `starts`, taking values from rows keyed by epoch seconds.

    rows: iterable of dicts with `key` holding the bucket's epoch second (as EpochBucket
    returns it) or a datetime. Buckets with no row get `default` for every field.
    """
    by_start = {}
    for row in rows:
        start = row[key]
        if isinstance(start, dt.datetime):
            start = int((start - EPOCH).total_seconds())
        by_start[int(start)] = row
    out = []
    for start in starts:
        row = by_start.get(int((start - EPOCH).total_seconds()))
        values = {field: (row[field] if row is not None and row[field] is not None else default) for field in fields}
        out.append({key: start, **values})
    return out


def format_timestamp(moment):
    """'2026-01-09 11:45:00' in UTC, the format the monitor and proxy specs use."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
