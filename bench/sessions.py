"""VPN sessions API at scale: 1M sessions, cursor paging.

Targets (issue): any page p95 < 30 ms; the 1,000th page costs at most 1.5x the first.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/vpnbench python -m bench sessions [--sessions 1000000]
        [--size 100] [--repeat 30] [--reuse]
"""

import argparse

from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from bench.datasets import analyze, latency_ms, stopwatch

BENCH_SERVER = "bench-sessions"


def run(argv):
    parser = argparse.ArgumentParser(prog="python -m bench sessions")
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--pages", type=int, default=1000, help="which page to compare with the first")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark generates its data with PostgreSQL's generate_series; set DATABASE_URL")
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from monitoring.models import VpnServer, VpnSession

    rows = []
    server = VpnServer.objects.filter(name=BENCH_SERVER).first() if args.reuse else None
    now = timezone.now()
    if server is None:
        VpnServer.objects.filter(name=BENCH_SERVER).delete()
        server = VpnServer.objects.create(name=BENCH_SERVER, status_file="/dev/null", region="eu", network_name="lab")
        with stopwatch() as timer, connection.cursor() as cursor:
            # Sessions spread evenly over the last 23 hours (inside the default one-day window).
            cursor.execute(
                """
                INSERT INTO monitoring_vpnsession (server_id, common_name, connection_key, status, started_at,
                    last_status_time, created_at, updated_at, bytes_received, bytes_sent, real_ip, real_port,
                    protocol, virtual_address, disconnect_reason, real_address, username, cipher, os_type,
                    os_version, device_id)
                SELECT %s, 'user' || (i %% 5000), 'bench|' || i,
                       CASE WHEN i %% 10 = 0 THEN 'ACTIVE' WHEN i %% 97 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
                       t, t, t, t + interval '1 minute', (random() * 1e9)::bigint, (random() * 1e9)::bigint,
                       ('198.51.100.' || (i %% 250))::inet, 40000 + (i %% 20000), 'udp',
                       ('10.8.' || ((i / 250) %% 250) || '.' || (i %% 250))::inet, '', '', '', '', '', '', ''
                FROM (SELECT i, %s::timestamptz - interval '23 hours' + (i * interval '82 milliseconds') AS t
                      FROM generate_series(1, %s) AS i) AS g
                """,
                [server.pk, now, args.sessions],
            )
        rows.append((f"generate {args.sessions:,} sessions, s", f"{timer['seconds']:.1f}"))
    analyze()
    rows.append(("sessions in the table", f"{VpnSession.objects.filter(server=server).count():,}"))

    # The per-client throttle (60/min by default) would stop the walk to page 1,000; lift it here.
    from django.conf import settings
    from rest_framework.settings import api_settings

    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["sessions"] = "100000000/min"
    api_settings.reload()
    user, _ = get_user_model().objects.get_or_create(username="bench-sessions-viewer")
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="viewers"))  # reading needs the viewer role
    client = APIClient(HTTP_HOST="localhost")
    client.force_authenticate(user)
    for only_new in ("false", "true"):
        base = f"/api/beta/sessions?size={args.size}&returnOnlyNew={only_new}"
        cursor = None
        for _ in range(args.pages - 1):  # walk to the page to compare, as a client would
            body = _ok(client.get(base + (f"&cursor={cursor}" if cursor else ""))).json()
            cursor = body["nextCursor"]
        first_p50, first_p95 = latency_ms(lambda b=base: _ok(client.get(b)), args.repeat)
        deep_p50, deep_p95 = latency_ms(lambda b=base, c=cursor: _ok(client.get(f"{b}&cursor={c}")), args.repeat)
        rows.append((f"returnOnlyNew={only_new}: first page p50 / p95, ms", f"{first_p50:.1f} / {first_p95:.1f}"))
        rows.append((f"returnOnlyNew={only_new}: page {args.pages} p50 / p95, ms", f"{deep_p50:.1f} / {deep_p95:.1f}"))
        rows.append((f"returnOnlyNew={only_new}: page {args.pages} / first page (p50)",
                     f"{deep_p50 / first_p50:.2f}"))
    status_p50, status_p95 = latency_ms(
        lambda: _ok(client.get(f"/api/beta/sessions?size={args.size}&status=FAILED")), args.repeat)
    rows.append(("status=FAILED first page p50 / p95, ms", f"{status_p50:.1f} / {status_p95:.1f}"))
    return rows


def _ok(response):
    if response.status_code != 200:
        raise SystemExit(f"benchmark request failed: {response.status_code} {response.content[:300]!r}")
    return response


