"""OpenVPN monitoring at scale: 1,000 clients polled every 10 s, 30 days of rollups, raw kept N days.

Targets (issue): one poll of 1,000 clients < 1 s; every /stats/<cn> range and every /analytics
range p95 < 50 ms; rolling up one hour of raw data < 2 s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/vpnbench python -m bench monitoring [--clients 1000]
        [--raw-days 7] [--rollup-days 30] [--repeat 30]
"""

import argparse
import datetime as dt
import time

from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from bench.datasets import analyze, latency_ms, stopwatch

BENCH_PREFIX = "bench-"


def run(argv):
    parser = argparse.ArgumentParser(prog="python -m bench monitoring")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--raw-days", type=float, default=7)
    parser.add_argument("--rollup-days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the dataset of the previous run")
    parser.add_argument("--poll-only", action="store_true", help="only time the polls (no history dataset)")
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark generates its data with PostgreSQL's generate_series; set DATABASE_URL")
    call_command("migrate", verbosity=0)

    from monitoring.models import VpnServer

    now = timezone.now().replace(microsecond=0)
    rows = []
    if args.poll_only:
        VpnServer.objects.filter(name=f"{BENCH_PREFIX}poll").delete()
        server = VpnServer.objects.create(name=f"{BENCH_PREFIX}poll", status_file="/dev/null")
        _polls(server, now, args, rows)
        server.delete()
        return rows
    server = VpnServer.objects.filter(name=f"{BENCH_PREFIX}vpn").first() if args.reuse else None
    if server is None:
        VpnServer.objects.filter(name__startswith=BENCH_PREFIX).delete()
        server = VpnServer.objects.create(name=f"{BENCH_PREFIX}vpn", status_file="/dev/null")
        _load(server, now, args, rows)
    else:
        now = server.last_status_time
    analyze()
    _measure(server, now, args, rows)
    return rows


def _load(server, now, args, rows):
    _polls(server, now, args, rows)
    # 2. History: raw every 10 s for raw-days, rollups for rollup-days, polls for 31 days.
    with stopwatch() as timer:
        _generate(server, now, args)
    rows.append(("dataset generation, s", f"{timer['seconds']:.1f}"))


def _polls(server, now, args, rows):
    from monitoring import services
    from monitoring.sources.status import parse_status
    from monitoring.tests.factories import status2

    # 1. Polls of 1,000 connected clients (the first opens every session; later ones are steady state).
    since = now - dt.timedelta(hours=1)
    clients = [(f"user{i:04d}", i, since, 1000 + i, 5000 + i, f"10.{i // 250}.{i % 250}.2")
               for i in range(args.clients)]
    with stopwatch() as timer:
        services.record_poll(server, parse_status(status2(now - dt.timedelta(seconds=30), clients)))
    rows.append((f"first poll of {args.clients} clients (opens every session), s", f"{timer['seconds']:.3f}"))
    poll_times = []
    for step in (20, 10):
        grown = [(n, i, s, rx + 10_000 * (30 - step), tx + 90_000, v) for n, i, s, rx, tx, v in clients]
        with stopwatch() as timer:
            services.record_poll(server, parse_status(status2(now - dt.timedelta(seconds=step), grown)))
        poll_times.append(timer["seconds"])
    rows.append((f"one poll of {args.clients} clients (steady state, worst of 2), s", f"{max(poll_times):.3f}"))


