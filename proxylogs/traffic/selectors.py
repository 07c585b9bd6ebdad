"""Proxy traffic reads: charts and breakdowns aggregated in the database over 15-minute buckets."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import F, Max, Min, Sum
from django.db.models.functions import RowNumber

from proxylogs.models import TrafficBucket, TrafficDomainDay, TrafficTotal
from vpnmonitor.db import GroupedWindow
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


def breakdown_source(query):
    """The rows a breakdown groups: per day and domain when the range is whole UTC days and no
    tenant or order narrows it (the domain filter still applies), else the bucket rows."""
    whole_days = query.start == floor_time(query.start, ONE_DAY) and query.end == floor_time(query.end, ONE_DAY)
    if whole_days and query.tenant is None and query.order_id is None:
        days = TrafficDomainDay.objects.filter(day__gte=query.start, day__lt=query.end)
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

    Rows without an error type ("") are not an error type and are left out.
    """
    failed = (breakdown_source(query) if source is None else source).exclude(error="")
    top = list(
        failed.values("error").annotate(
            total_errors=Sum("error_count"), first_seen=Min("first_seen"), last_seen=Max("last_seen"),
        ).order_by("-total_errors", "error")[:limit]
    )
    samples = _sample_domains(failed.filter(error__in=[row["error"] for row in top]))
    for row in top:
        row["sample_domains"] = samples.get(row["error"], [])
    return top


def _sample_domains(failed):
    """{error: [up to 3 domains with the most failed requests of that error]} ranked in the database."""
    ranked = (
        failed.values("error", "domain")
        .annotate(
            failed_requests=Sum("error_count"),
            rank=GroupedWindow(RowNumber(), partition_by=[F("error")],
                               order_by=[Sum("error_count").desc(), F("domain").asc()]),
        )
        .filter(rank__lte=SAMPLE_DOMAINS)
        .order_by("error", "rank")
    )
    out = {}
    for row in ranked:
        out.setdefault(row["error"], []).append(row["domain"])
    return out


def websites(query, *, source=None):
    """Distinct domains visited, most requests first (an ordered queryset for the paginator)."""
    return (breakdown_source(query) if source is None else source).values("domain").annotate(
        total_count=Sum("count"),
        bytes_total=Sum("bytes_sent") + Sum("bytes_received"),
        first_visit=Min("first_seen"),
        last_visit=Max("last_seen"),
    ).order_by("-total_count", "domain")
