"""Proxy traffic reads: charts and breakdowns aggregated in the database over 15-minute buckets."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Max, Min, Sum
from django.utils.dateparse import parse_datetime

from proxytraffic.models import TrafficBucket, TrafficDomainDay, TrafficErrorDay, TrafficTotal
from vpnmonitor.timeseries import EpochBucket, bucket_starts, floor_time, zero_fill

STORED_BUCKET = dt.timedelta(minutes=15)
MAX_RANGE = dt.timedelta(days=62)  # "2 months": any two calendar months fit.
# Chart bucket by the length of the range: (longest range, bucket).
CHART_STEPS = (
    (dt.timedelta(days=2), dt.timedelta(minutes=15)),
    (dt.timedelta(days=14), dt.timedelta(hours=1)),
    (MAX_RANGE, dt.timedelta(days=1)),
)
SAMPLE_DOMAINS = 3
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class TrafficQuery:
    """What a chart or breakdown covers: [start, end), and the filters. tenant confines to one user_id."""

    start: dt.datetime
    end: dt.datetime
    tenant: int | None = None
    order_id: int | None = None
    domain: str | None = None

    @property
    def step(self):
        return chart_step(self.end - self.start)


def chart_step(span):
    for longest, step in CHART_STEPS:
        if span <= longest:
            return step
    return CHART_STEPS[-1][1]


def buckets(query):
    """The stored rows a query covers: every 15-minute bucket that overlaps [start, end)."""
    rows = TrafficBucket.objects.filter(bucket__gte=floor_time(query.start, STORED_BUCKET), bucket__lt=query.end)
    if query.tenant is not None:
        rows = rows.filter(user_id=query.tenant)
    if query.order_id is not None:
        rows = rows.filter(order_id=query.order_id)
    if query.domain is not None:
        rows = rows.filter(domain=query.domain.lower())
    return rows


def chart_source(query):
    """The rows a chart sums: the per-bucket totals when nothing narrows it, else the bucket rows.

    Both hold the same sums per 15-minute bucket; the totals are a few thousand rows for 2 months.
    """
    if query.tenant is None and query.order_id is None and query.domain is None:
        return TrafficTotal.objects.filter(bucket__gte=floor_time(query.start, STORED_BUCKET), bucket__lt=query.end)
    return buckets(query)


def breakdown_source(query, summary=TrafficDomainDay):
    """The rows a breakdown groups: the per-day summary (per domain, or per error type and domain) when
    the range is whole UTC days and no tenant or order narrows it (the domain filter still applies),
    else the bucket rows."""
    whole_days = query.start == floor_time(query.start, ONE_DAY) and query.end == floor_time(query.end, ONE_DAY)
    if whole_days and query.tenant is None and query.order_id is None:
        days = summary.objects.filter(day__gte=query.start, day__lt=query.end)
        return days if query.domain is None else days.filter(domain=query.domain.lower())
    return buckets(query)


def _chart(query, source=None, **aggregates):
    step = query.step
    rows = (
        (chart_source(query) if source is None else source).annotate(slot=EpochBucket("bucket", step)).values("slot")
        .annotate(**aggregates).order_by()
    )
    return zero_fill(rows, bucket_starts(query.start, query.end, step), key="slot", fields=tuple(aggregates))


def traffic_chart(query):
    """Bytes sent and received per chart bucket, zero-filled."""
    return _chart(
        query,
        total_bytes_sent=Sum("bytes_sent"),
        total_bytes_received=Sum("bytes_received"),
        bytes_total=Sum("bytes_sent") + Sum("bytes_received"),
        total_count=Sum("count"),
    )


def requests_chart(query):
    """Requests and failed requests per chart bucket, zero-filled."""
    return _chart(query, total_count=Sum("count"), total_errors=Sum("error_count"))


def concurrency_chart(query):
    """The highest concurrency any record reported in each chart bucket, and requests, zero-filled."""
    return _chart(query, max_concurrency=Max("max_concurrency"), total_count=Sum("count"))


def domains(query, *, sort_by="bytes", limit=30, source=None):
    """Top domains by bytes (sent + received) or by requests; ties by name."""
    order = "-bytes_total" if sort_by == "bytes" else "-total_count"
    return list(
        (breakdown_source(query) if source is None else source).values("domain").annotate(
            total_count=Sum("count"),
            bytes_total=Sum("bytes_sent") + Sum("bytes_received"),
            total_bytes_sent=Sum("bytes_sent"),
            total_bytes_received=Sum("bytes_received"),
            total_errors=Sum("error_count"),
        ).order_by(order, "domain")[:limit]
    )


def errors(query, *, limit=50, source=None):
    """Error types by failed requests, with when each was first and last seen and its top domains.

    Rows without an error type ("") are not an error type and are left out. One pass over the
    rows: they are summed per (error, domain) once (in parallel where the database can), and both
    the error totals and each error's most failing domains are window functions over those sums.
    """
    failed = (breakdown_source(query, TrafficErrorDay) if source is None else source).exclude(error="")
    per_domain = failed.values("error", "domain").annotate(
        failed_requests=Sum("error_count"), first_at=Min("first_seen"), last_at=Max("last_seen"),
    ).order_by()
    inner, params = per_domain.query.sql_with_params()
    sql = f"""
        SELECT error, total_errors, first_seen, last_seen, domain FROM (
            SELECT error, domain, total_errors, first_seen, last_seen, rank,
                   DENSE_RANK() OVER (ORDER BY total_errors DESC, error) AS error_rank
            FROM (
                SELECT p.error, p.domain,
                       SUM(p.failed_requests) OVER per_error AS total_errors,
                       MIN(p.first_at) OVER per_error AS first_seen, MAX(p.last_at) OVER per_error AS last_seen,
                       ROW_NUMBER() OVER (PARTITION BY p.error ORDER BY p.failed_requests DESC, p.domain) AS rank
                FROM ({inner}) p
                WINDOW per_error AS (PARTITION BY p.error)
            ) ranked
            WHERE rank <= {SAMPLE_DOMAINS}
        ) top
        WHERE error_rank <= %s
        ORDER BY total_errors DESC, error, rank
    """
    rows = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, (*params, limit))
        for error, total, first_seen, last_seen, domain in cursor.fetchall():
            row = rows.setdefault(error, {
                "error": error, "total_errors": int(total), "first_seen": _moment(first_seen),
                "last_seen": _moment(last_seen), "sample_domains": [],
            })
            if domain is not None:
                row["sample_domains"].append(domain)
    return list(rows.values())


def _moment(value):
    """A timestamp as the database returned it (SQLite: text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def websites(query, *, source=None):
    """Distinct domains visited, most requests first (an ordered queryset for the paginator)."""
    return (breakdown_source(query) if source is None else source).values("domain").annotate(
        total_count=Sum("count"),
        bytes_total=Sum("bytes_sent") + Sum("bytes_received"),
        first_visit=Min("first_seen"),
        last_visit=Max("last_seen"),
    ).order_by("-total_count", "domain")