def _measure(server, now, args, rows):
    from monitoring import services
    from monitoring.models import VpnClient

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_history WHERE server_id = %s", [server.pk])
        raw_rows = cursor.fetchone()[0]
    rows.append(("usage_history rows", f"{raw_rows:,}"))

    # 3. Rolling up one hour of raw data.
    hour = services.timeseries.floor_time(now - dt.timedelta(hours=2), 3600)
    from monitoring.models import StatsHourly, UsageSample

    with stopwatch() as timer:
        written = services._rollup_window(StatsHourly, dt.timedelta(hours=1), UsageSample, "timestamp", hour,
                                          hour + dt.timedelta(hours=1))
    rows.append((f"roll up one hour of raw data ({written} client-hours), s", f"{timer['seconds']:.3f}"))

    # 4. API latency, in-process through the full Django/DRF stack.
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user, _ = get_user_model().objects.get_or_create(username=f"{BENCH_PREFIX}viewer")
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="viewers"))  # reading needs the viewer role
    client = APIClient(HTTP_HOST="localhost")
    client.force_authenticate(user)
    name = VpnClient.objects.filter(server=server).order_by("common_name").values_list("common_name", flat=True)[7]
    for range_name in ("1h", "3h", "6h", "12h", "24h", "7d", "30d", "1y"):
        p50, p95 = latency_ms(lambda r=range_name: _ok(client.get(f"/api/v1/stats/{name}?range={r}")), args.repeat)
        rows.append((f"GET /api/v1/stats/<cn>?range={range_name} p50 / p95, ms", f"{p50:.1f} / {p95:.1f}"))
    for range_name in ("24h", "7d", "30d"):
        p50, p95 = latency_ms(lambda r=range_name: _ok(client.get(f"/api/v1/analytics?range={r}")), args.repeat)
        rows.append((f"GET /api/v1/analytics?range={range_name} p50 / p95, ms", f"{p50:.1f} / {p95:.1f}"))


def _ok(response):
    if response.status_code != 200:
        raise SystemExit(f"benchmark request failed: {response.status_code} {response.content[:300]!r}")
    return response


def _generate(server, now, args):
    started = time.perf_counter()
    raw_start = now - dt.timedelta(days=args.raw_days)
    rollup_start = now - dt.timedelta(days=args.rollup_days)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO usage_history (server_id, client_id, "timestamp", bytes_received, bytes_sent, interval_seconds)
            SELECT c.server_id, c.id, t, (random() * 200000)::bigint, (random() * 2000000)::bigint, 10
            FROM monitoring_vpnclient c
            CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - interval '31 seconds',
                                       interval '10 seconds') t
            WHERE c.server_id = %s
            """,
            [raw_start, now, server.pk],
        )
        cursor.execute(
            """
            INSERT INTO poll_history (server_id, "timestamp", active_connections, active_clients, bytes_received,
                                      bytes_sent)
            SELECT %s, t, 900 + (random() * 100)::int, 900, (random() * 2e8)::bigint, (random() * 2e9)::bigint
            FROM generate_series(%s::timestamptz, %s::timestamptz - interval '31 seconds', interval '10 seconds') t
            """,
            [server.pk, now - dt.timedelta(days=31), now],
        )
        cursor.execute(
            """
            INSERT INTO poll_15min (server_id, bucket, bytes_received, bytes_sent, max_clients, max_connections, polls)
            SELECT server_id, to_timestamp(floor(extract(epoch FROM "timestamp") / 900) * 900), sum(bytes_received),
                   sum(bytes_sent), max(active_clients), max(active_connections), count(*)
            FROM poll_history WHERE server_id = %s GROUP BY 1, 2
            ON CONFLICT (server_id, bucket) DO NOTHING
            """,
            [server.pk],
        )
        for table, step in (("stats_hourly", "1 hour"), ("stats_6h", "6 hours"), ("stats_daily", "1 day")):
            cursor.execute(
                f"""
                INSERT INTO {table} (server_id, client_id, bucket, bytes_received, bytes_sent, samples)
                SELECT c.server_id, c.id, b, (random() * 7e8)::bigint, (random() * 7e9)::bigint, 360
                FROM monitoring_vpnclient c
                CROSS JOIN generate_series(date_trunc('hour', %s::timestamptz), %s::timestamptz, interval '{step}') b
                WHERE c.server_id = %s
                ON CONFLICT (client_id, bucket) DO NOTHING
                """,
                [rollup_start if table != "stats_daily" else now - dt.timedelta(days=365), now, server.pk],
            )
    return time.perf_counter() - started
