"""Sign-in floods: a valid request's latency against gunicorn, idle and while 4 clients send bad logins.

    DATABASE_URL=postgres://... REDIS_URL=redis://... python -m bench logins [--seconds 15] [--workers 6]

Target (security issue): under a flood of bad logins from 4 clients, a valid request's p95 stays
within 2x its idle p95. Each flooding client has its own source address (127.0.0.2-5) and
alternates POST /api/auth/token and HTTP Basic with wrong passwords, --rate per second each (0: as
fast as it is answered).
The valid request is GET /api/v1/flow-reports/retention with an API key, from 127.0.0.1.
`--no-lockout` takes away the backoff and the lockout, so every bad login is checked; past three
failures the checks still take turns (one at a time). Use REDIS_URL: without it, each gunicorn worker counts on its own.
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import redis
from django.conf import settings
from django.contrib.auth import get_user_model

from bench.datasets import percentile
from bench.proxy_traffic import _free_port, _wait_for
from vpnmonitor.models import ApiKey

FLOODERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


def run(argv):
    parser = argparse.ArgumentParser(prog="python -m bench logins")
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase")
    parser.add_argument("--workers", type=int, default=6, help="gunicorn workers")
    parser.add_argument("--rate", type=float, default=10,
                        help="bad logins per second per flooding client; 0: as fast as answered")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of flood before measuring")
    parser.add_argument("--no-lockout", action="store_true", help="no backoff or lockout: every bad login checked")
    args = parser.parse_args(argv)

    user, _ = get_user_model().objects.get_or_create(username="bench-target")
    user.set_password("the-right-password")
    user.save()
    ApiKey.objects.filter(name="bench-logins").delete()
    _forget_failures()
    _, key = ApiKey.issue("bench-logins", ApiKey.Role.VIEWER)

    port = _free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(args.workers),
           "LOG_LEVEL": "error", "ALLOWED_HOSTS": "127.0.0.1", "THROTTLE_RATE": "1000000/min",
           "DEBUG": "false", "SECURE_HTTPS": "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2}
    if args.no_lockout:
        env.update(LOGIN_BACKOFF_MAX_SECONDS="0", LOGIN_LOCKOUT_FAILURES="1000000")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "vpnmonitor.wsgi",
                               "--access-logfile", "/dev/null"], env=env)
    try:
        _wait_for(port)
        _valid_latencies(port, key, 2)  # warm every worker up
        idle = _valid_latencies(port, key, args.seconds)
        stop = multiprocessing.Event()
        answers = multiprocessing.Queue()
        flooders = [multiprocessing.Process(target=_flood, args=(port, address, args.rate, stop, answers))
                    for address in FLOODERS]
        for process in flooders:
            process.start()
        time.sleep(args.warmup)
        flooded = _valid_latencies(port, key, args.seconds)
        stop.set()
        statuses = Counter()
        for _ in flooders:
            statuses.update(answers.get(timeout=60))
        for process in flooders:
            process.join(30)
    finally:
        server.terminate()
        server.wait(30)

    idle_p50, idle_p95 = percentile(idle, 0.5), percentile(idle, 0.95)
    flood_p50, flood_p95 = percentile(flooded, 0.5), percentile(flooded, 0.95)
    mode = "no backoff or lockout (every bad login checked, in turns)" if args.no_lockout else "sign-in guard on"
    pace = f"{args.rate:g} bad logins/s per client" if args.rate else "each client as fast as answered"
    answered = ", ".join(f"{count:,} × {status}" for status, count in sorted(statuses.items()))
    return [
        ("mode", f"{mode}; {pace}; gunicorn {args.workers} sync workers; {args.seconds:.0f} s per phase, "
                 f"measured from {args.warmup:g} s into the flood"),
        ("valid request idle (GET /api/v1/flow-reports/retention, API key)",
         f"p50 {idle_p50:.1f} ms, p95 {idle_p95:.1f} ms ({len(idle)} requests)"),
        ("valid request under the flood", f"p50 {flood_p50:.1f} ms, p95 {flood_p95:.1f} ms ({len(flooded)} requests)"),
        ("p95 under the flood / idle p95", f"{flood_p95 / idle_p95:.2f}× (target ≤ 2×)"),
        ("bad logins answered (4 clients, own addresses)", f"{sum(statuses.values()):,}: {answered}"),
    ]


def _forget_failures():
    """Start without the failure counts and locks of an earlier run (they last 15 minutes)."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match="*:login:*"):
            client.delete(key)


def _valid_latencies(port, key, seconds):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        conn.request("GET", "/api/v1/flow-reports/retention", headers={"X-API-Key": key})
        response = conn.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.status
        time.sleep(0.02)
    return samples


def _flood(port, address, rate, stop, answers):
    statuses = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(address, 0))
    basic = "Basic " + base64.b64encode(b"bench-target:wrong").decode()
    attempt, started = 0, time.monotonic()
    while not stop.is_set():
        attempt += 1
        if rate and (ahead := started + attempt / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        if attempt % 2:
            body = json.dumps({"username": f"admin{attempt % 7}", "password": "guess"})
            conn.request("POST", "/api/auth/token", body, {"Content-Type": "application/json"})
        else:
            conn.request("GET", "/api/v1/flow-reports", headers={"Authorization": basic})
        response = conn.getresponse()
        response.read()
        statuses[response.status] += 1
    answers.put(statuses)
