"""Proxy traffic: ingest rate and the p95 of every /analytics chart and breakdown over 2 months.

    DATABASE_URL=postgres://... python -m bench proxy_traffic [--records 2000000] [--orders 10000] [--days 60]

Targets (issue 7): ingest >= 50,000 records/s in batches of 1,000; 2 months x 10k orders: each
chart and breakdown p95 < 100 ms. Ingest is timed through the service (checks + upsert) and
through POST /analytics/ingest (auth, JSON, checks, upsert), in this process and from --clients
concurrent pushers to a real gunicorn server (deploy/gunicorn.conf.py); reads through the full HTTP stack.
The dataset is loaded with the same upsert. The table is emptied first unless --keep is given.
"""

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

from django.core.management import call_command
from django.db import connection
from django.test import Client

from bench.datasets import analyze, batched, latency_ms, rng, stopwatch, timed_threads
from proxytraffic import schema, services
from proxytraffic.models import TrafficBucket, TrafficDomainDay, TrafficErrorDay, TrafficTotal
from vpnmonitor.models import ApiKey

ENDPOINTS = ("traffic", "requests", "concurrency", "domains", "errors", "websites")
ERRORS = ["ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "ENOTFOUND", "TLS_HANDSHAKE_FAILED"]


def records(random, *, count, orders, domains, start, days, in_time_order=True):
    """count records spread over `days` from start: orders belong to users (10 orders each), Zipf-ish domains.

    In time order (give or take 5 minutes) by default, as workers push them; in_time_order=False
    scatters every batch over the whole period (a worst case for the indexes: no hot pages).
    """
    span = days * 86400
    for index in range(count):
        if in_time_order:
            offset = min(span - 1, max(0, int(span * index / count) + random.randint(-300, 300)))
        else:
            offset = random.randrange(span)
        order = random.randrange(orders)
        domain = min(int(random.expovariate(8 / domains)), domains - 1)
        requests = random.randint(1, 50)
        failed = random.random() < 0.05
        yield {
            "ts": (start + dt.timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S"),
            "user_id": order // 10 + 1, "order_id": order + 1, "port": 443, "protocol": "HTTPS",
            "ip_out": f"185.199.100.{order % 20 + 1}", "ip_from": f"78.100.{order % 250}.{order % 200 + 1}",
            "peer_id": f"peer-{order % 50:03d}", "worker": f"worker-{random.randint(1, 4):02d}",
            "domain": f"site{domain}.example.com", "error": random.choice(ERRORS) if failed else "",
            "count": requests, "bytes_sent": requests * random.randint(300, 3000),
            "bytes_received": requests * random.randint(2000, 300_000),
            "error_count": random.randint(1, requests) if failed else 0,
            "duration_ms": requests * random.randint(20, 900), "max_concurrency": random.randint(1, 30),
        }


def run(argv):
    parser = argparse.ArgumentParser(prog="python -m bench proxy_traffic")
    parser.add_argument("--records", type=int, default=2_000_000, help="records in the 2-month dataset")
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--http-batches", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent workers pushing to a gunicorn server (deploy/gunicorn.conf.py); 0 skips it")
    parser.add_argument("--server-workers", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the table (skip loading)")
    parser.add_argument("--vacuum", action="store_true",
                        help="VACUUM the traffic tables before the reads (for servers running with autovacuum off)")
    parser.add_argument("--random-times", action="store_true",
                        help="scatter each batch over the whole period instead of pushing in time order")
    parser.add_argument("--database-ceiling", type=int, default=0, metavar="RECORDS",
                        help="only time the database's share of ingest: RECORDS new records staged in a table "
                             "first, then each batch's statements replayed from one and from two connections")
    args = parser.parse_args(argv)

    call_command("migrate", verbosity=0)
    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(days=args.days)
    random = rng(7)
    rows = []
    if args.database_ceiling:
        return database_ceiling(args, end)

    if not args.keep:
        _empty()
        check_seconds = upsert_seconds = 0.0
        loaded = 0
        generated = records(random, count=args.records, orders=args.orders, domains=args.domains,
                            start=start, days=args.days, in_time_order=not args.random_times)
        for batch in batched(generated, args.batch):
            with stopwatch() as checked:
                clean = schema.check_batch({"logs": batch})
            with stopwatch() as written:
                services.ingest_records(clean)
            check_seconds += checked["seconds"]
            upsert_seconds += written["seconds"]
            loaded += len(batch)
            if loaded % 200_000 == 0:
                print(f"  loaded {loaded:,} records ({loaded / (check_seconds + upsert_seconds):,.0f}/s)")
        rate = loaded / (check_seconds + upsert_seconds)
        order = "scattered over the period" if args.random_times else "in time order"
        rows.append((f"ingest via service, records/s (batches of {args.batch} {order}, checks + upsert)",
                     f"{rate:,.0f}"))
        rows.append(("  of which checks, records/s", f"{loaded / check_seconds:,.0f}"))
        rows.append(("  of which upsert, records/s", f"{loaded / upsert_seconds:,.0f}"))

        # Workers flush several times per quarter hour, so most records land on rows that exist:
        # replay the first records of the load (same keys) to time that case.
        replay = itertools.islice(records(rng(7), count=args.records, orders=args.orders, domains=args.domains,
                                          start=start, days=args.days, in_time_order=not args.random_times),
                                  50 * args.batch)
        with stopwatch() as replayed:
            replayed_count = 0
            for batch in batched(replay, args.batch):
                services.ingest_records(schema.check_batch({"logs": batch}))
                replayed_count += len(batch)
        rows.append(("ingest via service onto existing rows, records/s",
                     f"{replayed_count / replayed['seconds']:,.0f}"))

    client = Client(HTTP_HOST="localhost")
    _, ingest_key = ApiKey.issue(f"bench-ingest-{uuid.uuid4().hex}", ApiKey.Role.INGEST)
    bodies = [json.dumps({"logs": batch}) for batch in batched(
        records(random, count=args.http_batches * args.batch, orders=args.orders, domains=args.domains,
                start=start, days=args.days), args.batch)]
    with stopwatch() as posted:
        for body in bodies:
            response = client.post("/analytics/ingest", body, content_type="application/json",
                                   HTTP_X_API_KEY=ingest_key)
            assert response.status_code == 204, response.content[:300]
    rows.append((f"ingest via POST /analytics/ingest, records/s (batches of {args.batch})",
                 f"{len(bodies) * args.batch / posted['seconds']:,.0f}"))

    if args.clients:
        concurrent = [json.dumps({"logs": batch}).encode() for batch in batched(
            records(random, count=args.http_batches * args.batch * 4, orders=args.orders, domains=args.domains,
                    start=start, days=args.days), args.batch)]
        rate = _concurrent_ingest(concurrent, ingest_key, clients=args.clients, workers=args.server_workers)
        rows.append((f"ingest via gunicorn ({args.server_workers} workers), {args.clients} clients pushing "
                     f"{len(concurrent)} batches of {args.batch}, records/s", f"{rate:,.0f}"))

    if args.vacuum and connection.vendor == "postgresql":
        # The summaries are updated by every batch; without autovacuum their dead rows pile up
        # and every all-tenant breakdown scans them.
        with connection.cursor() as cursor:
            for model in (TrafficBucket, TrafficDomainDay, TrafficErrorDay, TrafficTotal):
                cursor.execute(f"VACUUM {connection.ops.quote_name(model._meta.db_table)}")
        rows.append(("tables vacuumed before the reads", "yes"))
    analyze()
    total_rows = TrafficBucket.objects.count()
    rows.append(("dataset", f"{total_rows:,} bucket rows, {args.orders:,} orders, {args.days} days"))

    _, viewer_key = ApiKey.issue(f"bench-viewer-{uuid.uuid4().hex}", ApiKey.Role.VIEWER)
    _, tenant_key = ApiKey.issue(f"bench-tenant-{uuid.uuid4().hex}", ApiKey.Role.VIEWER, tenant_user_id=42)
    window = f"from={start:%Y-%m-%d}&to={end - dt.timedelta(days=1):%Y-%m-%d}"
    cases = [
        ("all tenants", viewer_key, ""),
        ("one order", viewer_key, "&orderId=4242"),
        ("one domain", viewer_key, "&domain=site3.example.com"),
        ("tenant key", tenant_key, ""),
    ]
    for label, key, extra in cases:
        for endpoint in ENDPOINTS:
            url = f"/analytics/{endpoint}?{window}{extra}"

            def call(url=url, key=key):
                response = client.get(url, HTTP_X_API_KEY=key)
                assert response.status_code == 200, response.content[:300]

            p50, p95 = latency_ms(call, repeat=args.repeat)
            print(f"  {endpoint:12} {label:12} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
            rows.append((f"GET /analytics/{endpoint} {args.days} days, {label}: p50 / p95 ms",
                         f"{p50:.1f} / {p95:.1f}"))
    return rows


CEILING_SOURCE = "bench_traffic_ceiling"


def database_ceiling(args, end):
    """records/s of the database alone: what _postgresql_ingest runs per batch, minus the Python around it.

    The records (in time order over today so far, after the loaded period: new keys) are checked
    and staged once in an ordinary table with their batch number. Each batch then runs, in its own
    transaction, the statements the service runs: fill the temporary staging table (INSERT ... SELECT in
    place of COPY) and the grouped upserts. No decoding, checking, COPY encoding or HTTP: the rate
    the database reaches with both cores to itself is an upper bound for ingest end to end.
    """
    import psycopg

    if connection.vendor != "postgresql":
        raise SystemExit("--database-ceiling needs PostgreSQL")
    bucket_rows = TrafficBucket.objects.count()
    columns = ", ".join(name for name, _ in services.STAGE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {CEILING_SOURCE}")
        cursor.execute(f"CREATE TABLE {CEILING_SOURCE} (batch_no int, "
                       + ", ".join(f"{name} {kind}" for name, kind in services.STAGE_COLUMNS) + ")")
        # Pushed as workers push: in time order, after the loaded period (today so far), so new rows.
        today = (dt.datetime.now(dt.UTC) - end).total_seconds() / 86400
        generated = records(rng(11), count=args.database_ceiling, orders=args.orders, domains=args.domains,
                            start=end, days=today)
        with cursor.cursor.copy(f"COPY {CEILING_SOURCE} (batch_no, {columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4"] + [kind for _, kind in services.STAGE_COLUMNS])
            for number, batch in enumerate(batched(generated, args.batch)):
                for record in schema.check_batch({"logs": batch}):
                    copy.write_row((number, *record))
        cursor.execute(f"CREATE INDEX ON {CEILING_SOURCE} (batch_no)")
        cursor.execute(f"ANALYZE {CEILING_SOURCE}")
        cursor.execute(f"SELECT max(batch_no) + 1 FROM {CEILING_SOURCE}")
        batches = cursor.fetchone()[0]
    upserts = [services._staged_upsert_sql(model, keys, where) for model, keys, where in services.UPSERTS]
    create = (f"CREATE TEMPORARY TABLE IF NOT EXISTS {services.STAGE_TABLE} "
              f"({', '.join(f'{name} {kind}' for name, kind in services.STAGE_COLUMNS)}) ON COMMIT DELETE ROWS")
    settings = connection.settings_dict
    dsn = {"host": settings["HOST"], "port": settings["PORT"] or 5432, "user": settings["USER"],
           "dbname": settings["NAME"], "password": settings["PASSWORD"] or None}
    rows = [("dataset before", f"{bucket_rows:,} bucket rows"),
            ("staged", f"{args.database_ceiling:,} checked records in {batches:,} batches of {args.batch:,} "
                       "(today so far, after the loaded period: new keys)")]
    half = batches // 2
    for label, parts in (("1 connection", [range(0, half)]),
                         ("2 connections", [range(half, half + half // 2), range(half + half // 2, batches)])):
        def replay(numbers):
            with psycopg.connect(**dsn, autocommit=False) as conn, conn.cursor() as cursor:
                for number in numbers:
                    cursor.execute(create)
                    cursor.execute(f"INSERT INTO {services.STAGE_TABLE} ({columns}) "
                                   f"SELECT {columns} FROM {CEILING_SOURCE} WHERE batch_no = %s", [number])
                    for statement in upserts:
                        cursor.execute(statement)
                    conn.commit()

        seconds = timed_threads(replay, parts)
        replayed = sum(len(numbers) for numbers in parts) * args.batch
        rate = replayed / seconds
        print(f"  database only, {label}: {rate:,.0f} records/s")
        rows.append((f"database only (staging + 4 grouped upserts per batch), {label}, records/s",
                     f"{rate:,.0f} ({replayed:,} records in {seconds:.1f} s)"))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {CEILING_SOURCE}")
    return rows


def _concurrent_ingest(bodies, key, *, clients, workers):
    """records/s of `clients` threads POSTing the bodies to a real gunicorn, keep-alive connections."""
    port = _free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
           "LOG_LEVEL": "warning", "ALLOWED_HOSTS": "127.0.0.1", "INGEST_THROTTLE_RATE": "1000000/min",
           "DEBUG": "false", "SECURE_HTTPS": "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "vpnmonitor.wsgi",
                               "--access-logfile", "/dev/null"], env=env)
    try:
        _wait_for(port)
        queue = iter(bodies)
        lock = threading.Lock()
        failures = []

        def push():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            headers = {"Content-Type": "application/json", "X-API-Key": key}
            while True:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                conn.request("POST", "/analytics/ingest", body, headers)
                response = conn.getresponse()
                response.read()
                if response.status != 204:
                    failures.append(response.status)

        threads = [threading.Thread(target=push) for _ in range(clients)]
        with stopwatch() as pushed:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert not failures, failures[:5]
        records_pushed = sum(body.count(b'"ts"') for body in bodies)
        print(f"  {records_pushed:,} records from {clients} clients in {pushed['seconds']:.1f} s")
        return records_pushed / pushed["seconds"]
    finally:
        server.terminate()
        server.wait(30)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not listen on port {port}")


def _empty():
    # Every table the ingest writes, or the summaries of earlier runs would add up.
    for model in (TrafficBucket, TrafficDomainDay, TrafficErrorDay, TrafficTotal):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {connection.ops.quote_name(model._meta.db_table)}")
        else:
            model.objects.all().delete()
