"""Demo proxy traffic: a few tenants and their orders pushing records, through the real ingest path."""

import datetime as dt
import random

from proxytraffic import schema, services
from proxytraffic.models import TrafficBucket

DOMAINS = [
    "google.com", "youtube.com", "facebook.com", "github.com", "wikipedia.org", "amazon.com", "instagram.com",
    "linkedin.com", "reddit.com", "netflix.com", "stackoverflow.com", "cloudflare.com", "apple.com", "x.com",
]
ERRORS = ["ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "TLS_HANDSHAKE_FAILED"]
WORKERS = ["worker-01", "worker-02", "worker-03"]


def has_data():
    return TrafficBucket.objects.exists()


def _records(rng, *, now, days, count, orders):
    span = int(dt.timedelta(days=days).total_seconds())
    for _ in range(count):
        user_id, order_id = rng.choice(orders)
        requests = rng.randint(1, 60)
        failed = rng.random() < 0.08
        errors = rng.randint(1, requests) if failed else 0
        moment = now - dt.timedelta(seconds=rng.randrange(span))
        yield {
            "ts": moment.strftime("%Y-%m-%d %H:%M:%S"),
            "user_id": user_id, "order_id": order_id,
            "port": rng.choice([443, 443, 443, 80]),
            "protocol": rng.choice(["HTTPS", "HTTPS", "HTTP", "SOCKS5"]),
            "ip_out": f"185.199.100.{rng.randint(1, 20)}",
            "ip_from": f"78.100.{rng.randint(0, 9)}.{rng.randint(1, 254)}",
            "peer_id": f"peer-{rng.randint(1, 12):03d}",
            "worker": rng.choice(WORKERS),
            "domain": DOMAINS[min(int(rng.expovariate(0.35)), len(DOMAINS) - 1)],
            "error": rng.choice(ERRORS) if failed else "",
            "count": requests,
            "bytes_sent": requests * rng.randint(300, 4000),
            "bytes_received": requests * rng.randint(2000, 400_000),
            "error_count": errors,
            "duration_ms": requests * rng.randint(20, 900),
            "max_concurrency": rng.randint(1, 40),
        }


def seed(*, now, options):
    rng = random.Random(options.get("seed", 42))
    days = max(1, options.get("days", 7))
    count = max(100, options.get("log_lines", 20000))
    # Three tenants (user_id 1..3), each with a few orders.
    per_tenant = max(2, options.get("clients", 12) // 3)
    orders = [(user_id, user_id * 100 + n) for user_id in (1, 2, 3) for n in range(1, 1 + per_tenant)]
    records = list(_records(rng, now=now, days=days, count=count, orders=orders))
    rows = 0
    for start in range(0, len(records), schema.MAX_RECORDS):
        batch = schema.check_batch({"logs": records[start:start + schema.MAX_RECORDS]}, now=now)
        rows += services.ingest_records(batch)
    return f"{count} proxy traffic records from {len(orders)} orders of 3 tenants in {rows} bucket rows"
