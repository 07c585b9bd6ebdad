"""Reads of the monitoring app: client history at each resolution, global analytics, snapshots."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Case, F, IntegerField, Max, Q, Sum, When
from django.utils import timezone

from monitoring.models import (
    Certificate,
    PollQuarter,
    Stats6h,
    StatsDaily,
    StatsHourly,
    UsageSample,
    UserProfile,
    VpnClient,
    VpnSession,
)
from vpnmonitor import timeseries

MIB = 1024 * 1024
GIB = 1024 * MIB

# (table, model, time field) of each source
SOURCES = {
    "usage_history": (UsageSample, "timestamp"),
    "stats_hourly": (StatsHourly, "bucket"),
    "stats_6h": (Stats6h, "bucket"),
    "stats_daily": (StatsDaily, "bucket"),
}


@dataclass(frozen=True)
class Resolution:
    table: str
    step_seconds: int | None  # None: raw samples, one point each


# The spec's dynamic-aggregation table (resolution=auto).
AUTO_RESOLUTION = {
    "1h": Resolution("usage_history", 30),
    "3h": Resolution("usage_history", 60),
    "6h": Resolution("usage_history", 120),
    "12h": Resolution("usage_history", 300),
    "24h": Resolution("usage_history", 900),
    "7d": Resolution("stats_hourly", 3600),
    "30d": Resolution("stats_6h", 6 * 3600),
    "1y": Resolution("stats_daily", 86400),
}
STATS_RANGES = tuple(AUTO_RESOLUTION)
FORCED_RESOLUTION = {
    "raw": Resolution("usage_history", None),
    "5min": Resolution("usage_history", 300),
    "hourly": Resolution("stats_hourly", 3600),
    "6h": Resolution("stats_6h", 6 * 3600),
    "daily": Resolution("stats_daily", 86400),
}
RESOLUTIONS = ("auto", *FORCED_RESOLUTION)
# The longest range each forced resolution may cover, so a response stays a chart, not a dump.
FORCED_MAX_RANGE = {"raw": "24h", "5min": "7d", "hourly": "30d", "6h": "1y", "daily": "1y"}

ANALYTICS_STEPS = {"24h": 15 * 60, "7d": 105 * 60, "30d": 450 * 60}
ANALYTICS_POINTS = 96


def resolution_for(range_name, resolution):
    """The Resolution to read, or ValueError when a forced one cannot cover the range."""
    if resolution == "auto":
        return AUTO_RESOLUTION[range_name]
    limit = FORCED_MAX_RANGE[resolution]
    if timeseries.parse_range(range_name) > timeseries.parse_range(limit):
        raise ValueError(f"resolution={resolution} covers ranges up to {limit}")
    return FORCED_RESOLUTION[resolution]


def mbps(byte_count, seconds):
    return round(byte_count * 8 / seconds / 1_000_000, 6) if seconds else 0.0


def _clients(common_name=None, server=None):
    clients = VpnClient.objects.all()
    if common_name is not None:
        clients = clients.filter(common_name=common_name)
    if server is not None:
        clients = clients.filter(server=server)
    return clients


def client_exists(common_name, server=None):
    return _clients(common_name, server).exists()


def client_history(common_name, range_name, resolution="auto", *, server=None, now=None):
    """(points, resolution, points with data) of one common name's history (summed over servers unless one is given).

    Bucketed resolutions give exactly range / step points (at least one), aligned to the epoch and ending with
    the bucket that holds now; buckets without stored rows are zeros, so a chart's time axis never jumps.
    """
    now = now or timezone.now()
    chosen = resolution_for(range_name, resolution)
    model, time_field = SOURCES[chosen.table]
    span = timeseries.parse_range(range_name)
    rows = model.objects.filter(client__common_name=common_name)
    if server is not None:
        rows = rows.filter(server=server)

    if chosen.step_seconds is None:
        samples = rows.filter(timestamp__gt=now - span, timestamp__lte=now).order_by("timestamp", "id")
        history = [
            _point(s.timestamp, s.bytes_received, s.bytes_sent, s.interval_seconds)
            for s in samples.only("timestamp", "bytes_received", "bytes_sent", "interval_seconds")
        ]
        return history, chosen, len(history)

    step = dt.timedelta(seconds=chosen.step_seconds)
    starts = timeseries.last_buckets(step, max(1, int(span / step)), now=now)
    window = rows.filter(**{f"{time_field}__gte": starts[0], f"{time_field}__lt": starts[-1] + step})
    sums = list(
        window.annotate(period=timeseries.EpochBucket(time_field, step))
        .values("period")
        .annotate(rx=Sum("bytes_received"), tx=Sum("bytes_sent"))
        .order_by("period")
    )
    history = [
        _point(row["period"], row["rx"], row["tx"], chosen.step_seconds)
        for row in timeseries.zero_fill(sums, starts, key="period", fields=("rx", "tx"))
    ]
    return history, chosen, len(sums)


def _point(moment, received, sent, seconds):
    return {
        "timestamp": timeseries.format_timestamp(moment),
        "bytes_received": received,
        "bytes_sent": sent,
        "bytes_received_rate_mbps": mbps(received, seconds),
        "bytes_sent_rate_mbps": mbps(sent, seconds),
    }


def client_summary(common_name, *, server=None):
    """Status, current rates and all-time totals of one common name."""
    totals = _clients(common_name, server).aggregate(
        active=Max(Case(When(status=VpnClient.Status.ACTIVE, then=1), default=0, output_field=IntegerField())),
        rx_rate=Sum("recv_rate_bps", filter=Q(status=VpnClient.Status.ACTIVE)),
        tx_rate=Sum("sent_rate_bps", filter=Q(status=VpnClient.Status.ACTIVE)),
        rx=Sum("total_bytes_received"), tx=Sum("total_bytes_sent"),
    )
    return {
        "status": "Active" if totals["active"] else "Disconnected",
        "current_rates": {"recv_mbps": mbps(totals["rx_rate"] or 0, 1), "sent_mbps": mbps(totals["tx_rate"] or 0, 1)},
        "totals": {"received_mb": round((totals["rx"] or 0) / MIB, 2), "sent_mb": round((totals["tx"] or 0) / MIB, 2)},
    }


def all_clients(*, server=None):
    """One row per common name (summed over servers), for /stats and /clients."""
    rows = (
        _clients(server=server)
        .values("common_name")
        .annotate(
            active=Max(Case(When(status=VpnClient.Status.ACTIVE, then=1), default=0, output_field=IntegerField())),
            rx_rate=Sum("recv_rate_bps", filter=Q(status=VpnClient.Status.ACTIVE)),
            tx_rate=Sum("sent_rate_bps", filter=Q(status=VpnClient.Status.ACTIVE)),
            rx=Sum("total_bytes_received"), tx=Sum("total_bytes_sent"), last_seen=Max("last_seen"),
        )
        .order_by("common_name")
    )
    return [
        {
            "common_name": row["common_name"],
            "status": "Active" if row["active"] else "Disconnected",
            "current_recv_rate_mbps": mbps(row["rx_rate"] or 0, 1),
            "current_sent_rate_mbps": mbps(row["tx_rate"] or 0, 1),
            "total_received_mb": round(row["rx"] / MIB, 2),
            "total_sent_mb": round(row["tx"] / MIB, 2),
            "last_seen": timeseries.format_timestamp(row["last_seen"]),
        }
        for row in rows
    ]


def system_stats(*, server=None):
    clients = _clients(server=server)
    totals = clients.aggregate(rx=Sum("total_bytes_received"), tx=Sum("total_bytes_sent"))
    return {
        "total_clients": clients.values("common_name").distinct().count(),
        "active_clients": clients.filter(status=VpnClient.Status.ACTIVE).values("common_name").distinct().count(),
        "total_received_gb": round((totals["rx"] or 0) / GIB, 3),
        "total_sent_gb": round((totals["tx"] or 0) / GIB, 3),
    }


# The rollup the top clients of each analytics range are summed from: whole periods overlapping the window.
TOP_CLIENTS_SOURCE = {"24h": StatsHourly, "7d": Stats6h, "30d": StatsDaily}


def analytics(range_name, *, server=None, now=None):
    """The dashboard: 96 zero-filled points, peak concurrency, top 10 clients, rx/tx split.

    Totals and concurrency are summed from poll_15min, which every read updates, so they are
    exact and current (15 minutes divides each step). Top clients come from the rollup whose
    period suits the range (hourly for 24h, 6-hour for 7d, daily for 30d), counting whole periods
    that overlap the window and current to the last rollup run.
    """
    now = now or timezone.now()
    step = dt.timedelta(seconds=ANALYTICS_STEPS[range_name])
    starts = timeseries.last_buckets(step, ANALYTICS_POINTS, now=now)
    start, end = starts[0], starts[-1] + step
    quarters = PollQuarter.objects.filter(bucket__gte=start, bucket__lt=end)
    if server is not None:
        quarters = quarters.filter(server=server)
    per_server = (
        quarters.annotate(period=timeseries.EpochBucket("bucket", step))
        .values("period", "server_id")
        .annotate(rx=Sum("bytes_received"), tx=Sum("bytes_sent"), clients=Max("max_clients"),
                  connections=Max("max_connections"))
    )
    # Sum the per-server values of each period (a handful of rows per period).
    periods = {}
    for row in per_server:
        period = periods.setdefault(row["period"], {"period": row["period"], "rx": 0, "tx": 0, "clients": 0,
                                                    "connections": 0})
        for key in ("rx", "tx", "clients", "connections"):
            period[key] += row[key] or 0
    filled = timeseries.zero_fill(periods.values(), starts, key="period", fields=("rx", "tx", "clients", "connections"))
    history = [
        {"timestamp": timeseries.format_timestamp(row["period"]), "total_rx": row["rx"], "total_tx": row["tx"],
         "active_count": row["clients"]}
        for row in filled
    ]
    rollup = TOP_CLIENTS_SOURCE[range_name]
    period_seconds = {StatsHourly: 3600, Stats6h: 6 * 3600, StatsDaily: 86400}[rollup]
    rolled = rollup.objects.filter(bucket__gte=timeseries.floor_time(start, period_seconds), bucket__lt=end)
    if server is not None:
        rolled = rolled.filter(server=server)
    top = (
        rolled.values(common_name=F("client__common_name"))
        .annotate(bytes_received=Sum("bytes_received"), bytes_sent=Sum("bytes_sent"))
        .annotate(total_bytes=F("bytes_received") + F("bytes_sent"))
        .order_by("-total_bytes", "common_name")[:10]
    )
    return {
        f"global_history_{range_name}": history,
        f"max_concurrent_{range_name}": max((row["connections"] for row in filled), default=0),
        f"top_clients_{range_name}": list(top),
        "traffic_distribution": {"rx": sum(row["total_rx"] for row in history),
                                 "tx": sum(row["total_tx"] for row in history)},
    }


def certificates(*, server=None, now=None):
    now = now or timezone.now()
    rows = Certificate.objects.select_related("server").order_by("not_after", "file")
    if server is not None:
        rows = rows.filter(server=server)
    out = []
    for cert in rows:
        days = (cert.not_after - now) // dt.timedelta(days=1)
        out.append({
            "file": cert.file, "common_name": cert.common_name, "server": cert.server.name,
            "days_remaining": f"{days} days", "is_expired": cert.not_after <= now, "revoked": cert.revoked,
            "not_after": cert.not_after.isoformat().replace("+00:00", "Z"),
        })
    return out


def vpn_subscriber_addresses():
    """{tunnel address: common name} of connected clients (flow reports attribute flows by it)."""
    rows = VpnClient.objects.filter(status=VpnClient.Status.ACTIVE).values_list(
        "virtual_address", "virtual_ipv6", "common_name"
    )
    out = {}
    for v4, v6, name in rows:
        for address in (v4, v6):
            if address:
                out[address] = name
    return out



def sessions_in_window(start, end, *, status=None, only_new=False):
    """Sessions created (only_new) or updated in [start, end); empty when start >= end."""
    field = "created_at" if only_new else "updated_at"
    sessions = VpnSession.objects.select_related("server").filter(**{f"{field}__gte": start, f"{field}__lt": end})
    if status:
        sessions = sessions.filter(status=status)
    return sessions.order_by(field, "pk")


def profiles_for(common_names):
    return {profile.common_name: profile for profile in UserProfile.objects.filter(common_name__in=common_names)}
