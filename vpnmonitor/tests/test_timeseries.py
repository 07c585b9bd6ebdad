"""Windows, bucket boundaries, the portable bucketing SQL and zero-fill (same on SQLite and PostgreSQL)."""

import datetime as dt

import pytest
from django.db.models import Count, Max

from vpnmonitor import timeseries
from vpnmonitor.models import AuditEvent

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("3h", 10800), ("24h", 86400), ("7d", 604800), ("30d", 2592000), ("1y", 31536000),
     ("15min", 900), ("105min", 6300), ("450min", 27000)],
)
def test_parse_range(text, seconds):
    assert timeseries.parse_range(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0h", "24", "h", "-1h", "1x", "24h; drop table", "99999d"])
def test_parse_range_rejects_nonsense(text):
    with pytest.raises(ValueError):
        timeseries.parse_range(text)


def test_parse_range_honours_the_allowed_list():
    with pytest.raises(ValueError, match="must be one of 24h, 7d, 30d"):
        timeseries.parse_range("1h", allowed=("24h", "7d", "30d"))


@pytest.mark.parametrize(("step_minutes", "count"), [(15, 96), (105, 96), (450, 96), (60, 168), (1440, 365)])
def test_last_buckets_gives_exactly_count_aligned_buckets_ending_now(step_minutes, count):
    now = dt.datetime(2026, 1, 9, 12, 7, 31, tzinfo=UTC)
    starts = timeseries.last_buckets(dt.timedelta(minutes=step_minutes), count, now=now)
    assert len(starts) == count
    assert starts[-1] <= now < starts[-1] + dt.timedelta(minutes=step_minutes)
    assert all(int(s.timestamp()) % (step_minutes * 60) == 0 for s in starts)
    assert all(b - a == dt.timedelta(minutes=step_minutes) for a, b in zip(starts, starts[1:], strict=False))


def test_bucket_starts_cover_a_window_that_starts_mid_bucket():
    start = dt.datetime(2026, 1, 9, 10, 50, tzinfo=UTC)
    end = dt.datetime(2026, 1, 9, 12, 0, tzinfo=UTC)
    starts = timeseries.bucket_starts(start, end, dt.timedelta(hours=1))
    assert starts == [dt.datetime(2026, 1, 9, 10, tzinfo=UTC), dt.datetime(2026, 1, 9, 11, tzinfo=UTC)]


def test_window_between_rejects_reversed_and_too_long_ranges():
    a = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="the end must be after the start"):
        timeseries.window_between(a, a)
    with pytest.raises(ValueError, match="must not exceed 62 days"):
        timeseries.window_between(a, a + dt.timedelta(days=63), max_span=dt.timedelta(days=62))


@pytest.mark.django_db
@pytest.mark.parametrize("step_minutes", [15, 105, 450, 60, 360, 1440])
def test_database_bucketing_matches_python_bucketing_and_zero_fills(step_minutes):
    step = dt.timedelta(minutes=step_minutes)
    now = dt.datetime(2026, 1, 9, 12, 7, 31, 250000, tzinfo=UTC)
    starts = timeseries.last_buckets(step, 96, now=now)
    # Events at awkward offsets: on a boundary, a microsecond before one, and mid-bucket; bucket 3 is empty.
    moments = [
        starts[0], starts[0] + step - dt.timedelta(microseconds=1), starts[1] + step / 2,
        starts[2], starts[2] + dt.timedelta(seconds=1), starts[4] + dt.timedelta(seconds=59), now,
    ]
    AuditEvent.objects.bulk_create([AuditEvent(user="u", action="a", created_at=m) for m in moments])
    rows = (
        AuditEvent.objects.filter(created_at__gte=starts[0])
        .annotate(bucket=timeseries.EpochBucket("created_at", step))
        .values("bucket")
        .annotate(events=Count("id"), latest=Max("id"))
        .order_by("bucket")
    )
    filled = timeseries.zero_fill(rows, starts, fields=("events",))
    assert len(filled) == 96
    assert [row["bucket"] for row in filled] == starts
    counts = [row["events"] for row in filled]
    assert counts[:5] == [2, 1, 2, 0, 1]
    assert counts[-1] == 1
    assert sum(counts) == 7
    assert sum(counts[5:95]) == 0


def test_format_timestamp_is_utc_text():
    moment = dt.datetime(2026, 1, 9, 13, 45, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert timeseries.format_timestamp(moment) == "2026-01-09 12:45:00"
